package adminapi_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// minimalPluginConfig is the smallest config each bundled plugin accepts, for the plugins that
// refuse an empty one; every other plugin is created with {}. TestPluginSchemaDefaults fails when
// a plugin refuses {} and has no entry here, so the list follows the bundled plugins.
var minimalPluginConfig = map[string]map[string]any{
	"acl":            {"allow": []any{"admins"}},
	"file-log":       {"path": "/tmp/gantry-test.log"},
	"http-log":       {"http_endpoint": "http://log.test/"},
	"ip-restriction": {"allow": []any{"10.0.0.0/8"}},
	"proxy-cache":    {"strategy": "memory"},
	"rate-limiting":  {"minute": 5},
}

// defaultsOf builds the value the server should store for a record whose fields are rendered as
// Kong's /schemas answer lists them: each field's "default", a nested record's own defaults when
// it declares none, and null otherwise; given values replace them.
func defaultsOf(fields []any, given map[string]any) map[string]any {
	out := map[string]any{}
	for _, entry := range fields {
		for name, raw := range entry.(map[string]any) {
			f := raw.(map[string]any)
			switch d, ok := f["default"]; {
			case ok:
				out[name] = d
			case f["type"] == "record":
				sub, _ := f["fields"].([]any)
				out[name] = defaultsOf(sub, nil)
			default:
				out[name] = nil
			}
			if v, ok := given[name]; ok {
				if gm, isMap := v.(map[string]any); isMap && f["type"] == "record" {
					sub, _ := f["fields"].([]any)
					out[name] = defaultsOf(sub, gm)
				} else {
					out[name] = v
				}
			}
		}
	}
	return out
}

// configFields returns the fields of the "config" record in a rendered plugin or vault schema.
func configFields(t *testing.T, schema map[string]any) []any {
	t.Helper()
	for _, entry := range schema["fields"].([]any) {
		if f, ok := entry.(map[string]any)["config"].(map[string]any); ok {
			sub, _ := f["fields"].([]any)
			return sub
		}
	}
	t.Fatal("schema without a config record")
	return nil
}

// jsonRound makes a Go value compare like a decoded JSON answer.
func jsonRound(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPluginSchemaDefaults creates every bundled plugin with a minimal config and checks that the
// stored config is exactly what GET /schemas/plugins/{name} promises: the defaults it lists, and
// null for every field without one. Kong's schema endpoint renders the same schema its DAO fills
// defaults from (Kong/kong kong/api/routes/kong.lua "/schemas/plugins/:name").
func TestPluginSchemaDefaults(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		enabled := e.do("GET", "/plugins/enabled", nil).must(t, 200)["enabled_plugins"].([]any)
		if len(enabled) < 10 {
			t.Fatalf("only %d bundled plugins", len(enabled))
		}
		for _, n := range enabled {
			name := n.(string)
			t.Run(name, func(t *testing.T) {
				g := e.inNewGroup(t)
				schema := g.do("GET", "/schemas/plugins/"+name, nil).must(t, 200)
				cfg, listed := minimalPluginConfig[name]
				if cfg == nil {
					cfg = map[string]any{}
				}
				r := g.do("POST", "/plugins", map[string]any{"name": name, "config": cfg})
				if r.status != 201 {
					if !listed {
						t.Fatalf("%s refuses an empty config; give it a minimal one in minimalPluginConfig: %s", name, r.raw)
					}
					t.Fatalf("minimal config refused: %s", r.raw)
				}
				want := jsonRound(t, defaultsOf(configFields(t, schema), cfg))
				if got := r.body["config"]; !reflect.DeepEqual(got, want) {
					diffDefaults(t, "config", got, want)
				}
				// The plugin's own fields follow the same schema.
				top := defaultsOf(schema["fields"].([]any), nil)
				for _, f := range []string{"enabled", "protocols", "route", "service", "consumer", "instance_name", "tags"} {
					if w, ok := top[f]; ok && !reflect.DeepEqual(r.body[f], jsonRound(t, w)) {
						t.Errorf("%s = %v, schema default %v", f, r.body[f], w)
					}
				}
			})
		}
	})
}

// diffDefaults reports each path where a stored value differs from the schema's default.
func diffDefaults(t *testing.T, path string, got, want any) {
	t.Helper()
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if !gok || !wok {
		t.Errorf("%s = %s, schema says %s", path, js(got), js(want))
		return
	}
	for k := range wm {
		if _, ok := gm[k]; !ok {
			t.Errorf("%s.%s missing, schema says %s", path, k, js(wm[k]))
		}
	}
	for k, gv := range gm {
		wv, ok := wm[k]
		if !ok {
			t.Errorf("%s.%s = %s is not in the schema", path, k, js(gv))
			continue
		}
		if !reflect.DeepEqual(gv, wv) {
			diffDefaults(t, path+"."+k, gv, wv)
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestVaultSchema checks GET /schemas/vaults/{name} (Kong/kong kong/api/routes/kong.lua
// "/schemas/vaults/:name": the vault subschema, 404 "No vault named 'x'") and that a vault
// created without config stores the defaults it lists.
func TestVaultSchema(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		b := e.do("GET", "/schemas/vaults/nope", nil).must(t, 404)
		if b["message"] != "No vault named 'nope'" {
			t.Errorf("unknown vault %v", b)
		}
		schema := e.do("GET", "/schemas/vaults/env", nil).must(t, 200)
		want := jsonRound(t, defaultsOf(configFields(t, schema), nil))
		v := e.do("POST", "/vaults", map[string]any{"name": "env", "prefix": "my-env"}).must(t, 201)
		if !reflect.DeepEqual(v["config"], want) {
			diffDefaults(t, "config", v["config"], want)
		}
		if !strings.Contains(js(schema["fields"]), `"prefix"`) {
			t.Errorf("vault schema without its fields: %s", js(schema))
		}
	})
}
