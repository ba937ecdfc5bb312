// Package labels bounds the values of Prometheus labels that describe HTTP traffic, for the
// control plane and the runtime alike (it imports neither).
//
// Every series a label value creates is kept until the process exits, so a label whose value a
// client chooses lets anyone grow the memory of the process and the size of its /metrics answer
// without limit. The functions here map what a request or an upstream sent onto a finite set of
// values, listed in their doc comments; labels built from configuration (service, route and
// consumer names) are bounded by that configuration and need no mapping.
package labels

import "strconv"

// Other is the method label of a request whose method is not one of the methods [Method] lists.
const Other = "OTHER"

// OtherStatus is the status code label of a status outside 100..599.
const OtherStatus = "other"

// Unmatched is the route label of a request that matched no route.
const Unmatched = "unmatched"

// Method returns the method label of a request: the method itself when it is one of GET, HEAD,
// POST, PUT, PATCH, DELETE, OPTIONS, CONNECT or TRACE (exactly, as methods are case-sensitive),
// else [Other]. The result is always one of these ten strings.
func Method(method string) string {
	switch method {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "PATCH":
		return "PATCH"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return Other
}

// minStatus and maxStatus bound the status codes labelled with their own value: the range
// RFC 9110 defines.
const (
	minStatus = 100
	maxStatus = 599
)

// statusCodes holds the decimal strings of 100..599, so labelling does not allocate.
var statusCodes = func() (s [maxStatus - minStatus + 1]string) {
	for i := range s {
		s[i] = strconv.Itoa(minStatus + i)
	}
	return s
}()

// StatusCode returns the status code label of a response: the code in decimal when it is in
// 100..599, else [OtherStatus]. The result is one of these 501 strings, whatever the code; a
// status relayed from an upstream (which may send any three digits) is bounded alike.
func StatusCode(code int) string {
	if code >= minStatus && code <= maxStatus {
		return statusCodes[code-minStatus]
	}
	return OtherStatus
}
