package kongpeer

import (
	"strings"
	"testing"
)

func TestVersionValidator(t *testing.T) {
	t.Parallel()
	cors := func(cfg map[string]any) map[string]any {
		return map[string]any{"plugins": []any{map[string]any{"id": "p1", "name": "cors", "config": cfg}}}
	}
	tests := []struct {
		name    string
		version string
		config  map[string]any
		wantErr string // empty: accepted
	}{
		{"field older than the version", "3.5.0", cors(map[string]any{"private_network": true}), ""},
		{"field newer than the version", "3.4.3", cors(map[string]any{"private_network": false}), "cors config.private_network: unknown field"},
		{"3.10 field on 3.9", "3.9.1", cors(map[string]any{"allow_origin_absent": true}), "cors config.allow_origin_absent: unknown field"},
		{"3.10 field on 3.12", "3.12.0", cors(map[string]any{"allow_origin_absent": true}), ""},
		{"field no version has", "3.12.0", cors(map[string]any{"bogus": 1}), "config.bogus: unknown field"},
		{"entity type", "3.0.1", map[string]any{"keys": []any{map[string]any{"id": "k"}}}, "keys: unknown entity type"},
		{"value", "3.1.1", map[string]any{"upstreams": []any{map[string]any{"id": "u", "algorithm": "latency"}}}, "value latency unknown"},
		{"redis record before 3.6", "3.5.0", map[string]any{"plugins": []any{map[string]any{"id": "r", "name": "rate-limiting",
			"config": map[string]any{"redis": map[string]any{}}}}}, "rate-limiting config.redis: unknown field"},
		{"flat redis fields", "3.5.0", map[string]any{"plugins": []any{map[string]any{"id": "r", "name": "rate-limiting",
			"config": map[string]any{"redis_host": "r"}}}}, ""},
		{"other major accepts all", "4.0.0", cors(map[string]any{"bogus": 1}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VersionValidator(tt.version)(tt.config)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
