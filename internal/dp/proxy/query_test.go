package proxy

import (
	"net/http"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// TestBareQuestionMark checks that a request target ending in a bare '?' reaches the upstream
// with it, whether the resolver rewrote the path or not: Kong's runloop appends "?" to the
// upstream URI when $request_uri ends with one (Kong/kong kong/runloop/handler.lua), where
// nginx alone would drop the empty query.
func TestBareQuestionMark(t *testing.T) { bothServers(t, testBareQuestionMark) }

func testBareQuestionMark(t *testing.T, sk serverKind) {
	cu := newCapture(t)
	svc := serviceFor(t, cu.addr())
	for _, tc := range []struct {
		name, target, path, want string
	}{
		{"rewritten path", "/a/b?", "/svc/b", "/svc/b?"},
		{"request path", "/a/b?", "", "/a/b?"},
		{"rewritten path with a query", "/a/b?x=1", "/svc/b", "/svc/b?x=1"},
		{"rewritten path without a query", "/a/b", "/svc/b", "/svc/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			cfg := &Config{Resolver: resolverFunc(func(_ *http.Request, out *Match) { *out = Match{Path: path, Service: svc} })}
			env := newEnv(t, sk, cfg, h1client.Options{})
			resp, _ := get(t, env.url+tc.target)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			cu.mu.Lock()
			defer cu.mu.Unlock()
			if cu.uri != tc.want {
				t.Errorf("upstream URI %q, want %q", cu.uri, tc.want)
			}
		})
	}
}
