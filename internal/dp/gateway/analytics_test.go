package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// TestAnalytics sends the kind of mix through a whole gateway
// (proxied, key-auth 401, request-termination 503, a protocol rejection,
// no route matched) and checks each request is recorded once, under the
// configuration's ids.
func TestAnalytics(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	agg, err := analytics.NewAggregator(analytics.AggregatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{ProxyListen: "127.0.0.1:0", ProxyTLSListen: "127.0.0.1:0", ShutdownTimeout: 2 * time.Second,
		LookupEnv: func(string) (string, bool) { return "", false }, Analytics: agg})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	apply(t, g, map[string]any{
		"services": arr(service(1, ah, ap, nil), service(2, ah, ap, nil)),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/keyed"), "strip_path": false}),
			route(2, 2, map[string]any{"paths": arr("/closed"), "strip_path": false}),
			route(3, 2, map[string]any{"paths": arr("/secure"), "protocols": arr("https"), "strip_path": false}),
		),
		"consumers":           arr(map[string]any{"id": id('c', 1), "username": "alice"}),
		"keyauth_credentials": arr(map[string]any{"id": id('k', 1), "consumer": id('c', 1), "key": "alice-key"}),
		"plugins": arr(
			map[string]any{"id": id('p', 1), "name": "key-auth", "route": id('b', 1), "config": map[string]any{"key_names": arr("apikey")}},
			map[string]any{"id": id('p', 2), "name": "request-termination", "route": id('b', 2),
				"config": map[string]any{"status_code": 503, "message": "closed"}},
		),
	}, "an1")
	send := func(path, key string, n int) {
		for range n {
			req, _ := http.NewRequest("GET", baseURL(g)+path, nil)
			if key != "" {
				req.Header.Set("apikey", key)
			}
			get(t, req)
		}
	}
	send("/keyed", "alice-key", 3)
	send("/keyed", "", 2)
	send("/closed", "", 4)
	send("/secure", "", 1)
	send("/nowhere", "", 1)
	const total = 11

	got := map[[4]string]int64{}
	var n int64
	deadline := time.Now().Add(5 * time.Second)
	for n < total && time.Now().Before(deadline) {
		for _, m := range agg.Collect(time.Now(), true) {
			if err := (&telemetry.Batch{Minutes: []telemetry.Minute{m}}).Validate(); err != nil {
				t.Fatal(err)
			}
			for _, s := range m.Series {
				got[[4]string{s.Service, s.Route, s.Consumer, itoa(s.Status)}] += s.Count
				n += s.Count
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := map[[4]string]int64{
		{id('a', 1), id('b', 1), id('c', 1), "200"}: 3,
		{id('a', 1), id('b', 1), "", "401"}:         2,
		{id('a', 2), id('b', 2), "", "503"}:         4,
		{id('a', 2), id('b', 3), "", "426"}:         1,
		{"", "", "", "404"}:                         1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("series %v: %d requests, want %d (all: %v)", k, got[k], c, got)
		}
	}
}

func itoa(n int) string {
	return string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}
