package router

import (
	"fmt"
	"math"
	"strings"

	"github.com/google/uuid"
)

func parseUUID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("invalid id %q: %w", s, err)
	}
	return id, nil
}

// Headers gives the router read access to request headers without copying
// them. Values receives names in canonical MIME form ("X-Foo-Bar") and
// returns all values of that header, or nil. net/http.Header satisfies it.
type Headers interface {
	Values(name string) []string
}

// HeaderFunc adapts a function to Headers.
type HeaderFunc func(name string) []string

// Values calls f.
func (f HeaderFunc) Values(name string) []string { return f(name) }

// Request is what the router looks at. Strings are borrowed, never kept.
type Request struct {
	// Scheme is the protocol the request arrived with: "http" or "https"
	// ("grpc" and "grpcs" are accepted as their transports). It decides
	// whether SNIs are checked and is the default of ForwardedProto.
	Scheme string
	// Method is the request method, e.g. "GET".
	Method string
	// Host is the Host header (or :authority), with an optional port that
	// the router ignores: ports in route hosts are compared with Port.
	Host string
	// Target is the request target: path with optional query. It is
	// normalized with NormalizePath before matching.
	Target string
	// SNI is the TLS server name; "" on plain connections.
	SNI string
	// Port is the local port the request arrived on.
	Port int
	// Headers gives access to the request headers; nil means none.
	Headers Headers
	// ForwardedProto is the client-facing scheme when TLS ended before this
	// node and the peer is trusted (X-Forwarded-Proto); "" means Scheme.
	ForwardedProto string
	// HTTPMajor is the HTTP major version (1 or 2) used for gRPC checks.
	HTTPMajor int
}

// Captures gives access to the groups of a regex path match. The zero value
// has no groups (prefix routes and routes without paths).
type Captures struct {
	path  string
	loc   []int
	names []string
}

// Len returns the number of groups including group 0, the whole match.
func (c Captures) Len() int { return len(c.loc) / 2 }

// Group returns group i and whether it took part in the match.
func (c Captures) Group(i int) (string, bool) {
	if i < 0 || 2*i+1 >= len(c.loc) || c.loc[2*i] < 0 {
		return "", false
	}
	return c.path[c.loc[2*i]:c.loc[2*i+1]], true
}

// Named returns the group called name and whether it took part.
func (c Captures) Named(name string) (string, bool) {
	for i, n := range c.names {
		if n == name && n != "" {
			return c.Group(i)
		}
	}
	return "", false
}

// Names returns the group names indexed like Group ("" for unnamed).
func (c Captures) Names() []string { return c.names }

// Rejection describes the answer Kong gives instead of proxying when the
// request's protocol does not suit the matched route. Status 0 means no
// rejection.
type Rejection struct {
	// Status is the HTTP status to answer with.
	Status int
	// Message is the JSON "message" of the body; "" means no body.
	Message string
	// Upgrade, when set, is sent as the Upgrade header together with
	// "Connection: Upgrade".
	Upgrade string
	// RedirectHTTPS asks for "Location: https://<forwarded host><request
	// uri>" (301, 302, 307 and 308).
	RedirectHTTPS bool
	// GRPCStatus and GRPCMessage, when GRPCStatus is non-zero, are sent as
	// grpc-status and grpc-message headers with a 200.
	GRPCStatus  int
	GRPCMessage string
}

// Match is the result of a successful lookup.
type Match[T any] struct {
	// Route is the matched route (the router's copy; do not modify).
	Route *Route[T]
	// Path is the normalized request path the route matched against.
	Path string
	// MatchedPath is the part of Path the route's path matched: the prefix
	// for prefix paths, the whole regex match for regex paths, "" for a
	// route without paths. Pass it to UpstreamPath.
	MatchedPath string
	// Captures holds the regex groups (Kong's uri_captures).
	Captures Captures
	// Reject is set when the protocol does not suit the route.
	Reject Rejection
}

// isTLS reports whether the request arrived over TLS (Kong's net.protocol
// "https", under which SNIs are checked).
func (req *Request) isTLS() bool { return req.Scheme == "https" || req.Scheme == "grpcs" }

// candidate search state of one Match call.
type search[T any] struct {
	req       *Request
	host      string
	path      string
	bestRank  int32
	best      *subRoute[T]
	bestPath  string
	bestLoc   []int
	bestNames []string
}

// Match finds the route for req. It returns false when no route matches
// (Kong answers 404 "no Route matched with those values").
func (r *Router[T]) Match(req *Request) (Match[T], bool) {
	s := search[T]{req: req, bestRank: math.MaxInt32}
	s.path = NormalizePath(req.Target)
	s.host, _ = splitHostPort(req.Host)

	if b := r.exact[s.host]; b != nil {
		s.scanBucket(b)
	}
	if len(r.suffix) > 0 || len(r.prefix) > 0 {
		for i := 0; i < len(s.host); i++ {
			if s.host[i] != '.' {
				continue
			}
			if b := r.suffix[s.host[i:]]; b != nil {
				s.scanBucket(b)
			}
			if b := r.prefix[s.host[:i+1]]; b != nil {
				s.scanBucket(b)
			}
		}
	}
	if r.hostless != nil {
		s.scanBucket(r.hostless)
	}
	if s.best == nil {
		return Match[T]{}, false
	}
	m := Match[T]{
		Route:       s.best.cr.route,
		Path:        s.path,
		MatchedPath: s.bestPath,
	}
	if s.bestLoc != nil {
		m.Captures = Captures{path: s.path, loc: s.bestLoc, names: s.bestNames}
	}
	m.Reject = checkProtocol(s.best.cr, req)
	return m, true
}

func (s *search[T]) scanBucket(b *bucket[T]) {
	if b.byKey == nil {
		for _, e := range b.entries {
			if e.sr.rank >= s.bestRank {
				return
			}
			if strings.HasPrefix(s.path, e.key) {
				s.try(e.sr)
			}
		}
		return
	}
	for _, l := range b.lengths {
		if l > len(s.path) {
			return
		}
		for _, sr := range b.byKey[s.path[:l]] {
			if sr.rank >= s.bestRank {
				break
			}
			if s.try(sr) {
				break
			}
		}
	}
}

// try evaluates every predicate of sr and records it when it matches.
func (s *search[T]) try(sr *subRoute[T]) bool {
	cr := sr.cr
	req := s.req
	if len(cr.methods) > 0 && !containsString(cr.methods, req.Method) {
		return false
	}
	if cr.hostSet && !matchHosts(cr.hosts, s.host, req.Port) {
		return false
	}
	if len(cr.snis) > 0 && req.isTLS() && !containsString(cr.snis, req.SNI) {
		return false
	}
	if len(cr.headers) > 0 && !matchHeaders(cr.headers, req.Headers) {
		return false
	}
	matched := ""
	var loc []int
	switch {
	case len(sr.prefixes) > 0:
		ok := false
		for _, p := range sr.prefixes {
			if strings.HasPrefix(s.path, p) {
				matched, ok = p, true
				break
			}
		}
		if !ok {
			return false
		}
	case len(sr.regexes) > 0:
		var names []string
		for _, re := range sr.regexes {
			if loc = re.FindStringSubmatchIndex(s.path); loc != nil {
				names = re.SubexpNames()
				break
			}
		}
		if loc == nil {
			return false
		}
		matched = s.path[loc[0]:loc[1]]
		s.bestNames = names
	}
	s.best, s.bestRank, s.bestPath, s.bestLoc = sr, sr.rank, matched, loc
	return true
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func matchHosts(hosts []hostEntry, host string, port int) bool {
	for _, h := range hosts {
		if h.port != 0 && h.port != port {
			continue
		}
		switch h.kind {
		case hostExact:
			if host == h.value {
				return true
			}
		case hostSuffix:
			if strings.HasSuffix(host, h.value) {
				return true
			}
		case hostPrefix:
			if strings.HasPrefix(host, h.value) {
				return true
			}
		}
	}
	return false
}

// matchHeaders requires, for every rule, one request value equal to an
// exact value ignoring case or matched by a regex after lower-casing.
func matchHeaders(rules []headerRule, h Headers) bool {
	if h == nil {
		return false
	}
	for i := range rules {
		rule := &rules[i]
		vals := h.Values(rule.name)
		ok := false
		for _, v := range vals {
			for _, e := range rule.exact {
				if strings.EqualFold(v, e) {
					ok = true
					break
				}
			}
			if ok {
				break
			}
			if len(rule.regexs) > 0 {
				lv := strings.ToLower(v)
				for _, re := range rule.regexs {
					if re.MatchString(lv) {
						ok = true
						break
					}
				}
				if ok {
					break
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// checkProtocol applies the protocol checks Kong's runloop makes after
// routing (kong/runloop/handler.lua), in the same order.
func checkProtocol[T any](cr *compiledRoute[T], req *Request) Rejection {
	fproto := req.ForwardedProto
	if fproto == "" {
		fproto = req.Scheme
		switch fproto {
		case "grpc":
			fproto = "http"
		case "grpcs":
			fproto = "https"
		}
	}
	p := cr.protos
	if p&protoHTTPS != 0 && p&protoHTTP == 0 && fproto != "https" {
		switch code := cr.route.HTTPSRedirectStatusCode; code {
		case 0, 426:
			return Rejection{Status: 426, Message: "Please use HTTPS protocol", Upgrade: "TLS/1.2, HTTP/1.1"}
		case 301, 302, 307, 308:
			return Rejection{Status: code, RedirectHTTPS: true}
		}
	}
	if p&(protoGRPC|protoGRPCS) != 0 {
		grpcContent := false
		if req.Headers != nil {
			if ct := req.Headers.Values("Content-Type"); len(ct) > 0 {
				grpcContent = strings.HasPrefix(ct[0], "application/grpc")
			}
		}
		if req.HTTPMajor != 2 && grpcContent {
			return Rejection{Status: 426, Message: "Please use HTTP2 protocol", Upgrade: "HTTP/2"}
		}
		if !grpcContent {
			return Rejection{Status: 415, Message: "Non-gRPC request matched gRPC route"}
		}
		if p&protoGRPCS != 0 && p&protoGRPC == 0 && fproto != "https" {
			return Rejection{Status: 200, GRPCStatus: 1, GRPCMessage: "gRPC request matched gRPCs route"}
		}
	}
	return Rejection{}
}
