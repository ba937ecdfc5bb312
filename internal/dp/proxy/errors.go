package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// Kong's messages for the errors the proxy itself answers. The exact strings
// matter: clients and monitoring match on them (kong/error_handlers.lua,
// kong/runloop/balancer, kong/runloop/handler.lua).
const (
	MsgNoRoute       = "no Route matched with those values"
	MsgBadGateway    = "An invalid response was received from the upstream server"
	MsgTimeout       = "The upstream server is timing out"
	MsgNoPeer        = "failure to get a peer from the ring-balancer"
	MsgNameFailed    = "name resolution failed"
	MsgUnavailable   = "The upstream server is currently unavailable"
	MsgUnexpected    = "An unexpected error occurred"
	MsgRequestTooBig = "Request header or cookie too large"
	MsgBadRequest    = "Bad request"
	// MsgMethodNotAllowed answers TRACE on a route that does not list it.
	MsgMethodNotAllowed = "Method not allowed"
)

// errFormat is one of the bodies Kong's content negotiation can pick.
type errFormat uint8

const (
	fmtJSON errFormat = iota
	fmtHTML
	fmtXML
	fmtPlain
)

var errContentType = [...]string{
	fmtJSON:  "application/json; charset=utf-8",
	fmtHTML:  "text/html; charset=utf-8",
	fmtXML:   "application/xml; charset=utf-8",
	fmtPlain: "text/plain; charset=utf-8",
}

// negotiateErrFormat picks the error body format the way Kong 3.x does
// (kong/tools/http.lua get_response_type): among the Accept media ranges
// the first one with the strictly highest q wins; text/html, application/xml,
// text/plain and application/json map to themselves, "text/*" to plain,
// "application/*" and "*/*" to JSON, anything else to JSON. With no Accept
// header, Content-Type is consulted the same way (error_handlers.lua), and
// JSON is the default (error_default_type).
func negotiateErrFormat(h http.Header) errFormat {
	v := h["Accept"]
	if len(v) == 0 {
		v = h["Content-Type"]
		if len(v) == 0 {
			return fmtJSON
		}
	}
	f := fmtJSON
	maxQ := 0
	for _, hv := range v {
		for hv != "" {
			var item string
			if i := strings.IndexByte(hv, ','); i >= 0 {
				item, hv = hv[:i], hv[i+1:]
			} else {
				item, hv = hv, ""
			}
			media, params, _ := strings.Cut(item, ";")
			media = strings.TrimSpace(media)
			typ, sub, ok := strings.Cut(media, "/")
			if !ok || typ == "" || sub == "" {
				continue
			}
			q := qValue(params)
			if q > maxQ {
				maxQ = q
				f = mimeFormat(typ, sub)
			}
		}
	}
	return f
}

// qValue returns the q parameter in thousandths (1000 when absent or
// malformed, as Kong's pattern then treats it as an ordinary parameter).
func qValue(params string) int {
	for params != "" {
		var p string
		if i := strings.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, ""
		}
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || strings.TrimSpace(k) != "q" {
			continue
		}
		val = strings.TrimSpace(val)
		if val == "" || (val[0] != '0' && val[0] != '1') {
			return 1000
		}
		q := int(val[0]-'0') * 1000
		if len(val) > 1 {
			if val[1] != '.' || len(val) > 5 {
				return 1000
			}
			scale := 100
			for _, c := range []byte(val[2:]) {
				if c < '0' || c > '9' || (q == 1000 && c != '0') {
					return 1000
				}
				q += int(c-'0') * scale
				scale /= 10
			}
		}
		return q
	}
	return 1000
}

func mimeFormat(typ, sub string) errFormat {
	if sub == "*" {
		switch {
		case strings.EqualFold(typ, "text"):
			return fmtPlain
		default:
			return fmtJSON
		}
	}
	switch {
	case strings.EqualFold(typ, "text") && strings.EqualFold(sub, "html"):
		return fmtHTML
	case strings.EqualFold(typ, "text") && strings.EqualFold(sub, "plain"):
		return fmtPlain
	case strings.EqualFold(typ, "application") && strings.EqualFold(sub, "xml"):
		return fmtXML
	}
	return fmtJSON
}

// appendErrBody renders Kong's error template for f (kong/tools/http.lua
// ERROR_TEMPLATES). msg and reqID are fixed ASCII strings chosen by the
// proxy, so no escaping is needed.
func appendErrBody(b []byte, f errFormat, msg, reqID string) []byte {
	switch f {
	case fmtHTML:
		b = append(b, "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>"...)
		b = append(b, msg...)
		b = append(b, ".</p>\n    <p>request_id: "...)
		b = append(b, reqID...)
		b = append(b, "</p>\n  </body>\n</html>\n"...)
	case fmtXML:
		b = append(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>"...)
		b = append(b, msg...)
		b = append(b, "</message>\n  <requestid>"...)
		b = append(b, reqID...)
		b = append(b, "</requestid>\n</error>\n"...)
	case fmtPlain:
		b = append(b, msg...)
		b = append(b, "\nrequest_id: "...)
		b = append(b, reqID...)
		b = append(b, '\n')
	default:
		b = append(b, "{\n  \"message\":\""...)
		b = append(b, msg...)
		b = append(b, "\",\n  \"request_id\":\""...)
		b = append(b, reqID...)
		b = append(b, "\"\n}"...)
	}
	return b
}

// smallInts holds the decimal strings of 0..len-1 so latency and length
// headers need no allocation in the common case.
var smallInts = func() (s [10000]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return
}()

func itoa(n int64) string {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return strconv.FormatInt(n, 10)
}
