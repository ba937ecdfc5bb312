package e2e

import (
	"net/http"
	"testing"
)

// TestRequestTransformerTemplates configures request-transformer values
// holding Kong's templates through the Admin API and checks what the
// upstream receives.
func TestRequestTransformerTemplates(t *testing.T) {
	e := newGatewayEnv(t, "rt-templates")
	up := newEcho(t, "up")
	e.create(t, "services", map[string]any{"name": "echo", "url": up.URL})
	e.create(t, "services/echo/routes", map[string]any{"name": "tpl", "paths": []string{"/tpl"}})
	e.create(t, "routes/tpl/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{
		"add": map[string]any{
			"headers":     []string{"x-user:$(headers.x_user_id)", "x-plan:$(query_params.plan or 'free')"},
			"querystring": []string{"uid:$(headers['X-User-Id'])"},
		},
		"replace": map[string]any{"uri": "/users/$(headers.x_user_id)"},
	}})
	// A regex route whose named and numbered captures feed the templates (Kong's uri_captures).
	e.create(t, "services/echo/routes", map[string]any{"name": "cap", "paths": []string{`~/accounts/(?<account>[a-z0-9]+)/items/(\d+)$`}})
	e.create(t, "routes/cap/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{
		"add":     map[string]any{"headers": []string{"x-account:$(uri_captures.account)", "x-item:$(uri_captures[2])"}},
		"replace": map[string]any{"uri": "/v2/$(uri_captures['account'])"},
	}})
	e.converge(t)

	capRes, capBody := e.send(t, mustRequest(t, "GET", e.proxyURL("/accounts/acme42/items/17"), nil))
	if capRes.StatusCode != 200 {
		t.Fatalf("captures route: %d %s", capRes.StatusCode, capBody)
	}
	cs := decodeSeen(t, capBody)
	if ch := http.Header(cs.Header); ch.Get("X-Account") != "acme42" || ch.Get("X-Item") != "17" || cs.Path != "/v2/acme42" {
		t.Errorf("captures: upstream saw path %q X-Account %q X-Item %q", cs.Path, ch.Get("X-Account"), ch.Get("X-Item"))
	}

	req := mustRequest(t, "GET", e.proxyURL("/tpl/anything?x=1"), nil)
	req.Header.Set("X-User-Id", "u-7")
	res, body := e.send(t, req)
	if res.StatusCode != 200 {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	s := decodeSeen(t, body)
	h := http.Header(s.Header)
	if h.Get("X-User") != "u-7" || h.Get("X-Plan") != "free" || s.Path != "/users/u-7" || s.RawQuery != "uid=u-7&x=1" {
		t.Errorf("upstream saw path %q query %q X-User %q X-Plan %q", s.Path, s.RawQuery, h.Get("X-User"), h.Get("X-Plan"))
	}
}
