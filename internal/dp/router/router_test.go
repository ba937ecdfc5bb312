package router

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

func id(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func build(t *testing.T, routes ...Route[string]) *Router[string] {
	t.Helper()
	r, errs, err := Build(context.Background(), Options[string]{Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Fatalf("unexpected route error: %v", e)
	}
	return r
}

// rt builds a route whose Value is its name, for readable assertions.
func rt(n int, name string, f func(*Route[string])) Route[string] {
	r := Route[string]{ID: id(n), Value: name, StripPath: true}
	if f != nil {
		f(&r)
	}
	return r
}

type req struct {
	scheme, method, host, target, sni string
	port                              int
	headers                           http.Header
}

func (q req) toRequest() *Request {
	r := &Request{Scheme: q.scheme, Method: q.method, Host: q.host, Target: q.target, SNI: q.sni, Port: q.port, HTTPMajor: 1}
	if r.Scheme == "" {
		r.Scheme = "http"
	}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Port == 0 {
		r.Port = 8000
	}
	if q.headers != nil {
		r.Headers = q.headers
	}
	return r
}

func TestMatchPrecedence(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route[string]
		req    req
		want   string // "" means no match
	}{
		{
			name: "more fields beat fewer (hosts+paths over paths)",
			routes: []Route[string]{
				rt(9, "paths", func(r *Route[string]) { r.Paths = []string{"/api/long/prefix"} }),
				rt(1, "hosts+paths", func(r *Route[string]) { r.Hosts = []string{"example.com"}; r.Paths = []string{"/"} }),
			},
			req:  req{host: "example.com", target: "/api/long/prefix/x"},
			want: "hosts+paths",
		},
		{
			name: "methods count as a field",
			routes: []Route[string]{
				rt(9, "paths", func(r *Route[string]) { r.Paths = []string{"/api"} }),
				rt(1, "methods+paths", func(r *Route[string]) { r.Methods = []string{"GET"}; r.Paths = []string{"/"} }),
			},
			req:  req{target: "/api"},
			want: "methods+paths",
		},
		{
			name: "method mismatch falls through",
			routes: []Route[string]{
				rt(9, "paths", func(r *Route[string]) { r.Paths = []string{"/api"} }),
				rt(1, "methods+paths", func(r *Route[string]) { r.Methods = []string{"POST"}; r.Paths = []string{"/"} }),
			},
			req:  req{target: "/api"},
			want: "paths",
		},
		{
			name: "plain host beats wildcard host",
			routes: []Route[string]{
				rt(9, "wild", func(r *Route[string]) { r.Hosts = []string{"*.example.com"} }),
				rt(1, "plain", func(r *Route[string]) { r.Hosts = []string{"api.example.com"} }),
			},
			req:  req{host: "api.example.com", target: "/"},
			want: "plain",
		},
		{
			name:   "suffix wildcard matches deeper names",
			routes: []Route[string]{rt(1, "wild", func(r *Route[string]) { r.Hosts = []string{"*.example.com"} })},
			req:    req{host: "a.b.example.com", target: "/"},
			want:   "wild",
		},
		{
			name:   "suffix wildcard needs a label",
			routes: []Route[string]{rt(1, "wild", func(r *Route[string]) { r.Hosts = []string{"*.example.com"} })},
			req:    req{host: "example.com", target: "/"},
		},
		{
			name:   "prefix wildcard",
			routes: []Route[string]{rt(1, "wild", func(r *Route[string]) { r.Hosts = []string{"example.*"} })},
			req:    req{host: "example.co.uk:8000", target: "/"},
			want:   "wild",
		},
		{
			name:   "host header port is ignored for portless hosts",
			routes: []Route[string]{rt(1, "h", func(r *Route[string]) { r.Hosts = []string{"example.com"} })},
			req:    req{host: "example.com:9999", target: "/"},
			want:   "h",
		},
		{
			name: "host with port compares the local port",
			routes: []Route[string]{
				rt(1, "8443", func(r *Route[string]) { r.Hosts = []string{"example.com:8443"} }),
				rt(2, "any", func(r *Route[string]) { r.Paths = []string{"/"} }),
			},
			req:  req{host: "example.com", target: "/", port: 8443},
			want: "8443",
		},
		{
			name: "host with port rejects other local ports",
			routes: []Route[string]{
				rt(1, "8443", func(r *Route[string]) { r.Hosts = []string{"example.com:8443"} }),
				rt(2, "any", func(r *Route[string]) { r.Paths = []string{"/"} }),
			},
			req:  req{host: "example.com:8443", target: "/", port: 8000},
			want: "any",
		},
		{
			name:   "hosts compare case-sensitively like Kong's router",
			routes: []Route[string]{rt(1, "h", func(r *Route[string]) { r.Hosts = []string{"example.com"} })},
			req:    req{host: "EXAMPLE.com", target: "/"},
		},
		{
			name: "more headers beat fewer",
			routes: []Route[string]{
				rt(9, "one", func(r *Route[string]) { r.Headers = map[string][]string{"x-a": {"1"}} }),
				rt(1, "two", func(r *Route[string]) { r.Headers = map[string][]string{"x-a": {"1"}, "x-b": {"2"}} }),
			},
			req:  req{target: "/", headers: http.Header{"X-A": {"1"}, "X-B": {"2"}}},
			want: "two",
		},
		{
			name: "header values ignore case, names accept underscores",
			routes: []Route[string]{
				rt(1, "h", func(r *Route[string]) { r.Headers = map[string][]string{"x_version": {"V2", "v3"}} }),
			},
			req:  req{target: "/", headers: http.Header{"X-Version": {"v1", "v2"}}},
			want: "h",
		},
		{
			name: "header regex with ~*",
			routes: []Route[string]{
				rt(1, "h", func(r *Route[string]) { r.Headers = map[string][]string{"user-agent": {"~*curl/[0-9]+"}} }),
			},
			req:  req{target: "/", headers: http.Header{"User-Agent": {"Mozilla CURL/8.1"}}},
			want: "h",
		},
		{
			name: "missing header does not match",
			routes: []Route[string]{
				rt(1, "h", func(r *Route[string]) { r.Headers = map[string][]string{"x-a": {"1"}} }),
			},
			req: req{target: "/"},
		},
		{
			name: "regex beats prefix",
			routes: []Route[string]{
				rt(9, "prefix", func(r *Route[string]) { r.Paths = []string{"/users/123"} }),
				rt(1, "regex", func(r *Route[string]) { r.Paths = []string{`~/users/\d+`} }),
			},
			req:  req{target: "/users/123"},
			want: "regex",
		},
		{
			name: "higher regex_priority wins",
			routes: []Route[string]{
				rt(9, "low", func(r *Route[string]) { r.Paths = []string{`~/a`}; r.RegexPriority = 1 }),
				rt(1, "high", func(r *Route[string]) { r.Paths = []string{`~/a/b`}; r.RegexPriority = 5 }),
			},
			req:  req{target: "/a/b"},
			want: "high",
		},
		{
			name: "negative regex_priority orders below zero",
			routes: []Route[string]{
				rt(9, "neg", func(r *Route[string]) { r.Paths = []string{`~/a`}; r.RegexPriority = -1 }),
				rt(1, "zero", func(r *Route[string]) { r.Paths = []string{`~/a`} }),
			},
			req:  req{target: "/a"},
			want: "zero",
		},
		{
			name: "regex is anchored at the start only",
			routes: []Route[string]{
				rt(1, "regex", func(r *Route[string]) { r.Paths = []string{`~/b`} }),
			},
			req: req{target: "/a/b"},
		},
		{
			name: "longest prefix wins",
			routes: []Route[string]{
				rt(9, "short", func(r *Route[string]) { r.Paths = []string{"/a"} }),
				rt(1, "long", func(r *Route[string]) { r.Paths = []string{"/a/b"} }),
			},
			req:  req{target: "/a/b/c"},
			want: "long",
		},
		{
			name: "prefix is a plain string prefix",
			routes: []Route[string]{
				rt(1, "a", func(r *Route[string]) { r.Paths = []string{"/a"} }),
			},
			req:  req{target: "/abc"},
			want: "a",
		},
		{
			name: "equal priority: larger uuid wins",
			routes: []Route[string]{
				rt(1, "small", func(r *Route[string]) { r.Paths = []string{"/x"} }),
				rt(2, "large", func(r *Route[string]) { r.Paths = []string{"/x"} }),
			},
			req:  req{target: "/x"},
			want: "large",
		},
		{
			name: "multi-path routes are split per prefix length",
			routes: []Route[string]{
				rt(1, "split", func(r *Route[string]) { r.Paths = []string{"/a", "/abc/def"} }),
				rt(2, "mid", func(r *Route[string]) { r.Paths = []string{"/abc"} }),
			},
			req:  req{target: "/abcz"},
			want: "mid",
		},
		{
			name: "split route still wins with its long path",
			routes: []Route[string]{
				rt(1, "split", func(r *Route[string]) { r.Paths = []string{"/a", "/abc/def"} }),
				rt(2, "mid", func(r *Route[string]) { r.Paths = []string{"/abc"} }),
			},
			req:  req{target: "/abc/def/x"},
			want: "split",
		},
		{
			name: "snis are ignored on plain http",
			routes: []Route[string]{
				rt(1, "sni", func(r *Route[string]) {
					r.Protocols = []string{"http", "https"}
					r.SNIs = []string{"a.com"}
					r.Paths = []string{"/"}
				}),
			},
			req:  req{target: "/x"},
			want: "sni",
		},
		{
			name: "snis are checked on https",
			routes: []Route[string]{
				rt(1, "sni", func(r *Route[string]) { r.SNIs = []string{"a.com."}; r.Paths = []string{"/"} }),
			},
			req: req{scheme: "https", sni: "b.com", target: "/x"},
		},
		{
			name: "sni match on https, trailing dot ignored",
			routes: []Route[string]{
				rt(1, "sni", func(r *Route[string]) { r.SNIs = []string{"a.com."}; r.Paths = []string{"/"} }),
			},
			req:  req{scheme: "https", sni: "a.com", target: "/x"},
			want: "sni",
		},
		{
			name: "paths are normalized before matching",
			routes: []Route[string]{
				rt(1, "bar", func(r *Route[string]) { r.Paths = []string{"/bar"} }),
			},
			req:  req{target: "/foo/..//%62ar?q=/foo"},
			want: "bar",
		},
		{
			name: "encoded slash is not a separator",
			routes: []Route[string]{
				rt(1, "ab", func(r *Route[string]) { r.Paths = []string{"/a/b"} }),
			},
			req: req{target: "/a%2fb"},
		},
		{
			name: "route paths with reserved escapes match upper-cased escapes",
			routes: []Route[string]{
				rt(1, "ab", func(r *Route[string]) { r.Paths = []string{"/a%2Fb"} }),
			},
			req:  req{target: "/a%2fb"},
			want: "ab",
		},
		{
			name: "stream routes are not HTTP routes",
			routes: []Route[string]{
				rt(1, "tcp", func(r *Route[string]) { r.Protocols = []string{"tcp"} }),
			},
			req: req{target: "/"},
		},
		{
			name: "catch-all route with methods only",
			routes: []Route[string]{
				rt(1, "get", func(r *Route[string]) { r.Methods = []string{"GET"} }),
			},
			req:  req{host: "anything", target: "/any/thing"},
			want: "get",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := build(t, tt.routes...)
			m, ok := r.Match(tt.req.toRequest())
			got := ""
			if ok {
				got = m.Route.Value
			}
			if got != tt.want {
				t.Fatalf("matched %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMatchScalesWithIndex(t *testing.T) {
	// Many routes in one host bucket and in the host-less bucket, so both
	// the map index and the linear scan are exercised.
	var routes []Route[string]
	for i := 0; i < 200; i++ {
		routes = append(routes,
			rt(i*3+1, fmt.Sprintf("h%d", i), func(r *Route[string]) {
				r.Hosts = []string{"api.example.com"}
				r.Paths = []string{fmt.Sprintf("/svc%d", i)}
			}),
			rt(i*3+2, fmt.Sprintf("p%d", i), func(r *Route[string]) { r.Paths = []string{fmt.Sprintf("/svc%d/v", i)} }),
			rt(i*3+3, fmt.Sprintf("r%d", i), func(r *Route[string]) {
				r.Hosts = []string{"api.example.com"}
				r.Paths = []string{fmt.Sprintf(`~/re%d/(?<id>\d+)$`, i)}
			}),
		)
	}
	r := build(t, routes...)
	tests := []struct {
		host, target, want, matched string
	}{
		{"api.example.com", "/svc17/x", "h17", "/svc17"},
		{"api.example.com", "/svc170", "h170", "/svc170"},
		{"api.example.com", "/svc1", "h1", "/svc1"},
		{"other", "/svc17/v/x", "p17", "/svc17/v"},
		// The host route has more fields, so it beats the longer host-less prefix.
		{"api.example.com", "/svc17/v/x", "h17", "/svc17"},
		{"api.example.com", "/re42/123", "r42", "/re42/123"},
		{"api.example.com", "/re42/12x", "", ""},
		{"other", "/nothing", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.target, func(t *testing.T) {
			m, ok := r.Match(req{host: tt.host, target: tt.target}.toRequest())
			got := ""
			if ok {
				got = m.Route.Value
			}
			if got != tt.want || m.MatchedPath != tt.matched {
				t.Fatalf("got %q matched %q, want %q matched %q", got, m.MatchedPath, tt.want, tt.matched)
			}
		})
	}
	m, _ := r.Match(req{host: "api.example.com", target: "/re42/123"}.toRequest())
	if v, ok := m.Captures.Named("id"); !ok || v != "123" {
		t.Errorf("capture id = %q, %v; want 123", v, ok)
	}
	if v, ok := m.Captures.Group(0); !ok || v != "/re42/123" {
		t.Errorf("capture 0 = %q, %v", v, ok)
	}
}

func TestBuildReportsBadRoutes(t *testing.T) {
	routes := []Route[string]{
		rt(1, "badre", func(r *Route[string]) { r.Paths = []string{"~/(unclosed"} }),
		rt(2, "good", func(r *Route[string]) { r.Paths = []string{"/"} }),
		{ID: "not-a-uuid", Paths: []string{"/x"}},
		rt(3, "badhost", func(r *Route[string]) { r.Hosts = []string{"a.*.com"} }),
		rt(4, "badheader", func(r *Route[string]) { r.Headers = map[string][]string{"x": {"~*("}} }),
		rt(5, "badproto", func(r *Route[string]) { r.Protocols = []string{"ftp"} }),
	}
	r, errs, err := Build(context.Background(), Options[string]{Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{id(1): true, "not-a-uuid": true, id(3): true, id(4): true, id(5): true}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors (%v), want %d", len(errs), errs, len(want))
	}
	for _, e := range errs {
		if !want[e.ID] {
			t.Errorf("unexpected error for %s: %v", e.ID, e)
		}
	}
	m, ok := r.Match(req{target: "/x"}.toRequest())
	if !ok || m.Route.Value != "good" {
		t.Fatalf("good route not matched: %v %v", ok, m.Route)
	}
}

func TestBuildCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Build(ctx, Options[string]{Routes: []Route[string]{rt(1, "a", nil)}}); err == nil {
		t.Fatal("Build with a cancelled context succeeded")
	}
}

func TestPriorityLayout(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"paths only", computePriority(0, 0, 0, 0, 1, false, false, false, 0, 4), 1<<61 | 4},
		{"hosts+paths", computePriority(0, 1, 0, 0, 1, true, false, false, 0, 1), 2<<61 | 1<<60 | 1},
		{"wildcard host", computePriority(0, 1, 0, 0, 0, true, true, false, 0, 0), 1 << 61},
		{"empty non-nil hosts set the plain bit", computePriority(1, 0, 0, 0, 0, true, false, false, 0, 0), 1<<61 | 1<<60},
		{"headers", computePriority(0, 0, 3, 0, 0, false, false, false, 0, 0), 1<<61 | 3<<52},
		{"header count capped", computePriority(0, 0, 300, 0, 0, false, false, false, 0, 0), 1<<61 | 255<<52},
		{"regex", computePriority(0, 0, 0, 0, 1, false, false, true, 7, 0), 1<<61 | 1<<51 | (0x80000007 << 19)},
		{"all five", computePriority(1, 1, 1, 1, 1, true, false, false, 0, 2), 5<<61 | 1<<60 | 1<<52 | 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("priority = %#x, want %#x", tt.got, tt.want)
			}
		})
	}
}

func TestProtocolRejections(t *testing.T) {
	grpcCT := http.Header{"Content-Type": {"application/grpc"}}
	tests := []struct {
		name      string
		protocols []string
		redirect  int
		scheme    string
		fproto    string
		major     int
		headers   http.Header
		want      Rejection
	}{
		{name: "http+https over http", protocols: []string{"http", "https"}, scheme: "http"},
		{name: "https only over http", protocols: []string{"https"}, scheme: "http",
			want: Rejection{Status: 426, Message: "Please use HTTPS protocol", Upgrade: "TLS/1.2, HTTP/1.1"}},
		{name: "https only over trusted terminated tls", protocols: []string{"https"}, scheme: "http", fproto: "https"},
		{name: "https only redirect", protocols: []string{"https"}, redirect: 308, scheme: "http",
			want: Rejection{Status: 308, RedirectHTTPS: true}},
		{name: "https only over https", protocols: []string{"https"}, scheme: "https"},
		{name: "grpc over http/1.1", protocols: []string{"grpc", "grpcs"}, scheme: "http", major: 1, headers: grpcCT,
			want: Rejection{Status: 426, Message: "Please use HTTP2 protocol", Upgrade: "HTTP/2"}},
		{name: "non-grpc request on grpc route", protocols: []string{"grpc"}, scheme: "http", major: 2,
			want: Rejection{Status: 415, Message: "Non-gRPC request matched gRPC route"}},
		{name: "grpc over plaintext on grpcs route", protocols: []string{"grpcs"}, scheme: "http", major: 2, headers: grpcCT,
			want: Rejection{Status: 200, GRPCStatus: 1, GRPCMessage: "gRPC request matched gRPCs route"}},
		{name: "grpc fine", protocols: []string{"grpc"}, scheme: "http", major: 2, headers: grpcCT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := build(t, rt(1, "r", func(r *Route[string]) {
				r.Protocols = tt.protocols
				r.Paths = []string{"/"}
				r.HTTPSRedirectStatusCode = tt.redirect
			}))
			q := &Request{Scheme: tt.scheme, Method: "POST", Target: "/", ForwardedProto: tt.fproto, HTTPMajor: tt.major}
			if tt.headers != nil {
				q.Headers = tt.headers
			}
			m, ok := r.Match(q)
			if !ok {
				t.Fatal("no match")
			}
			if m.Reject != tt.want {
				t.Errorf("reject = %+v, want %+v", m.Reject, tt.want)
			}
		})
	}
}

func TestMatchPrefixNoAlloc(t *testing.T) {
	var routes []Route[string]
	for i := 0; i < 100; i++ {
		routes = append(routes, rt(i+1, "r", func(r *Route[string]) {
			r.Hosts = []string{fmt.Sprintf("h%d.example.com", i%10), "*.wild.com"}
			r.Paths = []string{fmt.Sprintf("/svc%d", i)}
			r.Headers = map[string][]string{"x-tenant": {"Acme"}}
		}))
	}
	r := build(t, routes...)
	q := &Request{Scheme: "http", Method: "GET", Host: "h3.example.com:8000", Target: "/svc53/items?x=1",
		Port: 8000, Headers: http.Header{"X-Tenant": {"acme"}}}
	if _, ok := r.Match(q); !ok {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(200, func() { r.Match(q) }); n != 0 {
		t.Errorf("Match allocates %v times per call, want 0", n)
	}
}
