package compile

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

// upstreamCfg is one service on upstream u1 with n targets 127.0.0.1:100<i>
// and the given passive unhealthy thresholds.
func upstreamCfg(n int, algorithm string, passiveUnhealthy map[string]any) map[string]any {
	targets := make([]any, n)
	for i := range n {
		targets[i] = map[string]any{"id": fmt.Sprintf("00000000-0000-4000-8000-00000000c1%02d", i), "upstream": upA,
			"target": fmt.Sprintf("127.0.0.1:100%d", i)}
	}
	up := map[string]any{"id": upA, "name": "u1", "algorithm": algorithm}
	if passiveUnhealthy != nil {
		up["healthchecks"] = map[string]any{"passive": map[string]any{"unhealthy": passiveUnhealthy}}
	}
	return map[string]any{"services": arr(svc(svcA, "u1", 80, nil)), "upstreams": arr(up), "targets": targets}
}

func compiledUpstream(t *testing.T, cfg map[string]any) *Upstream {
	t.Helper()
	c, _, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := c.Services()[0].Upstream
	if u == nil {
		t.Fatal("service not bound to its upstream")
	}
	return u
}

// TestPickAttemptAvoidsTriedTargets checks that the tries of one request
// go to distinct targets even while other requests pick in between, which
// replaying picks on a fresh state (the plain Pick) cannot promise.
func TestPickAttemptAvoidsTriedTargets(t *testing.T) {
	for _, algo := range []string{"round-robin", "least-connections", "consistent-hashing"} {
		t.Run(algo, func(t *testing.T) {
			u := compiledUpstream(t, upstreamCfg(3, algo, nil))
			r := httptest.NewRequest("GET", "/", nil)
			var a proxy.Attempt
			seen := map[string]bool{}
			for try := range 3 {
				a.Try = try
				addr, err := u.PickAttempt(r, &a)
				if err != nil {
					t.Fatal(err)
				}
				if seen[addr] {
					t.Fatalf("try %d went back to %s, tried already (tried %v)", try, addr, seen)
				}
				seen[addr] = true
				u.ReportAttempt(&a, 0, errors.New("connection refused"))
				// Another request picks in between.
				var other proxy.Attempt
				if _, err := u.PickAttempt(r, &other); err != nil {
					t.Fatal(err)
				}
				u.ReportAttempt(&other, 200, nil)
			}
			// Every target tried: a fourth try may go back to one.
			a.Try = 3
			if _, err := u.PickAttempt(r, &a); err != nil {
				t.Errorf("fourth try: %v", err)
			}
			u.ReportAttempt(&a, 200, nil)
			if algo == "least-connections" {
				ts := u.Balancer.Targets()
				for i := range ts {
					tg := &ts[i]
					if n := tg.Active(); n != 0 {
						t.Errorf("target %s has %d picks never ended", tg.Address, n)
					}
				}
			}
		})
	}
}

// TestReportAttemptFeedsPassiveChecks checks what each report counts
// towards: statuses in the passive unhealthy list and connection failures
// and timeouts take a target out at their thresholds; healthy statuses and
// reports without a verdict do not.
func TestReportAttemptFeedsPassiveChecks(t *testing.T) {
	timeout := fmt.Errorf("read: %w", os.ErrDeadlineExceeded)
	tests := []struct {
		name     string
		unhealth map[string]any
		status   int
		err      error
		reports  int
		down     bool
	}{
		{"500 counts as an http failure", map[string]any{"http_failures": float64(2)}, 500, nil, 2, true},
		{"one 500 below the threshold", map[string]any{"http_failures": float64(2)}, 500, nil, 1, false},
		{"429 is in the default list", map[string]any{"http_failures": float64(1)}, 429, nil, 1, true},
		{"502 is not in the default list", map[string]any{"http_failures": float64(1)}, 502, nil, 3, false},
		{"200 is healthy", map[string]any{"http_failures": float64(1)}, 200, nil, 3, false},
		{"custom statuses", map[string]any{"http_failures": float64(1), "http_statuses": arr(float64(502))}, 502, nil, 1, true},
		{"tcp failures", map[string]any{"tcp_failures": float64(1)}, 0, errors.New("connection refused"), 1, true},
		{"timeouts", map[string]any{"timeouts": float64(1)}, 0, timeout, 1, true},
		{"timeouts are not tcp failures", map[string]any{"tcp_failures": float64(1)}, 0, timeout, 2, false},
		{"no verdict", map[string]any{"http_failures": float64(1), "tcp_failures": float64(1)}, 0, nil, 3, false},
		{"checks off", nil, 500, nil, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := compiledUpstream(t, upstreamCfg(1, "round-robin", tt.unhealth))
			r := httptest.NewRequest("GET", "/", nil)
			for range tt.reports {
				var a proxy.Attempt
				if _, err := u.PickAttempt(r, &a); err != nil {
					t.Fatal(err)
				}
				u.ReportAttempt(&a, tt.status, tt.err)
			}
			var a proxy.Attempt
			_, err := u.PickAttempt(r, &a)
			if down := errors.Is(err, proxy.ErrNoPeer); down != tt.down {
				t.Errorf("target down = %v (pick err %v), want %v", down, err, tt.down)
			}
			u.ReportAttempt(&a, 0, nil)
		})
	}
}

// TestPickAttemptAllocs keeps the per-request balancer work allocation
// free: picking and reporting on the proxy's pooled Attempt.
func TestPickAttemptAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	u := compiledUpstream(t, upstreamCfg(3, "round-robin", map[string]any{"http_failures": float64(1000)}))
	r := httptest.NewRequest("GET", "/", nil)
	var a proxy.Attempt
	allocs := testing.AllocsPerRun(1000, func() {
		a = proxy.Attempt{}
		if _, err := u.PickAttempt(r, &a); err != nil {
			t.Fatal(err)
		}
		u.ReportAttempt(&a, 200, nil)
	})
	if allocs != 0 {
		t.Errorf("allocs per pick and report = %v, want 0", allocs)
	}
}
