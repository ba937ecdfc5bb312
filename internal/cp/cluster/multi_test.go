package cluster

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/google/uuid"
)

// TestPushAcrossProcesses runs two control planes on one PostgreSQL database: a write made
// through one reaches an instance connected to the other by the database's notification (process
// B's poll is off), both share one CA, and each lists both processes.
func TestPushAcrossProcesses(t *testing.T) {
	opts := storetest.Options(t, "postgres")
	ctx := context.Background()
	stA, err := sqlstore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Close() })
	a := newEnv(t, stA, nil)

	b, ln := serveProcess(t, opts, "process-b", 20*time.Millisecond)
	if !bytes.Equal(b.CACertPEM(), a.c.CACertPEM()) {
		t.Fatal("the two processes use different CAs")
	}

	a.write(a.group, "first")
	cert, roots := a.cert(a.group) // issued and pinned through process A
	p, err := kongpeer.New(kongpeer.Options{Address: ln.Addr().String(), RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(),
		Version: "3.9.1", Plugins: allPlugins()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	t.Cleanup(func() {
		_ = p.Close()
		if err := <-errc; err != nil {
			t.Logf("peer stopped: %v", err)
		}
	})
	if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() == a.expected(a.group) }); err != nil {
		t.Fatalf("instance on process B never got the configuration: %v", err)
	}
	a.write(a.group, "second") // committed through A only
	want := a.expected(a.group)
	if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() == want }); err != nil {
		t.Fatalf("a write through process A did not reach process B's instance: %v", err)
	}
	// Process A's catalogue shows the instance process B holds.
	waitFor(t, "node visible through A", func() bool {
		r := a.do("GET", "/v2/runtime-groups/"+a.group+"/nodes", nil)
		items, _ := r.body["items"].([]any)
		return len(items) == 1 && items[0].(map[string]any)["status"] == "in_sync" &&
			items[0].(map[string]any)["control_plane_node_id"] == "process-b"
	})
	// Each process lists both, with the instance B holds.
	r := a.do("GET", "/v2/control-plane-nodes", nil)
	procs, _ := r.body["data"].([]any)
	if r.status != 200 || len(procs) != 2 {
		t.Fatalf("control-plane-nodes: %d %v, want processes A and B", r.status, r.body)
	}
	seen := map[string]map[string]any{}
	for _, p := range procs {
		pm := p.(map[string]any)
		seen[pm["id"].(string)] = pm
	}
	if pb := seen["process-b"]; pb == nil || pb["status"] != "running" || pb["instances"] != float64(1) || pb["self"] != false {
		t.Fatalf("process B listed as %v", pb)
	}
	for id, pm := range seen {
		if id != "process-b" && (pm["self"] != true || pm["instances"] != float64(0)) {
			t.Fatalf("process A listed as %v", pm)
		}
	}
}

// serveProcess starts another control plane process on the database of opts, with its revision
// poll off (so that only notifications carry other processes' commits), and serves it until t ends.
func serveProcess(t testing.TB, opts sqlstore.Options, id string, flush time.Duration) (*Cluster, net.Listener) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(ctx, Options{Store: st, Entities: entitystore.New(st), ServerNames: []string{"127.0.0.1"},
		PollInterval: -1, FlushInterval: flush, MinPushInterval: -1, ProcessID: id})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c, ln
}
