package schema

import "testing"

func TestCheckOrdering(t *testing.T) {
	before := func(name string, others ...any) map[string]any {
		return map[string]any{"name": name, "ordering": map[string]any{"before": map[string]any{"access": others}}}
	}
	after := func(name string, others ...any) map[string]any {
		return map[string]any{"name": name, "ordering": map[string]any{"after": map[string]any{"access": others}}}
	}
	tests := []struct {
		name    string
		plugins []map[string]any
		want    string
	}{
		{"none", []map[string]any{{"name": "cors"}}, ""},
		{"chain", []map[string]any{before("a", "b"), before("b", "c")}, ""},
		{"two-cycle", []map[string]any{before("cors", "key-auth"), before("key-auth", "cors")},
			"plugin ordering cycle in access phase: cors -> key-auth -> cors"},
		{"after closes cycle", []map[string]any{before("a", "b"), after("a", "b")},
			"plugin ordering cycle in access phase: a -> b -> a"},
		{"consumer scoped", []map[string]any{{"name": "cors", "consumer": map[string]any{"id": uuid1}, "ordering": map[string]any{}}},
			`plugin "cors": dynamic ordering is not supported on consumer-scoped plugins`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckOrdering(tt.plugins)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
