package cluster

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
)

// TestNodesOfDeadProcess: an instance recorded as connected counts as connected only while the
// control plane process holding its link heartbeats; a disconnect written late by the process it
// left never overwrites the process it moved to.
func TestNodesOfDeadProcess(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, storetest.Open(t, dialect), nil)
			ctx := context.Background()
			now := time.Now()
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := e.st.DB().ExecContext(ctx, e.st.Rebind(q), args...); err != nil {
					t.Fatal(err)
				}
			}
			// "alive" heartbeats in the future, so that a slow run never sees it go stale.
			exec(`INSERT INTO control_plane_nodes (id, started_at, heartbeat_at) VALUES (?, ?, ?), (?, ?, ?)`,
				"alive", now.Unix(), now.Add(time.Hour).Unix(), "dead", now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix())
			write := func(n Node) {
				t.Helper()
				if err := e.st.InTx(ctx, func(tx *sql.Tx) error { return e.c.nodes.upsert(ctx, tx, n) }); err != nil {
					t.Fatal(err)
				}
			}
			node := func(id, process string) Node {
				return Node{GroupID: e.group, ID: id, Hostname: id, Type: TypeGantry, Connected: true, ConnectedSince: now, LastPing: now,
					ConfigHash: wire.EmptyConfigHash, SyncStatus: wire.SyncStatusNormal, CreatedAt: now, UpdatedAt: now, ControlPlaneID: process}
			}
			write(node("on-alive", "alive"))
			write(node("on-dead", "dead"))
			write(node("legacy", "")) // before processes were recorded: the ping decides
			for id, want := range map[string]bool{"on-alive": true, "on-dead": false, "legacy": true} {
				n := e.node(e.group, id)
				if n == nil || n["connected"] != want {
					t.Errorf("node %s: %v, want connected %v", id, n, want)
				}
				if want == false && n["status"] != string(StatusDisconnected) {
					t.Errorf("node %s status %v, want disconnected", id, n["status"])
				}
				// Disconnected since the dead process's last heartbeat, not its last ping.
				if want == false && n["disconnected_since"] != float64(now.Add(-time.Minute).Unix()) {
					t.Errorf("node %s disconnected_since %v, want the dead process's last heartbeat %d", id, n["disconnected_since"], now.Add(-time.Minute).Unix())
				}
			}
			// The group's counts agree: one of the three is disconnected.
			r := e.do("GET", "/v2/runtime-groups/"+e.group, nil)
			counts, _ := r.body["instance_counts"].(map[string]any)
			if r.status != http.StatusOK || counts[string(StatusDisconnected)] != float64(1) {
				t.Fatalf("group: %d %v, want one disconnected instance", r.status, r.body)
			}

			// The instance moved from "dead" to "alive": a late disconnect from "dead" is ignored…
			moved := node("on-dead", "alive")
			write(moved)
			late := node("on-dead", "dead")
			late.Connected = false
			write(late)
			if n := e.node(e.group, "on-dead"); n["connected"] != true || n["control_plane_node_id"] != "alive" {
				t.Fatalf("late disconnect from the old process overwrote the new link: %v", n)
			}
			// …while the holder's own disconnect is recorded.
			gone := node("on-dead", "alive")
			gone.Connected, gone.DisconnectedAt = false, now.Add(5*time.Second)
			write(gone)
			if n := e.node(e.group, "on-dead"); n["connected"] != false || n["disconnected_since"] != float64(gone.DisconnectedAt.Unix()) {
				t.Fatalf("the holder's disconnect was not recorded with its time: %v", n)
			}

			// The registry lists both, the dead one as unreachable with no instances.
			ps, err := e.c.Processes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			status := map[string]Process{}
			for _, p := range ps {
				status[p.ID] = p
			}
			if status["alive"].Status != "running" || status["alive"].Instances != 1 || status["dead"].Status != "unreachable" ||
				status["dead"].Instances != 0 || !status[e.c.opts.ProcessID].Self {
				t.Fatalf("processes %+v", ps)
			}
			// Rows of processes gone for a day are forgotten by the purge.
			exec(`UPDATE control_plane_nodes SET heartbeat_at = ? WHERE id = ?`, now.Add(-25*time.Hour).Unix(), "dead")
			// The cluster's own purge may hold the job's lock at that moment: then this one skips,
			// and the next one runs.
			forgotten := func() bool {
				e.c.purgeOnce(ctx)
				ps, _ := e.c.Processes(ctx)
				for _, p := range ps {
					if p.ID == "dead" {
						return false
					}
				}
				return true
			}
			for i := 0; !forgotten(); i++ {
				if i == 50 {
					t.Fatal("a process silent for 25 h is still listed")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
