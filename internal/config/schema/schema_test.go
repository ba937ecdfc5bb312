package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkReportedDefaults walks a KongSchema field list and asserts doc holds
// every reported default; records without a default are walked into.
func checkReportedDefaults(t *testing.T, path string, fields []any, doc map[string]any) int {
	t.Helper()
	n := 0
	for _, entry := range fields {
		for name, attrsAny := range entry.(map[string]any) {
			attrs := attrsAny.(map[string]any)
			if def, ok := attrs["default"]; ok {
				n++
				if got, want := mustJSON(t, doc[name]), mustJSON(t, def); got != want {
					t.Errorf("%s%s: schema reports default %s, Process filled %s", path, name, want, got)
				}
				continue
			}
			if attrs["type"] == TypeRecord {
				sub, ok := doc[name].(map[string]any)
				if !ok {
					if attrs["required"] == true {
						t.Errorf("%s%s: required record not filled: %v", path, name, doc[name])
					}
					continue
				}
				n += checkReportedDefaults(t, path+name+".", attrs["fields"].([]any), sub)
			}
		}
	}
	return n
}

// flattenJSONDefaults walks JSONSchema properties the way go-kong does.
func checkJSONDefaults(t *testing.T, path string, schema map[string]any, doc map[string]any) {
	t.Helper()
	props, _ := schema["properties"].(map[string]any)
	for name, pAny := range props {
		p := pAny.(map[string]any)
		if _, isRecord := p["properties"]; isRecord && p["description"] != "foreign" {
			if sub, ok := doc[name].(map[string]any); ok {
				checkJSONDefaults(t, path+name+".", p, sub)
			}
			continue
		}
		if def, ok := p["default"]; ok {
			if got, want := mustJSON(t, doc[name]), mustJSON(t, def); got != want {
				t.Errorf("json %s%s: default %s, Process filled %s", path, name, want, got)
			}
		}
	}
}

func TestReportedDefaultsAreFilled(t *testing.T) {
	inputs := minimalInputs()
	for _, e := range Entities() {
		t.Run(e.Name, func(t *testing.T) {
			in, ok := inputs[e.Name]
			if !ok {
				t.Fatalf("no minimal input for %s", e.Name)
			}
			doc, _, err := e.Process(OpCreate, jsonRoundTrip(t, in), nil)
			if err != nil {
				t.Fatalf("minimal input refused: %v", err)
			}
			for _, f := range e.Fields {
				if _, ok := doc[f.Name]; !ok {
					t.Errorf("field %s absent from the document", f.Name)
				}
			}
			if n := checkReportedDefaults(t, "", e.KongSchema()["fields"].([]any), doc); n == 0 && e.Name != "key_sets" && e.Name != "consumers" && e.Name != "consumer_groups" && e.Name != "snis" && e.Name != "ca_certificates" && e.Name != "certificates" && e.Name != "keyauth_credentials" && e.Name != "hmacauth_credentials" && e.Name != "acls" && e.Name != "basicauth_credentials" && e.Name != "vaults" && e.Name != "keys" {
				t.Errorf("no defaults checked")
			}
			checkJSONDefaults(t, "", e.JSONSchema(), doc)
		})
	}
	configs := minimalPluginConfigs()
	for _, p := range Plugins() {
		t.Run("plugin/"+p.Name, func(t *testing.T) {
			in := map[string]any{"name": p.Name}
			if c, ok := configs[p.Name]; ok {
				in["config"] = c
			}
			doc, _, err := p.Process(OpCreate, jsonRoundTrip(t, in), nil)
			if err != nil {
				t.Fatalf("minimal plugin refused: %v", err)
			}
			if n := checkReportedDefaults(t, "", p.KongSchema()["fields"].([]any), doc); n < 2 {
				t.Errorf("only %d defaults checked", n)
			}
			checkJSONDefaults(t, "", p.JSONSchema(), doc)
		})
	}
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file; run go test -update and review the diff", path)
	}
}

func TestKongSchemaGolden(t *testing.T) {
	for _, e := range Entities() {
		t.Run(e.Name, func(t *testing.T) { golden(t, "entity_"+e.Name, e.KongSchema()) })
	}
	for _, p := range Plugins() {
		t.Run(p.Name, func(t *testing.T) { golden(t, "plugin_"+p.Name, p.KongSchema()) })
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		key, want, nested string
	}{
		{"services", "services", ""},
		{"key-sets", "key_sets", ""},
		{"key-auths", "keyauth_credentials", "key-auth"},
		{"basic-auths", "basicauth_credentials", "basic-auth"},
		{"jwts", "jwt_secrets", "jwt"},
		{"hmac-auths", "hmacauth_credentials", "hmac-auth"},
		{"acls", "acls", "acls"},
		{"consumer_groups", "consumer_groups", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			e, ok := Lookup(tt.key)
			if !ok || e.Name != tt.want || e.NestedPath != tt.nested {
				t.Fatalf("Lookup(%q) = %v, %v", tt.key, e, ok)
			}
			if tt.nested != "" {
				n, ok := LookupNested(tt.nested)
				if !ok || n != e {
					t.Fatalf("LookupNested(%q) = %v", tt.nested, n)
				}
			}
		})
	}
	if _, ok := Lookup("nope"); ok {
		t.Fatal("unknown entity found")
	}
	if len(Plugins()) != 18 {
		t.Fatalf("got %d plugins, want 18", len(Plugins()))
	}
	if p, ok := LookupPlugin("correlation-id"); !ok || p.Priority != 100001 || p.Version != KongVersion {
		t.Fatalf("correlation-id = %+v", p)
	}
	names := []string{}
	for _, p := range Plugins() {
		names = append(names, p.Name)
	}
	if !reflect.DeepEqual(names, append([]string(nil), sortedCopy(names)...)) {
		t.Fatalf("plugins not sorted: %v", names)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func TestRefsAndUnique(t *testing.T) {
	tests := []struct {
		entity string
		refs   []Ref
		unique [][]string
	}{
		{"routes", []Ref{{Field: "service", Entity: "services", OnDelete: "restrict"}}, [][]string{{"name"}}},
		{"targets", []Ref{{Field: "upstream", Entity: "upstreams", Required: true, OnDelete: "cascade"}}, [][]string{{"upstream", "target"}}},
		{"acls", []Ref{{Field: "consumer", Entity: "consumers", Required: true, OnDelete: "cascade"}}, [][]string{{"consumer", "group"}}},
		{"plugins", []Ref{
			{Field: "route", Entity: "routes", OnDelete: "cascade"},
			{Field: "service", Entity: "services", OnDelete: "cascade"},
			{Field: "consumer", Entity: "consumers", OnDelete: "cascade"},
			{Field: "consumer_group", Entity: "consumer_groups", OnDelete: "cascade"},
		}, [][]string{{"instance_name"}, {"name", "route", "service", "consumer", "consumer_group"}}},
	}
	for _, tt := range tests {
		t.Run(tt.entity, func(t *testing.T) {
			e, _ := Lookup(tt.entity)
			if !reflect.DeepEqual(e.Refs, tt.refs) {
				t.Errorf("refs = %+v, want %+v", e.Refs, tt.refs)
			}
			if !reflect.DeepEqual(e.Unique, tt.unique) {
				t.Errorf("unique = %v, want %v", e.Unique, tt.unique)
			}
		})
	}
}

func TestEndpointKeys(t *testing.T) {
	want := map[string]string{
		"services": "name", "routes": "name", "consumers": "username", "plugins": "instance_name",
		"upstreams": "name", "targets": "target", "snis": "name", "vaults": "prefix", "keys": "name",
		"key_sets": "name", "keyauth_credentials": "key", "basicauth_credentials": "username",
		"jwt_secrets": "key", "hmacauth_credentials": "username", "consumer_groups": "name",
	}
	for name, key := range want {
		e, _ := Lookup(name)
		if e.EndpointKey != key {
			t.Errorf("%s endpoint key = %q, want %q", name, e.EndpointKey, key)
		}
	}
}

func TestNoStrayTimestampsOnCredentials(t *testing.T) {
	e, _ := Lookup("keyauth_credentials")
	if e.Field("updated_at") != nil {
		t.Fatal("keyauth_credentials has no updated_at in Kong")
	}
	if !strings.Contains(mustJSON(t, e.KongSchema()), `"auto":true`) {
		t.Fatal("auto fields not rendered")
	}
}
