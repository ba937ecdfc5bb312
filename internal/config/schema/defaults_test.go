package schema

import (
	"reflect"
	"testing"
)

func TestFieldDefaultValue(t *testing.T) {
	tests := []struct {
		name   string
		entity string
		path   []string // a top-level field, then record sub-fields
		want   any
	}{
		{"integer", "services", []string{"retries"}, int64(5)},
		{"string", "services", []string{"protocol"}, "http"},
		{"boolean", "routes", []string{"strip_path"}, true},
		{"set", "routes", []string{"protocols"}, []any{"http", "https"}},
		{"no default", "services", []string{"path"}, nil},
		{"nullable without default", "services", []string{"tls_verify_depth"}, nil},
		{"null-default record", "keys", []string{"pem"}, nil},
		{"number in a record", "upstreams", []string{"healthchecks", "active", "timeout"}, float64(1)},
		{"record of sub-field defaults", "vaults", []string{"config"}, map[string]any{"prefix": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := Lookup(tc.entity)
			if !ok {
				t.Fatalf("no entity %s", tc.entity)
			}
			f := e.Field(tc.path[0])
			for _, name := range tc.path[1:] {
				var sub *Field
				for _, sf := range f.Fields {
					if sf.Name == name {
						sub = sf
					}
				}
				if sub == nil {
					t.Fatalf("%s has no sub-field %s", f.Name, name)
				}
				f = sub
			}
			got := f.DefaultValue()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DefaultValue() = %#v, want %#v", got, tc.want)
			}
			// Each call hands out a copy: a caller that changes what it
			// got does not change the schema's default.
			switch v := got.(type) {
			case []any:
				v[0] = "changed"
			case map[string]any:
				for k := range v {
					v[k] = "changed"
				}
			}
			if again := f.DefaultValue(); !reflect.DeepEqual(again, tc.want) {
				t.Errorf("after changing a returned value, DefaultValue() = %#v, want %#v", again, tc.want)
			}
		})
	}
}

// TestTTLExpiry covers both forms of a stored ttl: absolute (Kong's export, what the control
// plane stores) and relative to created_at (a declarative file).
func TestTTLExpiry(t *testing.T) {
	const created = int64(1_700_000_000)
	for _, tc := range []struct {
		name      string
		ttl, want int64
	}{
		{"absolute", created + 60, created + 60},
		{"absolute equal to created_at", created, created},
		{"relative", 60, created + 60},
		{"relative maximum", 100_000_000, created + 100_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TTLExpiry(tc.ttl, created); got != tc.want {
				t.Errorf("TTLExpiry(%d, %d) = %d, want %d", tc.ttl, created, got, tc.want)
			}
		})
	}
}
