package declarative_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"go.yaml.in/yaml/v3"
)

func TestExport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		svc := e.must(201, "POST", e.admin("/services"), map[string]any{"name": "svc", "url": "http://upstream.test:8080/api", "enabled": false})
		e.must(201, "POST", e.admin("/services/svc/routes"), map[string]any{"name": "r1", "paths": []string{"/r1"}})
		e.must(201, "POST", e.admin("/consumers"), map[string]any{"username": "alice"})
		e.must(201, "POST", e.admin("/consumers/alice/key-auth"), map[string]any{"key": "k1"})
		e.must(201, "POST", e.admin("/consumer_groups"), map[string]any{"name": "gold"})
		e.must(201, "POST", e.admin("/consumer_groups/gold/consumers"), map[string]any{"consumer": "alice"})
		e.must(201, "POST", e.admin("/upstreams"), map[string]any{"name": "up"})
		e.must(201, "POST", e.admin("/upstreams/up/targets"), map[string]any{"target": "10.0.0.1:80"})
		e.must(201, "POST", e.admin("/plugins"), map[string]any{"name": "rate-limiting", "service": map[string]any{"name": "svc"}, "config": map[string]any{"minute": 5}})

		code, ct, body := e.raw("GET", e.path("/declarative-config"), "", "", nil)
		if code != 200 || !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("GET: %d %s %s", code, ct, body)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got["_format_version"] != "3.0" || got["_transform"] != false {
			t.Fatalf("header: %v %v", got["_format_version"], got["_transform"])
		}
		for name, n := range map[string]int{"services": 1, "routes": 1, "consumers": 1, "keyauth_credentials": 1, "consumer_groups": 1,
			"consumer_group_consumers": 1, "upstreams": 1, "targets": 1, "plugins": 1} {
			if rows, _ := got[name].([]any); len(rows) != n {
				t.Errorf("%s: %d rows, want %d: %v", name, len(rows), n, got[name])
			}
		}
		if _, ok := got["workspaces"]; ok {
			t.Error("the export carries a workspace")
		}
		// Disabled services are exported, references are ids.
		if s := got["services"].([]any)[0].(map[string]any); s["enabled"] != false || s["id"] != svc["id"] {
			t.Errorf("service %v", s)
		}
		if r := got["routes"].([]any)[0].(map[string]any); r["service"] != svc["id"] {
			t.Errorf("route service %v, want %v", r["service"], svc["id"])
		}

		// The same configuration encodes to the same bytes, under both base paths.
		_, _, again := e.raw("GET", "/v2/control-planes/"+e.group+"/declarative-config", "", "application/json", nil)
		if !bytes.Equal(body, again) {
			t.Errorf("second export differs:\n%s\n%s", body, again)
		}

		code, ct, ybody := e.raw("GET", e.path("/declarative-config"), "", "application/yaml", nil)
		if code != 200 || !strings.HasPrefix(ct, "application/yaml") {
			t.Fatalf("GET yaml: %d %s %s", code, ct, ybody)
		}
		if !strings.HasPrefix(string(ybody), "_format_version: \"3.0\"\n_transform: false\n") {
			t.Errorf("yaml header: %.80s", ybody)
		}
		var fromYAML map[string]any
		if err := yaml.Unmarshal(ybody, &fromYAML); err != nil {
			t.Fatal(err)
		}
		j1, _ := json.Marshal(fromYAML)
		j2, _ := json.Marshal(got)
		if !bytes.Equal(j1, j2) {
			t.Errorf("YAML and JSON differ:\n%s\n%s", j1, j2)
		}
		_, _, y2 := e.raw("GET", e.path("/declarative-config"), "", "text/yaml", nil)
		if !bytes.Equal(ybody, y2) {
			t.Error("second YAML export differs")
		}

		if code, _, _ := e.raw("GET", "/v2/runtime-groups/00000000-0000-0000-0000-000000000000/declarative-config", "", "", nil); code != http.StatusNotFound {
			t.Errorf("unknown group: %d", code)
		}
	})
}
