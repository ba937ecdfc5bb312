package router

import (
	"context"
	"strings"
	"testing"
)

// TestUpstreamPathMatrix covers strip_path × service path × route path ×
// request path with path_handling v0. The expected values follow Kong's
// get_upstream_uri_v0 rules; the matched part comes from the real router.
func TestUpstreamPathMatrix(t *testing.T) {
	// want lists the upstream path for service paths nil, "/", "/s", "/s/".
	type row struct {
		routePath, request string
		strip              bool
		want               [4]string
	}
	services := [4]string{"", "/", "/s", "/s/"}
	rows := []row{
		{"/", "/", true, [4]string{"/", "/", "/s", "/s/"}},
		{"/", "/foo", true, [4]string{"/foo", "/foo", "/s/foo", "/s/foo"}},
		{"/", "/foo/", true, [4]string{"/foo/", "/foo/", "/s/foo/", "/s/foo/"}},
		{"/r", "/r", true, [4]string{"/", "/", "/s", "/s"}},
		{"/r", "/r/", true, [4]string{"/", "/", "/s/", "/s/"}},
		{"/r", "/r/foo", true, [4]string{"/foo", "/foo", "/s/foo", "/s/foo"}},
		{"/r", "/rfoo", true, [4]string{"/foo", "/foo", "/s/foo", "/s/foo"}},
		{"/r/", "/r/", true, [4]string{"/", "/", "/s/", "/s/"}},
		{"/r/", "/r/foo", true, [4]string{"/foo", "/foo", "/s/foo", "/s/foo"}},
		{"/r/", "/r/foo/", true, [4]string{"/foo/", "/foo/", "/s/foo/", "/s/foo/"}},
		{`~/r/\d+`, "/r/123", true, [4]string{"/", "/", "/s", "/s"}},
		{`~/r/\d+`, "/r/123/x", true, [4]string{"/x", "/x", "/s/x", "/s/x"}},
		{`~/r/\d+`, "/r/123x", true, [4]string{"/x", "/x", "/s/x", "/s/x"}},

		{"/", "/", false, [4]string{"/", "/", "/s", "/s/"}},
		{"/", "/foo", false, [4]string{"/foo", "/foo", "/s/foo", "/s/foo"}},
		{"/", "/foo/", false, [4]string{"/foo/", "/foo/", "/s/foo/", "/s/foo/"}},
		{"/r", "/r", false, [4]string{"/r", "/r", "/s/r", "/s/r"}},
		{"/r", "/r/", false, [4]string{"/r/", "/r/", "/s/r/", "/s/r/"}},
		{"/r", "/r/foo", false, [4]string{"/r/foo", "/r/foo", "/s/r/foo", "/s/r/foo"}},
		{"/r", "/rfoo", false, [4]string{"/rfoo", "/rfoo", "/s/rfoo", "/s/rfoo"}},
		{"/r/", "/r/", false, [4]string{"/r/", "/r/", "/s/r/", "/s/r/"}},
		{"/r/", "/r/foo", false, [4]string{"/r/foo", "/r/foo", "/s/r/foo", "/s/r/foo"}},
		{`~/r/\d+`, "/r/123", false, [4]string{"/r/123", "/r/123", "/s/r/123", "/s/r/123"}},
		{`~/r/\d+`, "/r/123/x", false, [4]string{"/r/123/x", "/r/123/x", "/s/r/123/x", "/s/r/123/x"}},
	}
	for _, rw := range rows {
		r, errs, err := Build(context.Background(), Options[string]{Routes: []Route[string]{
			{ID: id(1), Paths: []string{rw.routePath}, StripPath: rw.strip},
		}})
		if err != nil || len(errs) > 0 {
			t.Fatalf("build: %v %v", err, errs)
		}
		m, ok := r.Match(&Request{Scheme: "http", Method: "GET", Target: rw.request})
		if !ok {
			t.Fatalf("route %q did not match %q", rw.routePath, rw.request)
		}
		for i, svc := range services {
			name := strings.Join([]string{"strip=" + map[bool]string{true: "on", false: "off"}[rw.strip],
				"svc=" + svc, "route=" + rw.routePath, "req=" + rw.request}, " ")
			t.Run(name, func(t *testing.T) {
				got := UpstreamPath(svc, rw.request, m.MatchedPath, rw.strip, PathHandlingV0)
				if got != rw.want[i] {
					t.Errorf("UpstreamPath = %q, want %q", got, rw.want[i])
				}
			})
		}
	}
}

func TestUpstreamPathDetails(t *testing.T) {
	tests := []struct {
		name                           string
		svc, target, matched, handling string
		strip                          bool
		want                           string
	}{
		{"query kept", "/s", "/r/foo?a=b&c", "/r", PathHandlingV0, true, "/s/foo?a=b&c"},
		{"empty query kept", "/s", "/r?", "/r", PathHandlingV0, true, "/s?"},
		{"no paths strip", "/s", "/foo", "", PathHandlingV0, true, "/s/foo"},
		{"dot postfix sanitized", "/s", "/r../x", "/r", PathHandlingV0, true, "/s/x"},
		{"bare dots postfix dropped", "/s", "/r..", "/r", PathHandlingV0, true, "/s"},
		{"decoded others re-escaped", "/s", "/r/a%20b", "/r", PathHandlingV0, true, "/s/a%20b"},
		{"unreserved escapes decoded", "/s", "/r/%7Euser", "/r", PathHandlingV0, true, "/s/~user"},
		{"reserved escapes kept", "/s", "/r/a%2fb", "/r", PathHandlingV0, true, "/s/a%2Fb"},
		{"v1 strip no separator", "/s", "/rfoo", "/r", PathHandlingV1, true, "/sfoo"},
		{"v1 strip slash postfix", "/s/", "/r/foo", "/r", PathHandlingV1, true, "/s/foo"},
		{"v1 strip exact", "/s", "/r", "/r", PathHandlingV1, true, "/s"},
		{"v1 no strip", "/s", "/foo", "/", PathHandlingV1, false, "/sfoo"},
		{"v1 no strip slash base", "/s/", "/foo", "/", PathHandlingV1, false, "/s/foo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UpstreamPath(tt.svc, tt.target, tt.matched, tt.strip, tt.handling); got != tt.want {
				t.Errorf("UpstreamPath(%q, %q, %q, %v, %s) = %q, want %q",
					tt.svc, tt.target, tt.matched, tt.strip, tt.handling, got, tt.want)
			}
		})
	}
}
