package router

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

// mixedRoutes returns n routes resembling a large deployment: one host per
// ten routes, prefix paths two or three segments deep, every tenth route a
// regex path, every twentieth route host-less.
func mixedRoutes(n int) []Route[int] {
	routes := make([]Route[int], 0, n)
	for i := 0; i < n; i++ {
		r := Route[int]{
			ID:        fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
			StripPath: true,
			Value:     i,
		}
		if i%20 != 0 {
			r.Hosts = []string{fmt.Sprintf("svc%d.example.com", i/10)}
		}
		switch {
		case i%10 == 0:
			r.Paths = []string{fmt.Sprintf(`~/api/v%d/items/(?<id>\d+)$`, i)}
		case i%3 == 0:
			r.Paths = []string{fmt.Sprintf("/api/v%d/orders", i), fmt.Sprintf("/v%d/o", i)}
			r.Methods = []string{"GET", "POST"}
		default:
			r.Paths = []string{fmt.Sprintf("/api/v%d/users", i)}
		}
		routes = append(routes, r)
	}
	return routes
}

func benchMatch(b *testing.B, n int, prefix bool) {
	r, errs, err := Build(context.Background(), Options[int]{Routes: mixedRoutes(n)})
	if err != nil || len(errs) > 0 {
		b.Fatal(err, errs)
	}
	i := n - 9 // a prefix route near the end
	target := fmt.Sprintf("/api/v%d/users/42?x=1", i)
	if !prefix {
		i = n - 10
		target = fmt.Sprintf("/api/v%d/items/42", i)
	}
	q := &Request{Scheme: "http", Method: "GET", Host: fmt.Sprintf("svc%d.example.com", i/10), Target: target,
		Port: 8000, Headers: http.Header{"User-Agent": {"bench"}}}
	m, ok := r.Match(q)
	if !ok || m.Route.Value != i {
		b.Fatalf("matched %v %v, want %d", ok, m.Route, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Match(q)
	}
}

func BenchmarkMatchPrefix100(b *testing.B)     { benchMatch(b, 100, true) }
func BenchmarkMatchPrefix10k(b *testing.B)     { benchMatch(b, 10_000, true) }
func BenchmarkMatchPrefix100k(b *testing.B)    { benchMatch(b, 100_000, true) }
func BenchmarkMatchRegex100(b *testing.B)      { benchMatch(b, 100, false) }
func BenchmarkMatchRegex10k(b *testing.B)      { benchMatch(b, 10_000, false) }
func BenchmarkMatchRegex100k(b *testing.B)     { benchMatch(b, 100_000, false) }
func BenchmarkMatchNoRoute100k(b *testing.B)   { benchMiss(b, 100_000) }
func BenchmarkBuild10k(b *testing.B)           { benchBuild(b, 10_000) }
func BenchmarkBuild100k(b *testing.B)          { benchBuild(b, 100_000) }
func BenchmarkNormalizePathClean(b *testing.B) { benchNormalize(b, "/api/v1/users/42?x=1") }
func BenchmarkNormalizePathDirty(b *testing.B) { benchNormalize(b, "/api/./v1//users/%7Ebob/../42") }

func benchMiss(b *testing.B, n int) {
	r, _, err := Build(context.Background(), Options[int]{Routes: mixedRoutes(n)})
	if err != nil {
		b.Fatal(err)
	}
	q := &Request{Scheme: "http", Method: "GET", Host: "unknown.example.com", Target: "/nothing/here", Port: 8000}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.Match(q); ok {
			b.Fatal("unexpected match")
		}
	}
}

func benchBuild(b *testing.B, n int) {
	routes := mixedRoutes(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, errs, err := Build(context.Background(), Options[int]{Routes: routes}); err != nil || len(errs) > 0 {
			b.Fatal(err, errs)
		}
	}
}

func benchNormalize(b *testing.B, p string) {
	b.ReportAllocs()
	for b.Loop() {
		NormalizePath(p)
	}
}
