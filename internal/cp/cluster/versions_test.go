package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/google/uuid"
)

// pluginsAt is what a stock Kong data plane of version announces: the bundled plugins, at its own
// version.
func pluginsAt(version string) []wire.PluginInfo {
	var out []wire.PluginInfo
	for _, p := range schema.Plugins() {
		out = append(out, wire.PluginInfo{Name: p.Name, Version: version})
	}
	return out
}

// TestKongDataPlaneVersionsJoin: Kong data planes of every current version join a group whose
// configuration uses fields newer than Kong 3.4. Each receives a configuration its version's
// declarative parser accepts (the peer refuses unknown fields as that version would), reports the
// hash the control plane expects from it and shows in sync, with a warning for each field that
// was left out although it was set.
func TestKongDataPlaneVersionsJoin(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	e.write(e.group, "billing")
	// cors: private_network is Kong 3.5's, allow_origin_absent 3.10's (false is not its default);
	// key-auth's realm is 3.7's; rate-limiting's redis record is 3.6's shape, which older data
	// planes get as the equivalent flat redis_* fields (no warning: nothing changes).
	e.insert(e.group, "plugins", map[string]any{"name": "cors", "config": map[string]any{"private_network": true, "allow_origin_absent": false}})
	e.insert(e.group, "plugins", map[string]any{"name": "key-auth", "config": map[string]any{"realm": "billing"}})
	e.insert(e.group, "plugins", map[string]any{"name": "rate-limiting",
		"config": map[string]any{"minute": 10, "policy": "redis", "redis": map[string]any{"host": "redis.internal", "port": 6380}}})
	snap, err := e.c.snaps.Build(t.Context(), e.group)
	if err != nil {
		t.Fatal(err)
	}
	full := snap.Hash

	tests := []struct {
		version string
		// downgraded: the data plane gets (and reports) another hash than the group's.
		downgraded bool
		// flatRedis: rate-limiting's redis record arrives as Kong 3.0-3.5's redis_* fields.
		flatRedis bool
		// warnings are the codes and the text each warning's description must contain, in order.
		warnings [][2]string
	}{
		{version: "3.4.3", downgraded: true, flatRedis: true, warnings: [][2]string{
			{wire.IssueFieldRemoved, "config.private_network"}, {wire.IssueFieldRemoved, "config.realm"},
			{wire.IssueFieldRemoved, "config.allow_origin_absent"}}},
		{version: "3.9.1", downgraded: true, warnings: [][2]string{{wire.IssueFieldRemoved, "config.allow_origin_absent"}}},
		{version: "3.10.0"},
		{version: "3.11.1"},
		{version: "3.12.0"},
		// Newer than the control plane: accepted, as Konnect does, with the full configuration.
		{version: "3.13.0", warnings: [][2]string{{wire.IssueVersionNewer, "3.13.0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			p := e.peer(e.group, func(o *kongpeer.Options) {
				o.Version = tt.version
				o.Plugins = pluginsAt(tt.version)
				o.Validate = kongpeer.VersionValidator(tt.version)
			})
			if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) > 0 }); err != nil {
				t.Fatalf("nothing received: %v (protocol errors %v, close %+v)", err, p.ProtocolErrors(), p.CloseInfo())
			}
			a := p.Applied()[0]
			if a.Err != nil || !a.HashMatches || p.ConfigHash() != a.ComputedHash {
				t.Fatalf("applied %+v; peer hash %s", a, p.ConfigHash())
			}
			if got := p.ConfigHash() != full; got != tt.downgraded {
				t.Fatalf("peer runs %s, group hash %s: downgraded %v, want %v", p.ConfigHash(), full, got, tt.downgraded)
			}
			// What it runs: every plugin, with fields only its version knows.
			plugins, _ := p.Config()["plugins"].([]any)
			if len(plugins) != 3 {
				t.Fatalf("plugins %v", plugins)
			}
			rl := pluginConfig(plugins, "rate-limiting")
			if flat := rl["redis_host"] == "redis.internal" && fmt.Sprint(rl["redis_port"]) == "6380" && rl["redis"] == nil; flat != tt.flatRedis {
				t.Errorf("rate-limiting config %v", rl)
			}

			id := peerNodeIDByVersion(t, e, tt.version)
			waitFor(t, "node in sync", func() bool { n := e.node(e.group, id); return n != nil && n["status"] == string(StatusInSync) })
			n := e.node(e.group, id)
			if n["config_hash"] != p.ConfigHash() || n["sync_status"] != string(wire.SyncStatusNormal) || n["revision"] != float64(snap.Revision) {
				t.Errorf("node %v", n)
			}
			issues, _ := n["compatibility_status"].(map[string]any)["issues"].([]any)
			if len(issues) != len(tt.warnings) {
				t.Fatalf("issues %v, want %v", issues, tt.warnings)
			}
			for i, w := range tt.warnings {
				is := issues[i].(map[string]any)
				if is["code"] != w[0] || is["severity"] != wire.SeverityWarning || !strings.Contains(is["description"].(string), w[1]) {
					t.Errorf("issue %d = %v, want %s about %s", i, is, w[0], w[1])
				}
				if w[0] == wire.IssueFieldRemoved && len(is["affected_resources"].([]any)) != 1 {
					t.Errorf("issue %d affects %v", i, is["affected_resources"])
				}
			}
		})
	}
}

func pluginConfig(plugins []any, name string) map[string]any {
	i := slices.IndexFunc(plugins, func(p any) bool { return p.(map[string]any)["name"] == name })
	if i < 0 {
		return nil
	}
	cfg, _ := plugins[i].(map[string]any)["config"].(map[string]any)
	return cfg
}

// TestDowngradedDataPlaneReconnects: a data plane that reconnects already running the
// configuration downgraded for it is sent nothing again, stays in sync and keeps its warning.
func TestDowngradedDataPlaneReconnects(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	e.write(e.group, "billing")
	e.insert(e.group, "plugins", map[string]any{"name": "cors", "config": map[string]any{"allow_origin_absent": false}})
	cert, roots := e.cert(e.group)
	const version = "3.9.1"
	p, err := kongpeer.New(kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(),
		Version: version, Plugins: pluginsAt(version), PingInterval: 10 * time.Second, Validate: kongpeer.VersionValidator(version)})
	if err != nil {
		t.Fatal(err)
	}
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Logf("link ended: %v", err)
			}
		}
	}
	stop := run()
	if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) == 1 && p.Applied()[0].Err == nil }); err != nil {
		t.Fatalf("first link: %v (applied %+v)", err, p.Applied())
	}
	id := peerNodeIDByVersion(t, e, version)
	inSyncWithWarning := func() bool {
		n := e.node(e.group, id)
		if n == nil || n["status"] != string(StatusInSync) || n["config_hash"] != p.ConfigHash() {
			return false
		}
		issues, _ := n["compatibility_status"].(map[string]any)["issues"].([]any)
		return len(issues) == 1 && issues[0].(map[string]any)["code"] == wire.IssueFieldRemoved
	}
	waitFor(t, "first link in sync with a warning", inSyncWithWarning)
	stop()
	waitFor(t, "node disconnected", func() bool { n := e.node(e.group, id); return n != nil && n["connected"] == false })

	stop = run()
	defer stop()
	waitFor(t, "second link connected", func() bool { n := e.node(e.group, id); return n != nil && n["connected"] == true })
	waitFor(t, "second link in sync with a warning", inSyncWithWarning)
	time.Sleep(200 * time.Millisecond)
	if n := len(p.Applied()); n != 1 {
		t.Fatalf("configuration sent again on reconnect: %d applies", n)
	}
}
