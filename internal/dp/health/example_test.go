package health_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gantry-gw/gantry/internal/dp/balancer"
	"github.com/gantry-gw/gantry/internal/dp/health"
)

// The runtime keeps one Registry for its lifetime. For each new
// configuration it calls Update first, then builds balancers whose targets
// read their health from the registry, so state carries across swaps.
func Example() {
	ctx := context.Background()
	reg, err := health.New(ctx, health.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	checks := health.DefaultConfig()
	checks.Passive.Unhealthy.TCPFailures = 2
	up := health.Upstream{ID: "7f1c", Name: "orders", Checks: checks, Targets: []health.TargetSpec{
		{Address: "10.0.0.1:8000", Weight: 100}, {Address: "10.0.0.2:8000", Weight: 100},
	}}
	if err := reg.Update([]health.Upstream{up}); err != nil {
		panic(err)
	}
	var targets []balancer.TargetConfig
	for _, ts := range up.Targets {
		targets = append(targets, balancer.TargetConfig{
			Address: ts.Address, Weight: ts.Weight, Health: reg.Target(up.ID, ts.Address),
		})
	}
	b, err := balancer.New(balancer.Options{Name: up.Name, Targets: targets})
	if err != nil {
		panic(err)
	}

	// The proxy reports two failed connections to the first target.
	reg.Target(up.ID, "10.0.0.1:8000").ReportTCPFailure()
	reg.Target(up.ID, "10.0.0.1:8000").ReportTCPFailure()

	for range 3 {
		var a balancer.Attempt
		t, err := b.Pick(&a)
		if err != nil {
			panic(err)
		}
		fmt.Println(t.Address)
		b.Done(t)
	}
	st, _ := reg.Status(up.ID)
	fmt.Println(st.Health, st.Targets[0].Health)
	// Output:
	// 10.0.0.2:8000
	// 10.0.0.2:8000
	// 10.0.0.2:8000
	// HEALTHY UNHEALTHY
}
