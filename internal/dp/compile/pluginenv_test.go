package compile

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// TestPluginEnvKeysAndNames checks what the plugin environment gets from a
// revision: keys entities with their set's name, and the names Kong's
// metrics use for routes (name, else id) and services (name, else host).
func TestPluginEnvKeysAndNames(t *testing.T) {
	noName := svc(svcB, "backend.internal", 80, nil)
	delete(noName, "name")
	unnamedRoute := route(routeB, svcB, map[string]any{"paths": arr("/b")})
	delete(unnamedRoute, "name")
	cfg := map[string]any{
		"services": arr(svc(svcA, "a.internal", 80, nil), noName),
		"routes":   arr(route(routeA, svcA, map[string]any{"paths": arr("/a")}), unnamedRoute),
		"key_sets": arr(map[string]any{"id": "set-1", "name": "issuer-a"}),
		"keys": arr(
			map[string]any{"id": "k1", "name": "one", "kid": "kid-1", "set": "set-1", "pem": map[string]any{"public_key": "PEM-1"}},
			map[string]any{"id": "k2", "name": "two", "kid": "kid-1", "jwk": `{"kty":"OKP"}`},
		),
	}
	c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("compile: %v %v", err, errs)
	}
	defer c.Close()
	keys := c.Env().KeysByKid("kid-1")
	if len(keys) != 2 || keys[0].ID != "k1" || keys[0].SetName != "issuer-a" || keys[0].PublicKey != "PEM-1" ||
		keys[1].ID != "k2" || keys[1].SetID != "" || keys[1].JWK != `{"kty":"OKP"}` {
		t.Fatalf("keys by kid: %+v", keys)
	}
	want := map[string][2]string{routeA: {"route-b001", "svc-a001"}, routeB: {routeB, "backend.internal"}}
	for _, rt := range c.Routes() {
		pc := plugin.AcquireCtx(httptest.NewRequest("GET", "/", nil))
		rt.Chain.Access(pc)
		got := [2]string{pc.RouteName, pc.ServiceName}
		plugin.ReleaseCtx(pc)
		if got != want[rt.ID] {
			t.Errorf("route %s: names %q, want %q", rt.ID, got, want[rt.ID])
		}
	}

	dup := map[string]any{"keys": arr(
		map[string]any{"id": "k1", "name": "one", "kid": "same", "jwk": `{}`},
		map[string]any{"id": "k2", "name": "two", "kid": "same", "jwk": `{}`},
	)}
	if _, errs, err := Compile(context.Background(), dup, Options{Health: newRegistry(t), LookupEnv: noEnv}); err == nil || len(errs) != 1 || errs[0].EntityType != "keys" {
		t.Errorf("duplicate kid: err %v, entity errors %+v", err, errs)
	}
}
