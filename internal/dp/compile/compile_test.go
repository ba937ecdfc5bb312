package compile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/health"
	"github.com/gantry-gw/gantry/internal/dp/proxy"
	"github.com/gantry-gw/gantry/internal/wire"

	// The bundled plugins the test configurations use.
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/acl"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/correlationid"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/cors"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/ratelimiting"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requesttermination"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// newRegistry returns a health registry closed when the test ends.
func newRegistry(t testing.TB) *health.Registry {
	t.Helper()
	reg, err := health.New(context.Background(), health.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func noEnv(string) (string, bool) { return "", false }

func loadConfig(t testing.TB, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// golden is what a golden file records: the summary of a compiled
// configuration, or the entity errors of a rejected one.
type golden struct {
	Summary *Summary           `json:"summary,omitempty"`
	Errors  []wire.EntityError `json:"errors,omitempty"`
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, in)
			c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
			var g golden
			switch {
			case err == nil:
				defer c.Close()
				s := c.Summary()
				g.Summary = &s
			case errors.Is(err, ErrRejected):
				if c != nil {
					t.Fatal("rejected revision returned a Compiled")
				}
				g.Errors = errs
			default:
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("summary differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

// Credential values are secrets: they must not leak into error reports
// that travel to the control plane and its UI.
func TestErrorsCarryNoSecrets(t *testing.T) {
	_, errs, err := Compile(context.Background(), loadConfig(t, "testdata/errors.json"), Options{Health: newRegistry(t), LookupEnv: noEnv})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	raw, _ := json.Marshal(errs)
	if bytes.Contains(raw, []byte("do-not-print-me")) {
		t.Errorf("entity errors contain a credential key: %s", raw)
	}
}

func svc(id, host string, port int, extra map[string]any) map[string]any {
	m := map[string]any{"id": id, "name": "svc-" + id[len(id)-4:], "protocol": "http", "host": host, "port": float64(port)}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func route(id, service string, extra map[string]any) map[string]any {
	m := map[string]any{"id": id, "name": "route-" + id[len(id)-4:], "service": service}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func arr(vs ...any) []any { return vs }

const (
	svcA   = "00000000-0000-4000-8000-00000000a001"
	consA  = "00000000-0000-4000-8000-00000000c0a1"
	svcB   = "00000000-0000-4000-8000-00000000a002"
	routeA = "00000000-0000-4000-8000-00000000b001"
	routeB = "00000000-0000-4000-8000-00000000b002"
	upA    = "00000000-0000-4000-8000-00000000c001"
)

func TestEntityErrors(t *testing.T) {
	tests := []struct {
		name      string
		cfg       map[string]any
		env       map[string]string
		wantType  string
		wantID    string
		wantName  string
		wantField string
		wantMsg   string
	}{
		{
			name: "bad regex route",
			cfg: map[string]any{"services": arr(svc(svcA, "a.internal", 80, nil)),
				"routes": arr(route(routeA, svcA, map[string]any{"paths": arr("~/x/(")}))},
			wantType: "routes", wantID: routeA, wantName: "route-b001", wantMsg: "invalid regex",
		},
		{
			name:     "route to missing service",
			cfg:      map[string]any{"routes": arr(route(routeA, svcB, map[string]any{"paths": arr("/x")}))},
			wantType: "routes", wantID: routeA, wantField: "service", wantMsg: "does not exist",
		},
		{
			name: "unresolvable vault reference in plugin config",
			cfg: map[string]any{"plugins": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000d001", "name": "rate-limiting",
				"config": map[string]any{"minute": float64(5), "policy": "redis", "redis": map[string]any{"host": "127.0.0.1", "password": "{vault://env/gantry-missing-secret}"}}})},
			wantType: "plugins", wantID: "00000000-0000-4000-8000-00000000d001", wantName: "rate-limiting",
			wantField: "config.redis.password", wantMsg: "",
		},
		{
			name: "plugin config schema violation",
			cfg: map[string]any{"plugins": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000d002", "name": "rate-limiting",
				"config": map[string]any{"policy": "local"}})},
			wantType: "plugins", wantID: "00000000-0000-4000-8000-00000000d002", wantName: "rate-limiting",
		},
		{
			name:     "service port out of range",
			cfg:      map[string]any{"services": arr(svc(svcA, "a.internal", 70000, nil))},
			wantType: "services", wantID: svcA, wantName: "svc-a001", wantMsg: "port",
		},
		{
			name:     "service with wrong field type",
			cfg:      map[string]any{"services": arr(svc(svcA, "a.internal", 80, map[string]any{"retries": "many"}))},
			wantType: "services", wantID: svcA, wantField: "retries", wantMsg: "expected an integer",
		},
		{
			name:     "upstream with unsupported algorithm",
			cfg:      map[string]any{"upstreams": arr(map[string]any{"id": upA, "name": "u1", "algorithm": "latency"})},
			wantType: "upstreams", wantID: upA, wantName: "u1", wantMsg: "not supported",
		},
		{
			name: "upstream with negative health counter",
			cfg: map[string]any{"upstreams": arr(map[string]any{"id": upA, "name": "u1",
				"healthchecks": map[string]any{"passive": map[string]any{"unhealthy": map[string]any{"tcp_failures": float64(-1)}}}})},
			wantType: "upstreams", wantID: upA, wantField: "healthchecks", wantMsg: "negative",
		},
		{
			name: "credential of missing consumer",
			cfg: map[string]any{"keyauth_credentials": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000e001",
				"consumer": "00000000-0000-4000-8000-00000000e0ff", "key": "k"})},
			wantType: "keyauth_credentials", wantID: "00000000-0000-4000-8000-00000000e001", wantField: "consumer",
		},
		{
			name: "second key-auth credential with the same key",
			cfg: map[string]any{"consumers": arr(map[string]any{"id": consA, "username": "alice"}),
				"keyauth_credentials": arr(
					map[string]any{"id": "00000000-0000-4000-8000-00000000e001", "consumer": consA, "key": "k"},
					map[string]any{"id": "00000000-0000-4000-8000-00000000e002", "consumer": consA, "key": "k"})},
			wantType: "keyauth_credentials", wantID: "00000000-0000-4000-8000-00000000e002", wantField: "key", wantMsg: "another key-auth credential has this key",
		},
		{
			name: "key-auth credential without a key",
			cfg: map[string]any{"consumers": arr(map[string]any{"id": consA, "username": "alice"}),
				"keyauth_credentials": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000e001", "consumer": consA})},
			wantType: "keyauth_credentials", wantID: "00000000-0000-4000-8000-00000000e001", wantField: "key", wantMsg: "required field missing",
		},
		{
			name: "second basic-auth credential with the same username",
			cfg: map[string]any{"consumers": arr(map[string]any{"id": consA, "username": "alice"}),
				"basicauth_credentials": arr(
					map[string]any{"id": "00000000-0000-4000-8000-00000000e011", "consumer": consA, "username": "bob", "password": "x"},
					map[string]any{"id": "00000000-0000-4000-8000-00000000e012", "consumer": consA, "username": "bob", "password": "y"})},
			wantType: "basicauth_credentials", wantID: "00000000-0000-4000-8000-00000000e012", wantName: "bob", wantField: "username", wantMsg: "missing or duplicate username",
		},
		{
			name: "jwt secret without a key",
			cfg: map[string]any{"consumers": arr(map[string]any{"id": consA, "username": "alice"}),
				"jwt_secrets": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000e021", "consumer": consA, "secret": "s"})},
			wantType: "jwt_secrets", wantID: "00000000-0000-4000-8000-00000000e021", wantField: "key", wantMsg: "missing or duplicate key",
		},
		{
			name: "hmac-auth credential of missing consumer",
			cfg: map[string]any{"hmacauth_credentials": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000e031",
				"consumer": "00000000-0000-4000-8000-00000000e0ff", "username": "h", "secret": "s"})},
			wantType: "hmacauth_credentials", wantID: "00000000-0000-4000-8000-00000000e031", wantName: "h", wantField: "consumer",
		},
		{
			name: "certificate with unresolvable key reference",
			cfg: map[string]any{"certificates": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000f001",
				"cert": "x", "key": "{vault://env/gantry-missing-key}"})},
			wantType: "certificates", wantID: "00000000-0000-4000-8000-00000000f001", wantField: "key",
		},
		{
			name:     "unknown plugin",
			cfg:      map[string]any{"plugins": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000d003", "name": "nope", "config": map[string]any{}})},
			wantType: "plugins", wantID: "00000000-0000-4000-8000-00000000d003", wantName: "nope", wantMsg: "not available",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			c, errs, err := Compile(context.Background(), tc.cfg, Options{Health: newRegistry(t), LookupEnv: lookup})
			if !errors.Is(err, ErrRejected) || c != nil {
				t.Fatalf("Compile = %v, %v; want rejection", c, err)
			}
			for _, e := range errs {
				if e.EntityType == tc.wantType && e.EntityID == tc.wantID && (tc.wantName == "" || e.EntityName == tc.wantName) &&
					(tc.wantField == "" || e.Field == tc.wantField) && strings.Contains(e.Message, tc.wantMsg) {
					return
				}
			}
			t.Errorf("no error %s %s %q field %q containing %q in %+v", tc.wantType, tc.wantID, tc.wantName, tc.wantField, tc.wantMsg, errs)
		})
	}
}

// All errors of a revision are reported together, not only the first.
func TestAllErrorsReported(t *testing.T) {
	_, errs, err := Compile(context.Background(), loadConfig(t, "testdata/errors.json"), Options{Health: newRegistry(t), LookupEnv: noEnv})
	if !errors.Is(err, ErrRejected) {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, e := range errs {
		types[e.EntityType] = true
	}
	for _, want := range []string{"routes", "services", "upstreams", "targets", "keyauth_credentials", "snis", "plugins"} {
		if !types[want] {
			t.Errorf("no %s error among %+v", want, errs)
		}
	}
}

func TestVaultReferenceResolved(t *testing.T) {
	cfg := map[string]any{
		"vaults": arr(map[string]any{"id": "00000000-0000-4000-8000-000000000a01", "name": "env", "prefix": "my-env", "config": map[string]any{"prefix": "GW_"}}),
		"plugins": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000d001", "name": "rate-limiting",
			"config": map[string]any{"minute": float64(5), "policy": "redis", "redis": map[string]any{"host": "127.0.0.1", "password": "{vault://my-env/redis-pass}"}}}),
	}
	env := map[string]string{"GW_REDIS_PASS": "s3cret"}
	c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatalf("Compile: %v %+v", err, errs)
	}
	defer c.Close()
	if got := c.Plugins().NoRoute().Plugins(); len(got) != 1 || got[0] != "rate-limiting" {
		t.Errorf("global plugins = %v", got)
	}
}

func TestResolvePaths(t *testing.T) {
	cfg := map[string]any{
		"services": arr(
			svc(svcA, "a.internal", 8080, map[string]any{"path": "/base"}),
			svc(svcB, "b.internal", 80, nil),
		),
		"routes": arr(
			route(routeA, svcA, map[string]any{"paths": arr("/api"), "strip_path": true}),
			route(routeB, svcB, map[string]any{"paths": arr("/keep"), "strip_path": false, "hosts": arr("b.example.com"), "preserve_host": true}),
			route("00000000-0000-4000-8000-00000000b003", svcB, map[string]any{"paths": arr("/hdr"), "headers": map[string]any{"x-version": arr("2")}}),
			route("00000000-0000-4000-8000-00000000b004", svcA, map[string]any{"paths": arr("/hdr"), "methods": arr("POST")}),
		),
	}
	c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("%v %+v", err, errs)
	}
	defer c.Close()
	tests := []struct {
		name, method, target, host string
		header                     map[string]string
		wantService                string
		wantPath, wantPrefix       string
		wantPreserve               bool
	}{
		{name: "strip with service path", method: "GET", target: "/api/items?q=1", wantService: svcA, wantPath: "/base/items", wantPrefix: "/api"},
		{name: "strip exact prefix", method: "GET", target: "/api", wantService: svcA, wantPath: "/base", wantPrefix: "/api"},
		{name: "no strip, host match", method: "GET", target: "/keep/x", host: "b.example.com", wantService: svcB, wantPath: "/keep/x", wantPreserve: true},
		{name: "host mismatch", method: "GET", target: "/keep/x", host: "c.example.com"},
		{name: "header route", method: "GET", target: "/hdr", header: map[string]string{"X-Version": "2"}, wantService: svcB, wantPath: "/", wantPrefix: "/hdr"},
		{name: "method route", method: "POST", target: "/hdr/a", wantService: svcA, wantPath: "/base/a", wantPrefix: "/hdr"},
		{name: "no route", method: "GET", target: "/nothing"},
		{name: "normalized path", method: "GET", target: "/api/a/../b", wantService: svcA, wantPath: "/base/b", wantPrefix: "/api"},
		// Absolute form (RFC 9112 3.2.2): routed and rewritten from the same
		// path, never from the scheme and authority.
		{name: "absolute form strip", method: "GET", target: "http://x/api/items?q=1", host: "x", wantService: svcA, wantPath: "/base/items", wantPrefix: "/api"},
		{name: "absolute form keep", method: "GET", target: "http://b.example.com/keep/x", host: "b.example.com", wantService: svcB, wantPath: "/keep/x", wantPreserve: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			var m proxy.Match
			c.Resolve(r, &m)
			if tc.wantService == "" {
				if m.Service != nil {
					t.Fatalf("matched service %s, want none", m.Service.ID)
				}
				return
			}
			if m.Service == nil || m.Service.ID != tc.wantService {
				t.Fatalf("service = %+v, want %s", m.Service, tc.wantService)
			}
			if m.Path != tc.wantPath || m.Prefix != tc.wantPrefix || m.PreserveHost != tc.wantPreserve {
				t.Errorf("path %q prefix %q preserve %v; want %q %q %v", m.Path, m.Prefix, m.PreserveHost, tc.wantPath, tc.wantPrefix, tc.wantPreserve)
			}
		})
	}
}

func TestRejectedRevisionLeavesHealthAlone(t *testing.T) {
	reg := newRegistry(t)
	good := map[string]any{
		"upstreams": arr(map[string]any{"id": upA, "name": "u1"}),
		"targets":   arr(map[string]any{"id": "00000000-0000-4000-8000-00000000c101", "upstream": upA, "target": "10.0.0.1:80"}),
	}
	c, _, err := Compile(context.Background(), good, Options{Health: reg, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := map[string]any{
		"upstreams": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000c002", "name": "u2"}),
		"routes":    arr(route(routeA, svcB, map[string]any{"paths": arr("/x")})),
	}
	if _, _, err := Compile(context.Background(), bad, Options{Health: reg, LookupEnv: noEnv}); !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := reg.Status(upA); !ok {
		t.Error("a rejected revision removed the serving revision's upstream from the health registry")
	}
	if _, ok := reg.Status("00000000-0000-4000-8000-00000000c002"); ok {
		t.Error("a rejected revision added its upstream to the health registry")
	}
}

// Health state is keyed by identity in the registry, so a target marked
// unhealthy stays out of rotation in the next revision's balancer.
func TestHealthSurvivesRecompile(t *testing.T) {
	reg := newRegistry(t)
	cfg := map[string]any{
		"services": arr(svc(svcA, "u1", 80, nil)),
		"upstreams": arr(map[string]any{"id": upA, "name": "u1",
			"healthchecks": map[string]any{"passive": map[string]any{"unhealthy": map[string]any{"tcp_failures": float64(1)}}}}),
		"targets": arr(
			map[string]any{"id": "00000000-0000-4000-8000-00000000c101", "upstream": upA, "target": "127.0.0.1:1001"},
			map[string]any{"id": "00000000-0000-4000-8000-00000000c102", "upstream": upA, "target": "127.0.0.1:1002"},
		),
	}
	c1, _, err := Compile(context.Background(), cfg, Options{Health: reg, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	u1 := c1.Services()[0].Upstream
	if u1 == nil {
		t.Fatal("service not bound to its upstream")
	}
	u1.Report("127.0.0.1:1001", errors.New("connection refused"))

	c2, _, err := Compile(context.Background(), cfg, Options{Health: reg, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	u2 := c2.Services()[0].Upstream
	r := httptest.NewRequest("GET", "/", nil)
	for i := range 4 {
		addr, err := u2.Pick(r, 0)
		if err != nil {
			t.Fatal(err)
		}
		u2.Report(addr, nil)
		if addr != "127.0.0.1:1002" {
			t.Fatalf("pick %d = %s; the unhealthy target is back in rotation", i, addr)
		}
	}
	// With every target down the proxy must get Kong's 503 error.
	u2.Report("127.0.0.1:1002", errors.New("connection refused"))
	if _, err := u2.Pick(r, 0); !errors.Is(err, proxy.ErrNoPeer) {
		t.Errorf("Pick with no healthy target = %v, want ErrNoPeer", err)
	}
}

func TestCompileHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Compile(ctx, map[string]any{}, Options{Health: newRegistry(t)}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, _, err := Compile(context.Background(), nil, Options{}); err == nil {
		t.Error("Compile without a health registry succeeded")
	}
}
