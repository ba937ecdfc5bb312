package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// bigConfig is a configuration of n services and n routes.
func bigConfig(n int) map[string]any {
	services, routes := make([]any, n), make([]any, n)
	for i := range n {
		sid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		services[i] = map[string]any{"id": sid, "name": fmt.Sprintf("svc-%d", i), "host": "upstream.internal",
			"port": json.Number("8080"), "protocol": "http", "retries": json.Number("5"), "tags": nil}
		routes[i] = map[string]any{"id": fmt.Sprintf("10000000-0000-4000-8000-%012d", i), "paths": []any{fmt.Sprintf("/svc/%d", i)},
			"service": sid, "strip_path": true, "protocols": []any{"http", "https"}}
	}
	return map[string]any{"_format_version": "3.0", "services": services, "routes": routes}
}

// BenchmarkSaveLoad10k measures writing (with fsync) and reading back a
// configuration of 10,000 services and 10,000 routes.
func BenchmarkSaveLoad10k(b *testing.B) {
	ctx := context.Background()
	c, err := New(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	cfg := bigConfig(10_000)
	e := &Entry{Revision: 1, ConfigHash: "0123456789abcdef0123456789abcdef", Config: cfg}
	b.Run("save", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Save(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
