// Package router selects the route for an HTTP or gRPC request with the
// semantics of Kong Gateway's default router flavour,
// traditional_compatible: the same predicates, the same 64-bit priority,
// the same splitting of multi-path routes into one sub-route per path group,
// and the same tie-break on the larger UUID.
//
// A Router is built once per configuration revision, off the request path,
// and is immutable afterwards: any number of goroutines may call Match
// concurrently. Match does not scan all routes: it looks routes up by host
// (an exact map plus wildcard maps) and, inside a host, by path prefix, so
// its cost barely grows with the number of routes. Matching a prefix route
// allocates nothing.
package router

import (
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Route is one Kong route as the router needs it. Field meanings, defaults
// and validation are those of Kong's routes entity; Build assumes the
// control plane validated the entity and rejects only what it cannot
// compile.
type Route[T any] struct {
	// ID is the route's UUID in canonical text form. Among sub-routes of
	// equal priority, the one with the larger UUID wins.
	ID string
	// CreatedAt is the route's creation time in Unix seconds. The
	// traditional_compatible router does not use it for ordering; it is kept
	// for callers and diagnostics.
	CreatedAt int64
	// Protocols lists the route's protocols. Empty means Kong's default
	// {"http", "https"}. Routes for stream protocols only (tcp, tls, udp,
	// tls_passthrough) are not HTTP routes and are skipped by Build.
	Protocols []string
	// Methods are upper-case HTTP methods, compared exactly.
	Methods []string
	// Hosts are host names compared exactly (case-sensitively, as Kong's
	// router does), or with one wildcard label: "*.example.com" matches any
	// host ending in ".example.com", "example.*" any host starting with
	// "example.". An optional ":port" also requires Request.Port to equal it.
	//
	// A nil slice and an empty one differ in one way, as in Kong: an empty
	// non-nil slice matches nothing as a predicate but still sets the
	// "plain hosts only" priority bit.
	Hosts []string
	// Paths are prefixes ("/p", matched as plain string prefixes of the
	// normalized path) or, when they start with '~', regular expressions
	// anchored at the start of the path. Named groups may be written
	// "(?<name>...)" or "(?P<name>...)".
	Paths []string
	// Headers maps a header name (case-insensitive; '_' and '-' are the
	// same) to accepted values. A request matches when, for every name, one
	// of its values equals one of the configured values ignoring case, or
	// matches one given as "~*regex" (the regex is applied to the lower-cased
	// value, unanchored).
	Headers map[string][]string
	// SNIs are TLS server names; they are only checked on requests received
	// over TLS (Kong ignores them on plain HTTP). A trailing dot is ignored.
	SNIs []string
	// RegexPriority orders regex sub-routes that are otherwise equal; higher
	// wins. It has no effect on prefix paths.
	RegexPriority int
	// StripPath removes the matched path from the upstream path.
	StripPath bool
	// PathHandling is "v0" (default) or "v1"; see UpstreamPath.
	PathHandling string
	// PreserveHost sends the client's Host header upstream.
	PreserveHost bool
	// HTTPSRedirectStatusCode is the status answered when an https-only
	// route is requested over plain HTTP: 426 (default when 0), 301, 302,
	// 307 or 308.
	HTTPSRedirectStatusCode int
	// Value is opaque to the router and handed back in Match, so the proxy
	// gets its compiled route, service and plugins without another lookup.
	Value T
}

// RouteError reports a route Build left out, and why.
type RouteError struct {
	// ID is the route's ID as given.
	ID string
	// Err describes the problem.
	Err error
}

// Error implements error, naming the route.
func (e *RouteError) Error() string { return fmt.Sprintf("route %s: %v", e.ID, e.Err) }

// Unwrap returns Err.
func (e *RouteError) Unwrap() error { return e.Err }

// hostEntry is one compiled element of Route.Hosts.
type hostEntry struct {
	kind int // hostExact, hostSuffix or hostPrefix
	// value is the host for hostExact, the suffix including its leading '.'
	// for hostSuffix, and the prefix including its trailing '.' for
	// hostPrefix.
	value string
	port  int // 0 means any port
}

const (
	hostExact = iota
	hostSuffix
	hostPrefix
)

// headerRule is one compiled Route.Headers entry.
type headerRule struct {
	name   string // canonical MIME form, the key of http.Header
	exact  []string
	regexs []*regexp.Regexp
}

// compiledRoute holds the parts shared by all sub-routes of one route.
type compiledRoute[T any] struct {
	route   *Route[T]
	methods []string
	hosts   []hostEntry
	hostSet bool // Hosts non-empty: the predicate applies
	headers []headerRule
	snis    []string
	protos  protoSet
}

// protoSet is a bit set of the HTTP-subsystem protocols of a route.
type protoSet uint8

const (
	protoHTTP protoSet = 1 << iota
	protoHTTPS
	protoGRPC
	protoGRPCS
)

// subRoute is one matcher of the router: a route restricted to one path
// group (all its regex paths, or all its prefix paths of one length).
type subRoute[T any] struct {
	rank     int32 // position in descending (priority, uuid) order
	priority uint64
	uuid     uuid.UUID
	cr       *compiledRoute[T]
	prefixes []string         // prefix paths of this group
	regexes  []*regexp.Regexp // regex paths of this group, in route order
}

// subRouteNamespace is the UUID namespace Kong uses to derive the IDs of
// split sub-routes (kong/router/transform.lua), so ties between sub-routes
// break exactly as in Kong.
var subRouteNamespace = uuid.MustParse("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")

const (
	maxHeaderCount = 255
	plainHostBit   = uint64(1) << 60
	regexPathBit   = uint64(1) << 51
)

// computePriority computes the 64-bit priority of a sub-route following the
// layout documented in Kong's kong/router/transform.lua get_priority:
//
//	bits 61-63 match weight: number of non-empty methods, hosts, headers,
//	           snis, paths
//	bit  60    hosts is set (even empty) and has no wildcard
//	bits 52-59 number of header names (capped at 255)
//	bit  51    the group is regex paths
//	bits 19-50 regex_priority (regex groups only)
//	bits 0-18  length of the prefix paths of the group
//
// This is the layout Kong documents and its router specs assume. Note that
// Kong's Lua code shifts match weight, header count and regex_priority with
// LuaJIT's 32-bit bit.lshift (its lshift_uint64 helper rebinds the uint64
// cdata to the plain number), so a running Kong may order some mixes
// differently; the documented layout is the contract implemented here.
//
// The regex_priority field is stored offset by 2^31 so that a negative
// regex_priority orders below zero and above nothing, as users expect and as
// Kong's traditional router orders it.
func computePriority(methods, hosts, headers, snis, paths int, hostsNonNil, wildcard, isRegex bool, regexPriority, prefixLen int) uint64 {
	weight := uint64(0)
	for _, n := range []int{methods, hosts, headers, snis, paths} {
		if n > 0 {
			weight++
		}
	}
	p := weight << 61
	if hostsNonNil && !wildcard {
		p |= plainHostBit
	}
	hc := headers
	if hc > maxHeaderCount {
		hc = maxHeaderCount
	}
	p |= uint64(hc) << 52
	if isRegex {
		p |= regexPathBit
		rp := uint64(uint32(int32(clampInt32(regexPriority))) ^ 0x80000000)
		p |= rp << 19
	} else {
		p |= uint64(prefixLen) & 0x7FFFF
	}
	return p
}

func clampInt32(v int) int {
	if v > 1<<31-1 {
		return 1<<31 - 1
	}
	if v < -1<<31 {
		return -1 << 31
	}
	return v
}

// parseProtocols returns the HTTP-subsystem protocols of a route; zero means
// the route is a stream route.
func parseProtocols(ps []string) (protoSet, error) {
	if len(ps) == 0 {
		return protoHTTP | protoHTTPS, nil
	}
	var s protoSet
	for _, p := range ps {
		switch p {
		case "http":
			s |= protoHTTP
		case "https":
			s |= protoHTTPS
		case "grpc":
			s |= protoGRPC
		case "grpcs":
			s |= protoGRPCS
		case "tcp", "tls", "udp", "tls_passthrough":
		default:
			return 0, fmt.Errorf("unknown protocol %q", p)
		}
	}
	return s, nil
}

// splitHostPort splits "host:port" at the first ':' the way Kong does: if
// what follows is not a number, the whole string is the host (this keeps
// "[::1]" style literals whole).
func splitHostPort(h string) (string, int) {
	i := strings.IndexByte(h, ':')
	if i < 0 {
		return h, 0
	}
	port, ok := atoiPort(h[i+1:])
	if !ok {
		return h, 0
	}
	return h[:i], port
}

// atoiPort parses a decimal port without allocating.
func atoiPort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func compileHost(h string) (hostEntry, bool, error) {
	host, port := splitHostPort(h)
	if host == "" {
		return hostEntry{}, false, fmt.Errorf("invalid host %q", h)
	}
	switch {
	case strings.HasPrefix(host, "*"):
		if !strings.HasPrefix(host, "*.") || strings.Contains(host[1:], "*") {
			return hostEntry{}, true, fmt.Errorf("invalid wildcard host %q", h)
		}
		return hostEntry{kind: hostSuffix, value: host[1:], port: port}, true, nil
	case strings.HasSuffix(host, "*"):
		if !strings.HasSuffix(host, ".*") || strings.Contains(host[:len(host)-1], "*") {
			return hostEntry{}, true, fmt.Errorf("invalid wildcard host %q", h)
		}
		return hostEntry{kind: hostPrefix, value: host[:len(host)-1], port: port}, true, nil
	case strings.Contains(host, "*"):
		return hostEntry{}, true, fmt.Errorf("invalid wildcard host %q", h)
	}
	return hostEntry{kind: hostExact, value: host, port: port}, false, nil
}

// compileRegexPath turns a Kong regex path ("~/re") into a Go regexp
// anchored at the start, as Kong's transform does for the ATC router.
func compileRegexPath(p string, cache map[string]*regexp.Regexp) (*regexp.Regexp, error) {
	src := "^" + strings.ReplaceAll(p[1:], "?<", "?P<")
	if re, ok := cache[src]; ok {
		return re, nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("invalid regex: '%s': %w", p[1:], err)
	}
	cache[src] = re
	return re, nil
}

func canonicalHeaderName(n string) string {
	return textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(n, "_", "-"))
}

// subRouteID derives the UUID of one path group of a split route the way
// Kong does: UUIDv5 of "<route id>#<group>", where group is "true" for the
// regex group and the decimal prefix length otherwise.
func subRouteID(routeID string, isRegex bool, length int) uuid.UUID {
	key := "true"
	if !isRegex {
		key = strconv.Itoa(length)
	}
	return uuid.NewSHA1(subRouteNamespace, []byte(routeID+"#"+key))
}
