package kongcompat

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/wire"
)

func TestVersionNum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"3.4.0", 3004000000, true},
		{"3.10.0", 3010000000, true},
		{"3.12.0.1", 3012000001, true},
		{"3.4.3.12-enterprise-edition", 3004003012, true},
		{"3.10.0-rc.1", 3010000000, true},
		{"3.4.0.beta", 3004000000, true},
		{"2.8.1", 2008001000, true},
		{"3.10", 0, false},
		{"v3.1.0", 0, false},
		{"3.x.0", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, ok := VersionNum(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("VersionNum(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    int64
	}{
		{"3.0.1", 3001000000},
		{"3.4.3", 3005000000},
		{"3.4.3.12-enterprise-edition", 3005000000},
		{"3.5.0", 3006000000},
		{"3.9.1", 3010000000},
		{"3.10.0", 0},
		{"3.11.1", 0},
		{"3.12.0", 0},
		{"3.13.0", 0},
		{"latest", 0},
	}
	for _, tt := range tests {
		if got := Class(tt.version); got != tt.want {
			t.Errorf("Class(%q) = %d, want %d", tt.version, got, tt.want)
		}
	}
}

// TestTableFieldsExistInSchema keeps the table to what Gantry supports: every plugin, entity and
// field an entry names exists in Gantry's schema, so each entry can actually fire.
func TestTableFieldsExistInSchema(t *testing.T) {
	t.Parallel()
	for _, e := range Table {
		if e.Source == "" {
			t.Errorf("%s: no source", entryName(e))
		}
		switch e.Kind {
		case KindPluginField, KindPluginReshape:
			p, ok := schema.LookupPlugin(e.Plugin)
			if !ok {
				t.Errorf("%s: Gantry has no plugin %q", entryName(e), e.Plugin)
				continue
			}
			path := e.Field
			if e.Kind == KindPluginReshape {
				path = "redis"
			}
			if lookupField(p.Config, path) == nil {
				t.Errorf("%s: plugin %q has no config.%s", entryName(e), e.Plugin, path)
			}
		case KindEntityField, KindEntityValue, KindEntityType:
			if e.Entity == "workspaces" {
				continue // not a schema entity: the snapshot adds the default workspace row
			}
			ent, ok := schema.Lookup(e.Entity)
			if !ok {
				t.Errorf("%s: Gantry has no entity %q", entryName(e), e.Entity)
				continue
			}
			if e.Kind != KindEntityType && lookupField(ent.Fields, e.Field) == nil {
				t.Errorf("%s: entity %q has no field %s", entryName(e), e.Entity, e.Field)
			}
		}
	}
}

func entryName(e *Entry) string {
	return fmt.Sprintf("<%s %s %s%s", e.Before, e.Entity, e.Plugin, "."+e.Field)
}

// TestDowngradeTable checks every entry: a configuration that uses the thing the entry covers
// loses it (or has it rewritten) for data planes just older than Before, keeps it from Before on,
// and the change raises a warning exactly when it alters behaviour.
func TestDowngradeTable(t *testing.T) {
	t.Parallel()
	for _, e := range Table {
		t.Run(entryName(e), func(t *testing.T) {
			t.Parallel()
			config, id := configUsing(t, e)
			orig := deepCopy(config)
			older := olderThan(t, e.Before)
			for _, v := range []string{older, older + ".7-enterprise-edition"} {
				res := Downgrade(config, Class(v))
				if !res.Changed {
					t.Fatalf("%s: nothing changed", v)
				}
				if !reflect.DeepEqual(config, orig) {
					t.Fatalf("%s: Downgrade modified its input", v)
				}
				checkDowngraded(t, e, res.Config)
				wantIssue := !e.Metadata && e.Kind != KindPluginReshape
				issue := issueFor(res.Issues, id)
				if wantIssue != (issue != nil) {
					t.Fatalf("%s: issue for %s = %+v, want one: %v (all %+v)", v, id, issue, wantIssue, res.Issues)
				}
				if issue != nil && (issue.Severity != wire.SeverityWarning || !strings.Contains(issue.Description, e.Before) ||
					!strings.Contains(issue.Resolution, e.Before)) {
					t.Errorf("%s: issue %+v", v, issue)
				}
			}
			for _, v := range []string{e.Before, e.Before + ".1"} {
				// Entries of newer versions may still change other parts; this one's part stays.
				res := Downgrade(config, Class(v))
				if got, want := part(e, res.Config), part(e, orig.(map[string]any)); !reflect.DeepEqual(got, want) || want == nil {
					t.Errorf("%s: %s\n%s", v, entryName(e), diffJSON(got, want))
				}
				if issueFor(res.Issues, id) != nil {
					t.Errorf("%s: unexpected issue %+v", v, res.Issues)
				}
			}
			for _, v := range []string{"3.10.0", "3.11.2", "3.12.0", schema.KongVersion, "3.13.0"} {
				res := Downgrade(config, Class(v))
				if !reflect.DeepEqual(res.Config, orig) || len(res.Issues) != 0 {
					t.Errorf("%s: configuration changed (issues %+v):\n%s", v, res.Issues, diffJSON(res.Config, orig))
				}
			}
		})
	}
}

// part returns what e covers in config: the plugin config or the entity field, value or rows.
func part(e *Entry, config map[string]any) any {
	switch e.Kind {
	case KindPluginField, KindPluginReshape:
		cfg := config["plugins"].([]any)[0].(map[string]any)["config"].(map[string]any)
		if e.Kind == KindPluginReshape {
			return cfg["redis"]
		}
		name, rest, nested := strings.Cut(e.Field, ".")
		if nested {
			sub, _ := cfg[name].(map[string]any)
			return sub[rest]
		}
		if rec, ok := cfg[name].(map[string]any); ok {
			// A record: the sub-field nonDefault set (newer entries may remove others).
			p, _ := schema.LookupPlugin(e.Plugin)
			return rec[lookupField(p.Config, e.Field).Fields[0].Name]
		}
		return cfg[name]
	case KindEntityField, KindEntityValue:
		return config[e.Entity].([]any)[0].(map[string]any)[e.Field]
	}
	return config[e.Entity]
}

// TestDefaultValuesRaiseNoWarning: a removed field left at its default is dropped silently.
func TestDefaultValuesRaiseNoWarning(t *testing.T) {
	t.Parallel()
	cors, _ := schema.LookupPlugin("cors")
	cfg := map[string]any{}
	for _, f := range cors.Config {
		cfg[f.Name] = f.DefaultValue()
	}
	config := map[string]any{"plugins": []any{map[string]any{"id": "p1", "name": "cors", "config": cfg}}}
	res := Downgrade(config, Class("3.4.0"))
	got := res.Config["plugins"].([]any)[0].(map[string]any)["config"].(map[string]any)
	if _, ok := got["private_network"]; ok || !res.Changed {
		t.Fatalf("private_network kept: %v", got)
	}
	if _, ok := got["allow_origin_absent"]; ok {
		t.Fatalf("allow_origin_absent kept: %v", got)
	}
	if len(res.Issues) != 0 {
		t.Fatalf("issues for default values: %+v", res.Issues)
	}
}

// TestUnusedFieldsLeaveConfigShared: a configuration that uses nothing the class lacks is returned
// as is (same hash as the full configuration).
func TestUnusedFieldsLeaveConfigShared(t *testing.T) {
	t.Parallel()
	config := map[string]any{"services": []any{map[string]any{"id": "s1", "name": "a", "protocol": "http"}}}
	res := Downgrade(config, Class("3.4.0"))
	if res.Changed || reflect.ValueOf(res.Config).Pointer() != reflect.ValueOf(config).Pointer() || res.Issues != nil {
		t.Fatalf("result %+v", res)
	}
}

func issueFor(issues []wire.CompatibilityIssue, id string) *wire.CompatibilityIssue {
	for i, is := range issues {
		for _, r := range is.AffectedResources {
			if r.ID == id {
				return &issues[i]
			}
		}
	}
	return nil
}

// olderThan returns a version just older than before: the previous minor's patch 3.
func olderThan(t *testing.T, before string) string {
	t.Helper()
	var major, minor int
	if _, err := fmt.Sscanf(before, "%d.%d.0", &major, &minor); err != nil || minor == 0 {
		t.Fatalf("before %q", before)
	}
	return fmt.Sprintf("%d.%d.3", major, minor-1)
}

// configUsing builds a configuration that uses what e covers, with a behaviour-changing value,
// and returns it with the id of the entity involved.
func configUsing(t *testing.T, e *Entry) (map[string]any, string) {
	t.Helper()
	id := "00000000-0000-4000-8000-" + fmt.Sprintf("%012d", len(e.Field)+int(e.before%1000003))
	switch e.Kind {
	case KindPluginField:
		p, _ := schema.LookupPlugin(e.Plugin)
		cfg := map[string]any{}
		for _, f := range p.Config {
			cfg[f.Name] = f.DefaultValue()
		}
		setPath(cfg, e.Field, nonDefault(t, lookupField(p.Config, e.Field)))
		return map[string]any{"plugins": []any{map[string]any{"id": id, "name": e.Plugin, "config": cfg}}}, id
	case KindPluginReshape:
		cfg := map[string]any{"minute": float64(5), "policy": "redis",
			"redis": map[string]any{"host": "redis.internal", "port": int64(6380), "timeout": int64(2000), "username": nil,
				"password": "s3cret", "database": int64(2), "ssl": true, "ssl_verify": false, "server_name": nil}}
		return map[string]any{"plugins": []any{map[string]any{"id": id, "name": e.Plugin, "config": cfg}}}, id
	case KindEntityField:
		ent, _ := schema.Lookup(e.Entity)
		row := map[string]any{"id": id}
		if e.When != nil {
			row["protocol"] = "tls"
		}
		var f *schema.Field
		if ent != nil {
			f = lookupField(ent.Fields, e.Field)
		}
		row[e.Field] = nonDefault(t, f)
		return map[string]any{e.Entity: []any{row}}, id
	case KindEntityValue:
		return map[string]any{e.Entity: []any{map[string]any{"id": id, e.Field: e.Value}}}, id
	case KindEntityType:
		return map[string]any{e.Entity: []any{map[string]any{"id": id}}, "services": []any{map[string]any{"id": "s"}}}, id
	}
	t.Fatalf("kind %d", e.Kind)
	return nil, ""
}

// checkDowngraded asserts that what e covers is gone from (or rewritten in) config.
func checkDowngraded(t *testing.T, e *Entry, config map[string]any) {
	t.Helper()
	switch e.Kind {
	case KindPluginField:
		cfg := config["plugins"].([]any)[0].(map[string]any)["config"].(map[string]any)
		if hasPath(cfg, e.Field) {
			t.Fatalf("config.%s kept: %v", e.Field, cfg)
		}
		if len(cfg) == 0 {
			t.Fatalf("whole config dropped")
		}
	case KindPluginReshape:
		cfg := config["plugins"].([]any)[0].(map[string]any)["config"].(map[string]any)
		want := map[string]any{"minute": float64(5), "policy": "redis", "redis_host": "redis.internal", "redis_port": int64(6380),
			"redis_timeout": int64(2000), "redis_username": nil, "redis_password": "s3cret", "redis_database": int64(2),
			"redis_ssl": true, "redis_ssl_verify": false, "redis_server_name": nil}
		if !reflect.DeepEqual(cfg, want) {
			t.Fatalf("reshaped config:\n%s", diffJSON(cfg, want))
		}
	case KindEntityField:
		row := config[e.Entity].([]any)[0].(map[string]any)
		if _, ok := row[e.Field]; ok || row["id"] == nil {
			t.Fatalf("row %v", row)
		}
	case KindEntityValue:
		row := config[e.Entity].([]any)[0].(map[string]any)
		if row[e.Field] != e.Replacement {
			t.Fatalf("row %v, want %s %v", row, e.Field, e.Replacement)
		}
	case KindEntityType:
		if _, ok := config[e.Entity]; ok || config["services"] == nil {
			t.Fatalf("config %v", config)
		}
	}
}

// nonDefault returns a valid-looking value for f that differs from its default.
func nonDefault(t *testing.T, f *schema.Field) any {
	t.Helper()
	if f == nil {
		return int64(1700000000)
	}
	switch f.Type {
	case schema.TypeBoolean:
		d, _ := f.DefaultValue().(bool)
		return !d
	case schema.TypeString, schema.TypeForeign:
		return "custom"
	case schema.TypeInteger:
		return int64(7)
	case schema.TypeNumber:
		return float64(7.5)
	case schema.TypeArray, schema.TypeSet:
		return []any{"a:b"}
	case schema.TypeRecord:
		rec, _ := f.DefaultValue().(map[string]any)
		if rec == nil {
			rec = map[string]any{}
		}
		if len(f.Fields) > 0 {
			rec[f.Fields[0].Name] = nonDefault(t, f.Fields[0])
		}
		return rec
	}
	t.Fatalf("no non-default value for %s (%s)", f.Name, f.Type)
	return nil
}

func setPath(m map[string]any, path string, v any) {
	name, rest, nested := strings.Cut(path, ".")
	if !nested {
		m[name] = v
		return
	}
	sub, _ := m[name].(map[string]any)
	if sub == nil {
		sub = map[string]any{}
		m[name] = sub
	}
	setPath(sub, rest, v)
}

func hasPath(m map[string]any, path string) bool {
	name, rest, nested := strings.Cut(path, ".")
	v, ok := m[name]
	if !nested || !ok {
		return ok
	}
	sub, _ := v.(map[string]any)
	return sub != nil && hasPath(sub, rest)
}

func diffJSON(got, want any) string {
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	return "got  " + string(g) + "\nwant " + string(w)
}
