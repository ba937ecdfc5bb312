package analyticsapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/analytics"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
	"github.com/google/uuid"
)

var now = time.Date(2026, 12, 3, 10, 30, 20, 0, time.UTC)

type env struct {
	t      *testing.T
	st     *sqlstore.Store
	es     *entitystore.Store
	an     *analytics.Store
	srv    *httptest.Server
	token  string
	org    string
	group  string
	ids    map[string]string // entity name -> id
	ingest func(group, node string, seq int64, minute time.Time, series ...telemetry.Series)
}

func newEnv(t *testing.T, st *sqlstore.Store) *env {
	ctx := context.Background()
	tok := auth.NewToken()
	res, err := st.Bootstrap(ctx, store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(tok), Hint: auth.Hint(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	an, err := analytics.New(analytics.Options{Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(st)
	a, err := api.New(api.Options{Store: st, Region: "us", Now: clock, Traffic: func(ctx context.Context, ids []string) map[string]api.GroupTraffic {
		out := map[string]api.GroupTraffic{}
		tr, err := an.Traffic24h(ctx, ids)
		if err != nil {
			t.Errorf("traffic: %v", err)
		}
		for id, x := range tr {
			rate := x.ErrorRate
			out[id] = api.GroupTraffic{Requests24h: x.Requests, ErrorRate24h: &rate}
		}
		return out
	}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Analytics: an, Store: st, Entities: es, Region: "us", Now: clock,
		NodeNames: func(_ context.Context, _ []string) (map[string]string, error) {
			return map[string]string{"node-1": "host-1.example"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.Mount(a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, st: st, es: es, an: an, srv: srv, token: tok, org: res.Org.ID, group: res.Group.ID, ids: map[string]string{}}
	e.ingest = func(group, node string, seq int64, minute time.Time, series ...telemetry.Series) {
		b := &telemetry.Batch{Minutes: []telemetry.Minute{{Start: minute.Unix(), Series: series}}}
		if err := b.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := an.Ingest(context.Background(), group, node, seq, b); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// entity creates one entity and remembers its id under key.
func (e *env) entity(group, collection, key string, in map[string]any) string {
	e.t.Helper()
	ent, _ := schema.Lookup(collection)
	d, _, perr := ent.Process(schema.OpCreate, in, nil)
	if perr != nil {
		e.t.Fatal(perr)
	}
	if _, err := e.es.Write(context.Background(), group, func(tx *entitystore.Tx) error { return tx.Insert(ent, d) }); err != nil {
		e.t.Fatal(err)
	}
	id := d["id"].(string)
	e.ids[key] = id
	return id
}

func series(svc, route, consumer string, status, n int, latencyUS uint64) telemetry.Series {
	s := telemetry.Series{Service: svc, Route: route, Consumer: consumer, Status: status, Count: int64(n)}
	for range n {
		s.LatencySum += int64(latencyUS)
		s.Latency.Add(latencyUS)
		s.Gateway.Add(latencyUS)
		s.RequestSize.Add(10)
		s.ResponseSize.Add(20)
	}
	return s
}

type testAnswer struct {
	Meta struct {
		Start       time.Time                    `json:"start"`
		End         time.Time                    `json:"end"`
		Granularity string                       `json:"granularity"`
		Metrics     []string                     `json:"metrics"`
		Dimensions  []string                     `json:"dimensions"`
		Display     map[string]map[string]string `json:"display"`
	} `json:"meta"`
	Data []struct {
		Timestamp  time.Time           `json:"timestamp"`
		Dimensions map[string]string   `json:"dimensions"`
		Metrics    map[string]*float64 `json:"metrics"`
	} `json:"data"`
}

func (e *env) get(path, accept string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, body
}

func (e *env) analytics(path string) testAnswer {
	e.t.Helper()
	code, _, body := e.get(path, "")
	if code != 200 {
		e.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var a testAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// sums adds request_count per value of dim.
func (a testAnswer) sums(dim string) map[string]float64 {
	out := map[string]float64{}
	for _, d := range a.Data {
		if v := d.Metrics["request_count"]; v != nil {
			out[d.Dimensions[dim]] += *v
		}
	}
	return out
}

func TestAnalyticsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		g := e.group
		svcA := e.entity(g, "services", "svc-a", map[string]any{"name": "svc-a", "host": "a.internal"})
		svcB := e.entity(g, "services", "svc-b", map[string]any{"name": "svc-b", "host": "b.internal"})
		routeA := e.entity(g, "routes", "route-a", map[string]any{"name": "route-a", "paths": []any{"/a"}, "service": map[string]any{"id": svcA}})
		routeB := e.entity(g, "routes", "unnamed", map[string]any{"paths": []any{"/b"}, "service": map[string]any{"id": svcB}})
		alice := e.entity(g, "consumers", "alice", map[string]any{"username": "alice"})
		bob := e.entity(g, "consumers", "bob", map[string]any{"custom_id": "bob-42"})
		gone := uuid.NewString()
		m := now.Truncate(time.Minute).Add(-3 * time.Minute)
		e.ingest(g, "node-1", 1, m,
			series(svcA, routeA, alice, 200, 30, 2000),
			series(svcA, routeA, bob, 404, 10, 1000),
			series(svcB, routeB, "", 503, 5, 50000),
			series(gone, "", "", 200, 1, 1000),
		)
		other := uuid.NewString()
		if err := st.CreateGroup(context.Background(), store.RuntimeGroup{ID: other, OrgID: e.org, Region: "us", Name: "payments",
			ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		e.ingest(other, "node-9", 1, m.Add(-time.Minute), series("x", "", "", 200, 4, 1000))

		// Default: the last hour by minute, request_count, time only; every bucket present.
		a := e.analytics("/v2/runtime-groups/" + g + "/analytics")
		end := now.Truncate(time.Minute).Add(time.Minute)
		if a.Meta.Granularity != "minute" || !a.Meta.End.Equal(end) || !a.Meta.Start.Equal(end.Add(-time.Hour)) ||
			strings.Join(a.Meta.Metrics, ",") != "request_count" || strings.Join(a.Meta.Dimensions, ",") != "time" || len(a.Data) != 60 {
			t.Fatalf("default testAnswer: meta %+v, %d rows", a.Meta, len(a.Data))
		}
		for _, d := range a.Data {
			want := 0.0
			if d.Timestamp.Equal(m) {
				want = 46
			}
			if v := d.Metrics["request_count"]; v == nil || *v != want {
				t.Fatalf("bucket %s: %v, want %v", d.Timestamp, v, want)
			}
		}

		// By status class over 15 minutes, both names of the collection.
		for _, base := range api.GroupBasePaths {
			a = e.analytics(base + "/" + g + "/analytics?time_range=15m&dimensions=time,status_code_grouped&metrics=request_count,error_rate,server_error_rate,response_latency_p99")
			if s := a.sums("status_code_grouped"); s["2XX"] != 31 || s["4XX"] != 10 || s["5XX"] != 5 || len(a.Data) != 15*3 {
				t.Fatalf("%s by status class: %v, %d rows", base, s, len(a.Data))
			}
		}
		for _, d := range a.Data {
			if d.Timestamp.Equal(m) && d.Dimensions["status_code_grouped"] == "5XX" {
				if *d.Metrics["error_rate"] != 1 || *d.Metrics["server_error_rate"] != 1 || math.Abs(*d.Metrics["response_latency_p99"]-50) > 50*telemetry.RelativeError {
					t.Errorf("5XX row %v", d.Metrics)
				}
			}
			if !d.Timestamp.Equal(m) && (d.Metrics["error_rate"] != nil || d.Metrics["response_latency_p99"] != nil || *d.Metrics["request_count"] != 0) {
				t.Errorf("empty bucket %s: %v; want 0 requests and null rates", d.Timestamp, d.Metrics)
			}
		}

		// Names: services, unnamed routes (their id), consumers (username or custom_id), deleted
		// entities, "none", nodes.
		a = e.analytics("/v2/runtime-groups/" + g + "/analytics?time_range=15m&dimensions=gateway_service,consumer")
		if s := a.sums("gateway_service"); s[svcA] != 40 || s[svcB] != 5 || s[gone] != 1 || len(a.Data) != 4 {
			t.Errorf("by service and consumer: %v, %d rows (no time: one row per combination)", s, len(a.Data))
		}
		wantNames := map[string]map[string]string{
			"gateway_service": {svcA: "svc-a", svcB: "svc-b", gone: NameDeleted},
			"consumer":        {alice: "alice", bob: "bob-42", "": NameNone},
		}
		for dim, names := range wantNames {
			for id, name := range names {
				if got := a.Meta.Display[dim][id]; got != name {
					t.Errorf("display[%s][%s] = %q, want %q", dim, id, got, name)
				}
			}
		}
		a = e.analytics("/v2/runtime-groups/" + g + "/analytics?time_range=15m&dimensions=route,node")
		if a.Meta.Display["route"][routeA] != "route-a" || a.Meta.Display["route"][routeB] != routeB || a.Meta.Display["node"]["node-1"] != "host-1.example" {
			t.Errorf("display %v", a.Meta.Display)
		}

		// Filters.
		a = e.analytics("/v2/runtime-groups/" + g + "/analytics?time_range=15m&dimensions=status_code&filter[gateway_service][eq]=" + svcA)
		if s := a.sums("status_code"); s["200"] != 30 || s["404"] != 10 || len(s) != 2 {
			t.Errorf("filtered by service: %v", s)
		}
		a = e.analytics("/v2/runtime-groups/" + g + "/analytics?time_range=15m&dimensions=consumer&filter[status_code_grouped][in]=4XX,5XX")
		if s := a.sums("consumer"); s[bob] != 10 || s[""] != 5 || len(s) != 2 {
			t.Errorf("filtered by status class: %v", s)
		}

		// Organization-wide: every group, by control plane with names; the sum over groups.
		a = e.analytics("/v2/analytics?time_range=15m&dimensions=control_plane")
		if s := a.sums("control_plane"); s[g] != 46 || s[other] != 4 || a.Meta.Display["control_plane"][other] != "payments" || a.Meta.Display["control_plane"][g] != "default" {
			t.Errorf("org-wide: %v, display %v", s, a.Meta.Display)
		}

		// CSV: the same rows, with names beside ids.
		code, hdr, body := e.get("/v2/runtime-groups/"+g+"/analytics?time_range=15m&dimensions=time,gateway_service&metrics=request_count,error_rate", "text/csv")
		recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || err != nil {
			t.Fatalf("CSV: %d %q %v", code, hdr.Get("Content-Type"), err)
		}
		if strings.Join(recs[0], ",") != "timestamp,gateway_service,gateway_service_name,request_count,error_rate" || len(recs) != 1+15*3 {
			t.Fatalf("CSV header %v, %d records", recs[0], len(recs))
		}
		found := false
		for _, r := range recs[1:] {
			if r[0] == m.Format(time.RFC3339) && r[1] == svcA {
				found = r[2] == "svc-a" && r[3] == "40" && r[4] == "0.25"
			}
			if r[0] != m.Format(time.RFC3339) && (r[3] != "0" || r[4] != "") {
				t.Errorf("empty bucket in CSV: %v", r)
			}
		}
		if !found {
			t.Errorf("CSV lacks svc-a's row:\n%s", body)
		}

		// The groups carry their last 24 hours.
		code, _, body = e.get("/v2/runtime-groups/"+g, "")
		var one map[string]any
		if err := json.Unmarshal(body, &one); code != 200 || err != nil || one["requests_24h"] != 46.0 || one["error_rate_24h"] != 15.0/46 {
			t.Errorf("group: %d %s", code, body)
		}
		code, _, body = e.get("/v2/runtime-groups", "")
		var list struct {
			Data []map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Data) != 2 {
			t.Fatalf("list: %d %s", code, body)
		}
		for _, grp := range list.Data {
			switch grp["id"] {
			case g:
				if grp["requests_24h"] != 46.0 {
					t.Errorf("listed group %v", grp)
				}
			case other:
				if grp["requests_24h"] != 4.0 || grp["error_rate_24h"] != 0.0 {
					t.Errorf("listed group %v", grp)
				}
			}
		}
		empty := uuid.NewString()
		if err := st.CreateGroup(context.Background(), store.RuntimeGroup{ID: empty, OrgID: e.org, Region: "us", Name: "quiet",
			ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		code, _, body = e.get("/v2/runtime-groups/"+empty, "")
		if err := json.Unmarshal(body, &one); code != 200 || err != nil || one["requests_24h"] != 0.0 || one["error_rate_24h"] != nil {
			t.Errorf("quiet group: %d %s", code, body)
		}
		if _, ok := one["error_rate_24h"]; !ok {
			t.Errorf("quiet group has no error_rate_24h: %s", body)
		}
	})
}

func TestAnalyticsAPIErrors(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"))
	base := "/v2/runtime-groups/" + e.group + "/analytics?"
	start := now.Format(time.RFC3339)
	tests := []struct {
		name, path, field string
	}{
		{"unknown metric", base + "metrics=request_count,bogus", "metrics"},
		{"unknown dimension", base + "dimensions=colour", "dimensions"},
		{"control_plane on a group", base + "dimensions=control_plane", "dimensions"},
		{"too many dimensions", base + "dimensions=time,gateway_service,route,consumer", "dimensions"},
		{"start after end", base + "start=" + start + "&end=" + now.Add(-time.Hour).Format(time.RFC3339), "start"},
		{"start equals end", base + "start=" + start + "&end=" + start, "start"},
		{"bad start", base + "start=yesterday&end=" + start, "start"},
		{"range and start", base + "time_range=1h&start=" + start + "&end=" + start, "time_range"},
		{"range too long for minutes", base + "time_range=30d&granularity=minute", "granularity"},
		{"custom range too long", base + "granularity=minute&start=2026-11-01T00:00:00Z&end=" + start, "granularity"},
		{"unknown granularity", base + "granularity=second", "granularity"},
		{"unknown time range", base + "time_range=2w", "time_range"},
		{"filter on unknown dimension", base + "filter[colour][eq]=red", "filter[colour][eq]"},
		{"filter operator", base + "filter[route][neq]=x", "filter[route][neq]"},
		{"filter status code", base + "filter[status_code][eq]=abc", "filter[status_code][eq]"},
		{"filter status class", base + "filter[status_code_grouped][in]=2XX,6XX", "filter[status_code_grouped][in]"},
		{"filter control_plane on a group", base + "filter[control_plane][eq]=x", "filter[control_plane][eq]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := e.get(tt.path, "")
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || code != 400 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("%d %q %s (%v)", code, hdr.Get("Content-Type"), body, err)
			}
			found := false
			for _, ip := range p.InvalidParameters {
				found = found || ip.Field == tt.field && ip.Reason != ""
			}
			if !found {
				t.Errorf("invalid_parameters does not name %s: %s", tt.field, body)
			}
			if tt.name == "range too long for minutes" && !strings.Contains(string(body), "1500") {
				t.Errorf("the bucket limit is not said: %s", body)
			}
		})
	}
	if code, _, body := e.get("/v2/runtime-groups/"+uuid.NewString()+"/analytics", ""); code != 404 {
		t.Errorf("unknown group: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2/analytics", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Errorf("without a token: %v %v", res, err)
	} else {
		_ = res.Body.Close()
	}
	// Granularity defaults per range and for custom ranges.
	for _, tt := range []struct{ query, gran string }{
		{"time_range=6h", "minute"}, {"time_range=12h", "hour"}, {"time_range=7d", "hour"}, {"time_range=30d", "day"},
		{"time_range=24h&granularity=day", "day"},
		{"start=2026-12-01T00:00:00Z&end=2026-12-02T00:00:00Z", "minute"},
		{"start=2026-11-01T00:00:00Z&end=2026-12-02T00:00:00Z", "hour"},
	} {
		a := e.analytics(base + tt.query)
		if a.Meta.Granularity != tt.gran {
			t.Errorf("%s: granularity %s, want %s", tt.query, a.Meta.Granularity, tt.gran)
		}
	}
	a := e.analytics(base + "time_range=30d")
	if len(a.Data) != 30 || !a.Meta.End.Equal(now.Truncate(24*time.Hour).Add(24*time.Hour)) {
		t.Errorf("30d: %d buckets ending %s", len(a.Data), a.Meta.End)
	}
}
