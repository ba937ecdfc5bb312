package cluster

import (
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
// through one reaches an instance connected to the other (by the revision poll), and both
// share one CA.
func TestPushAcrossProcesses(t *testing.T) {
	opts := storetest.Options(t, "postgres")
	ctx := context.Background()
	stA, err := sqlstore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Close() })
	a := newEnv(t, stA, nil)

	stB, err := sqlstore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	b, err := New(ctx, Options{Store: stB, Entities: entitystore.New(stB), ServerNames: []string{"127.0.0.1"},
		PollInterval: 50 * time.Millisecond, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if string(b.CACertPEM()) != string(a.c.CACertPEM()) {
		t.Fatal("the two processes use different CAs")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	a.write(a.group, "first")
	cert, roots := a.cert(a.group) // issued and pinned through process A
	p, err := kongpeer.New(kongpeer.Options{Address: ln.Addr().String(), RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(),
		Version: "3.9.1", Plugins: allPlugins()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	t.Cleanup(func() { p.Close(); <-errc })
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
		return len(items) == 1 && items[0].(map[string]any)["status"] == "in_sync"
	})
}
