package adminapi_test

import (
	"fmt"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// benchEnv is an Admin API on SQLite holding 200 services.
func benchEnv(b *testing.B) *env {
	e := newEnv(b, storetest.Open(b, "sqlite"))
	for i := range 200 {
		e.do("POST", "/services", map[string]any{"name": fmt.Sprintf("svc-%03d", i), "host": "h.test", "tags": []any{"bench"}}).must(b, 201)
	}
	return e
}

// BenchmarkGetServiceByName is one authenticated GET /services/{name} through the whole HTTP
// stack (token check, group lookup, read transaction, rendering).
func BenchmarkGetServiceByName(b *testing.B) {
	e := benchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		e.do("GET", "/services/svc-100", nil).must(b, 200)
	}
}

// BenchmarkListServicesPage is GET /services?size=100&tags=bench: one page of 100 entities.
func BenchmarkListServicesPage(b *testing.B) {
	e := benchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		e.do("GET", "/services?size=100&tags=bench", nil).must(b, 200)
	}
}

// BenchmarkCreateConsumer is one POST /consumers: validation, a write transaction and a revision.
func BenchmarkCreateConsumer(b *testing.B) {
	e := benchEnv(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		e.do("POST", "/consumers", map[string]any{"username": fmt.Sprintf("c%d", i)}).must(b, 201)
	}
}
