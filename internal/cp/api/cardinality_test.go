package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/metrics/labels"
	"github.com/google/uuid"
)

// maxRequestSeries bounds the series of each request metric after the traffic of
// TestMetricsCardinalityIsBounded, whatever its volume. The traffic below can produce at most 7
// request-count series (the warm-up scrape, 404 and 405 of unmatched requests, the method-less
// probe route with and without a token, a group lookup with and without a token) and 4 latency
// series; the bound leaves room for a few more without letting the count follow the traffic.
const maxRequestSeries = 16

// TestMetricsCardinalityIsBounded sends requests with invented methods and invented paths, with
// and without a valid token, and checks that the request metrics at /metrics keep a small, fixed
// number of series: the labels must not carry values the client chose.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	a, token := newMetricsAPI(t)
	// A method-less pattern, as the Admin API mounts: requests with any method reach it.
	a.Mount("/v2/cardinality-probe/{anything...}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	h := a.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := srv.Client() // keep-alive: one connection serves every request

	// Each shape makes the i-th request of its kind; every request has a method and a path no
	// other request uses.
	shapes := []struct {
		name    string
		request func(i int) (method, path string)
	}{
		{"invented method, invented path", func(i int) (string, string) {
			return fmt.Sprintf("INVENTED%d", i), fmt.Sprintf("/nowhere/%d", i)
		}},
		{"invented method on a route of other methods", func(i int) (string, string) {
			return fmt.Sprintf("X-%d", i), "/v2/runtime-groups/" + uuid.NewString()
		}},
		{"invented method on a method-less route", func(i int) (string, string) {
			return fmt.Sprintf("get%d", i), fmt.Sprintf("/v2/cardinality-probe/%d/x", i)
		}},
		{"known method, invented path parameter", func(i int) (string, string) {
			return http.MethodGet, "/v2/runtime-groups/" + uuid.NewString()
		}},
	}
	// send sends the i-th request, over the server's keep-alive connections when overHTTP, else
	// by calling the handler in-process (the same handler, without the cost of the loopback
	// under -race).
	send := func(i int, overHTTP bool) error {
		shape := shapes[i%len(shapes)]
		method, path := shape.request(i)
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			return err
		}
		// One request in four of each shape carries the token.
		if (i/len(shapes))%4 == 0 {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		var res *http.Response
		if overHTTP {
			if res, err = client.Do(req); err != nil {
				return fmt.Errorf("%s: %w", shape.name, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		} else {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res = rec.Result()
		}
		if res.StatusCode >= 500 {
			return fmt.Errorf("%s: %s %s: %d", shape.name, method, path, res.StatusCode)
		}
		return nil
	}
	// sendRange sends requests [from, to) from a few goroutines at once.
	sendRange := func(t *testing.T, from, to int, overHTTP bool) {
		t.Helper()
		const workers = 4
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := from + w; i < to; i += workers {
					if err := send(i, overHTTP); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	scrape := func(t *testing.T) string {
		t.Helper()
		res, err := client.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %d", res.StatusCode)
		}
		return string(b)
	}
	// The scrape is itself a request; scrape once first so every later scrape counts it alike.
	scrape(t)

	families := []string{"gantry_http_requests_total", "gantry_http_request_duration_seconds_count"}
	var after100 map[string]int
	sent := 0
	for _, step := range []struct {
		name     string
		total    int
		overHTTP bool
	}{
		{"after 100 requests", 100, true},
		{"after 10000 requests", 10000, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			sendRange(t, sent, step.total, step.overHTTP)
			sent = step.total
			out := scrape(t)
			counts := map[string]int{}
			for _, family := range families {
				counts[family] = countSeries(out, family)
				if counts[family] > maxRequestSeries {
					t.Errorf("%s has %d series, want at most %d", family, counts[family], maxRequestSeries)
				}
			}
			// Whatever their number, the values must be listed ones: a known method or OTHER,
			// and a registered pattern or "unmatched", never a path the client sent.
			routes := map[string]bool{"/metrics": true, labels.Unmatched: true,
				"/v2/cardinality-probe/{anything...}": true, "/v2/runtime-groups/{groupId}": true}
			for _, family := range families {
				var methods, paths []string
				for _, v := range labelValues(out, family, "method") {
					if labels.Method(v) != v {
						methods = append(methods, v)
					}
				}
				for _, v := range labelValues(out, family, "route") {
					if !routes[v] {
						paths = append(paths, v)
					}
				}
				if len(methods) > 0 {
					t.Errorf("%s has %d unlisted method labels, e.g. %q", family, len(methods), methods[:min(3, len(methods))])
				}
				if len(paths) > 0 {
					t.Errorf("%s has %d unlisted route labels, e.g. %q", family, len(paths), paths[:min(3, len(paths))])
				}
			}
			if after100 == nil {
				after100 = counts
				return
			}
			for _, family := range families {
				if counts[family] != after100[family] {
					t.Errorf("%s grew from %d series after 100 requests to %d", family, after100[family], counts[family])
				}
			}
			if t.Failed() {
				t.Logf("labels seen, e.g.:\n%s", firstLines(out, "gantry_http_requests_total{", 10))
			}
		})
	}
}

// newMetricsAPI returns an API on a fresh SQLite store and its admin token.
func newMetricsAPI(t *testing.T) (*api.API, string) {
	t.Helper()
	s := storetest.Open(t, "sqlite")
	token := auth.NewToken()
	if _, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}}); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Options{Store: s, Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	return a, token
}

// countSeries counts the sample lines of one metric in a text-format scrape.
func countSeries(scrape, name string) int {
	n := 0
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			n++
		}
	}
	return n
}

// firstLines returns up to n lines of a scrape that start with prefix.
func firstLines(scrape, prefix string, n int) string {
	var b strings.Builder
	for _, line := range strings.Split(scrape, "\n") {
		if n == 0 {
			break
		}
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line + "\n")
			n--
		}
	}
	return b.String()
}

// labelValues returns the distinct values of one label among the sample lines of one metric in a
// text-format scrape.
func labelValues(scrape, name, label string) []string {
	seen := map[string]bool{}
	var values []string
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, label+`="`)
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, `"`)
		if !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	return values
}

// TestMetricsStatusLabelIsBounded mounts a handler that answers whatever status its path names,
// as a handler relaying another server's answer would, and checks the code label each status
// gets: its own value within 100..599, one fixed value outside.
func TestMetricsStatusLabelIsBounded(t *testing.T) {
	a, token := newMetricsAPI(t)
	a.Mount("GET /v2/status-probe/{code}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	}))
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		code      int
		wantLabel string
	}{
		{200, "200"},
		{418, "418"},
		{599, "599"},
		{600, labels.OtherStatus},
		{799, labels.OtherStatus},
		{999, labels.OtherStatus},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/status-probe/"+strconv.Itoa(tt.code), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.code)
			}
		})
	}
	res, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := string(b)
	// Each status outside 100..599 counts in the one series of the fixed label.
	want := map[string]int{}
	for _, tt := range tests {
		want[tt.wantLabel]++
	}
	for label, n := range want {
		line := fmt.Sprintf(`gantry_http_requests_total{code=%q,method="GET",route="/v2/status-probe/{code}"} %d`, label, n)
		if !strings.Contains(out, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
	if got := countSeries(out, "gantry_http_requests_total"); got != len(want) {
		t.Errorf("%d request series, want %d:\n%s", got, len(want), firstLines(out, "gantry_http_requests_total{", 20))
	}
}
