package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/google/uuid"
)

func TestKongDataPlaneJoins(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st, nil)
		rev := e.write(e.group, "billing")
		p := e.peer(e.group, nil)
		want := e.expected(e.group)
		if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() == want }); err != nil {
			t.Fatalf("peer never applied %s: %v (protocol errors %v)", want, err, p.ProtocolErrors())
		}
		// What the peer received: one unfragmented binary gzip'd reconfigure whose hash it
		// recomputed to the CP's.
		applied := p.Applied()
		if len(applied) == 0 || !applied[0].HashMatches || applied[0].ComputedHash != want {
			t.Fatalf("applied %+v, want hash %s recomputed equal", applied, want)
		}
		bins := p.FramesOf(kongpeer.Received, kongpeer.OpBinary)
		if len(bins) == 0 || !wire.IsGzip(bins[0].Payload) || !bins[0].Fin {
			t.Fatalf("first binary frame: %+v", bins)
		}
		r, err := wire.DecodeReconfigure(bins[0].Payload, 0)
		if err != nil {
			t.Fatal(err)
		}
		svcs, _ := r.ConfigTable["services"].([]any)
		if r.ConfigTable["_format_version"] != "3.0" || len(svcs) != 1 || r.Hashes.Config != want || r.Hashes.Services == wire.EmptyConfigHash {
			t.Errorf("reconfigure: format %v, %d services, hashes %+v", r.ConfigTable["_format_version"], len(svcs), r.Hashes)
		}
		if len(p.ProtocolErrors()) != 0 {
			t.Errorf("protocol errors: %v", p.ProtocolErrors())
		}

		// The node it produces.
		nodeID := peerNodeID(t, e, e.group)
		waitFor(t, "node in sync", func() bool { n := e.node(e.group, nodeID); return n != nil && n["status"] == "in_sync" })
		n := e.node(e.group, nodeID)
		checks := map[string]any{"type": TypeKong, "config_hash": want, "version": schema.KongVersion, "connected": true, "revision": float64(rev),
			"sync_status": "normal", "ip": "127.0.0.1"}
		for k, v := range checks {
			if n[k] != v {
				t.Errorf("node %s = %v, want %v", k, n[k], v)
			}
		}
		if n["cert_expiry"] == nil || n["connected_since"] == nil || n["last_error"] != nil {
			t.Errorf("node cert_expiry %v connected_since %v last_error %v", n["cert_expiry"], n["connected_since"], n["last_error"])
		}
		if cs := n["compatibility_status"].(map[string]any); cs["state"] != "COMPATIBILITY_STATE_FULLY_COMPATIBLE" {
			t.Errorf("compatibility_status %v", cs)
		}
		// Expected hash, under both collection names.
		for _, base := range []string{"/v2/runtime-groups/", "/v2/control-planes/"} {
			r := e.do("GET", base+e.group+"/expected-config-hash", nil)
			if r.status != http.StatusOK || r.body["expected_hash"] != want || r.body["created_at"] == nil {
				t.Errorf("%s expected-config-hash: %d %s", base, r.status, r.raw)
			}
		}
		// The group listing counts it.
		g := e.do("GET", "/v2/runtime-groups/"+e.group, nil)
		if counts, _ := g.body["instance_counts"].(map[string]any); counts["in_sync"] != float64(1) {
			t.Errorf("instance_counts %v", g.body["instance_counts"])
		}
	})
}

// peerNodeID returns the id of the only node of the group.
func peerNodeID(t *testing.T, e *env, groupID string) string {
	t.Helper()
	var id string
	waitFor(t, "node listed", func() bool {
		r := e.do("GET", "/v2/runtime-groups/"+groupID+"/nodes", nil)
		items, _ := r.body["items"].([]any)
		if len(items) == 0 {
			return false
		}
		id, _ = items[0].(map[string]any)["id"].(string)
		return true
	})
	return id
}

func selfSigned(t *testing.T, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "stranger"}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestCertificatesDecideTheGroup(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	other := e.newGroup("other")
	e.write(e.group, "a-service")
	e.write(other, "b-service")
	_, roots := e.cert(e.group)

	connect := func(cert tls.Certificate) error {
		p, err := kongpeer.New(kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(), Plugins: allPlugins()})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return p.Connect(waitCtx(t))
	}
	t.Run("unpinned certificate refused at the handshake", func(t *testing.T) {
		if err := connect(selfSigned(t, time.Now().Add(time.Hour))); err == nil {
			t.Fatal("connected with an unpinned certificate")
		}
	})
	t.Run("expired pinned certificate refused", func(t *testing.T) {
		// Pinned while valid, presented after expiry (the CP clock moves on).
		cert := selfSigned(t, time.Now().Add(time.Hour))
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		if _, err := e.c.pin(context.Background(), e.group, "soon", string(pemCert(leaf)), Fingerprint(leaf), leaf.NotAfter, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.identify(context.Background(), []*x509.Certificate{leaf}); err != nil {
			t.Fatalf("valid pinned certificate refused: %v", err)
		}
		later := *e.c
		later.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		_, err := later.identify(context.Background(), []*x509.Certificate{leaf})
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("expired certificate: %v", err)
		}
	})
	t.Run("pinning an expired certificate is refused", func(t *testing.T) {
		cert := selfSigned(t, time.Now().Add(-time.Minute))
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		if _, err := e.c.PinCertificate(context.Background(), e.group, "old", string(pemCert(leaf))); !errors.Is(err, ErrCertificateInvalid) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a certificate pins to one group only", func(t *testing.T) {
		issued, err := e.c.IssueCertificate(context.Background(), e.group, "x")
		if err != nil {
			t.Fatal(err)
		}
		r := e.do("POST", "/v2/runtime-groups/"+other+"/dp-client-certificates", map[string]any{"cert": issued.CertPEM, "title": "steal"})
		if r.status != http.StatusConflict {
			t.Fatalf("pin to second group: %d %s", r.status, r.raw)
		}
	})
	t.Run("a certificate of another group gets that group's configuration only", func(t *testing.T) {
		p := e.peer(other, nil)
		want := e.expected(other)
		if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() == want }); err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Applied() {
			if a.ConfigHash == e.expected(e.group) {
				t.Fatal("received the other group's configuration")
			}
		}
	})
	t.Run("unpinned certificate is dropped and refused", func(t *testing.T) {
		cert, roots := e.cert(e.group)
		certs := e.do("GET", "/v2/runtime-groups/"+e.group+"/dp-client-certificates", nil)
		items := certs.body["items"].([]any)
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		var id string
		for _, it := range items {
			if it.(map[string]any)["fingerprint"] == Fingerprint(leaf) {
				id = it.(map[string]any)["id"].(string)
			}
		}
		p, _ := kongpeer.New(kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(), Plugins: allPlugins(), Version: schema.KongVersion})
		errc := make(chan error, 1)
		go func() { errc <- p.Run(context.Background()) }()
		defer p.Close()
		if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() != wire.EmptyConfigHash }); err != nil {
			t.Fatal(err)
		}
		if r := e.do("DELETE", "/v2/runtime-groups/"+e.group+"/dp-client-certificates/"+id, nil); r.status != http.StatusNoContent {
			t.Fatalf("unpin: %d %s", r.status, r.raw)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, kongpeer.ErrClosedByCP) {
				t.Errorf("link ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("link of an unpinned certificate stays open")
		}
		if err := connect(cert); err == nil {
			t.Fatal("unpinned generated certificate connected again")
		}
	})
}

func TestPushReachesEveryPeerAndCoalesces(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st, func(o *Options) { o.MinPushInterval = 200 * time.Millisecond })
		e.write(e.group, "first")
		const n = 5
		peers := make([]*kongpeer.Peer, n)
		for i := range peers {
			peers[i] = e.peer(e.group, nil)
		}
		waitAll := func(want string) {
			for _, p := range peers {
				if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() == want }); err != nil {
					t.Fatalf("peer stuck at %s, want %s", p.ConfigHash(), want)
				}
			}
		}
		waitAll(e.expected(e.group))
		before := len(peers[0].Applied())

		e.write(e.group, "second")
		waitAll(e.expected(e.group))

		// A burst of 20 commits reaches the peers as a handful of pushes, ending at the newest.
		mid := len(peers[0].Applied())
		for i := range 20 {
			e.write(e.group, "burst-"+string(rune('a'+i)))
		}
		final := e.expected(e.group)
		waitAll(final)
		pushes := len(peers[0].Applied()) - mid
		if pushes < 1 || pushes > 5 {
			t.Errorf("20 commits caused %d pushes, want 1..5", pushes)
		}
		if mid-before != 1 {
			t.Errorf("one commit caused %d pushes", mid-before)
		}
		// Nothing is resent to peers already running the newest hash.
		time.Sleep(300 * time.Millisecond)
		if got := len(peers[0].Applied()) - mid; got != pushes {
			t.Errorf("extra pushes after convergence: %d -> %d", pushes, got)
		}
	})
}

func TestIncompatibleInstances(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	e.insert(e.group, "plugins", map[string]any{"name": "key-auth"})

	for _, version := range []string{"4.0.0", "2.8.4"} {
		t.Run("another major version is refused with a reason: "+version, func(t *testing.T) {
			p := e.peer(e.group, func(o *kongpeer.Options) { o.Version = version })
			if err := p.Wait(waitCtx(t), func() bool { return p.CloseInfo() != nil }); err != nil {
				t.Fatal(err)
			}
			ci := p.CloseInfo()
			if !ci.FromCP || !strings.Contains(ci.Reason, "incompatible") || len(p.Applied()) != 0 {
				t.Fatalf("close %+v, applied %d", ci, len(p.Applied()))
			}
			id := peerNodeIDByVersion(t, e, version)
			n := e.node(e.group, id)
			cs := n["compatibility_status"].(map[string]any)
			issues := cs["issues"].([]any)
			if cs["state"] != "COMPATIBILITY_STATE_INCOMPATIBLE" || len(issues) != 1 || issues[0].(map[string]any)["code"] != wire.IssueVersionIncompatible ||
				n["sync_status"] != string(wire.SyncStatusKongVersionIncompatible) {
				t.Fatalf("node %v", n)
			}
		})
	}
	t.Run("missing plugin gets no configuration", func(t *testing.T) {
		var plugins []wire.PluginInfo
		for _, p := range allPlugins() {
			if p.Name != "key-auth" {
				plugins = append(plugins, p)
			}
		}
		p := e.peer(e.group, func(o *kongpeer.Options) { o.Plugins = plugins; o.Version = "3.9.0" })
		id := peerNodeIDByVersion(t, e, "3.9.0")
		waitFor(t, "incompatible status", func() bool { n := e.node(e.group, id); return n != nil && n["status"] == string(StatusIncompatible) })
		n := e.node(e.group, id)
		issues := n["compatibility_status"].(map[string]any)["issues"].([]any)
		if n["sync_status"] != string(wire.SyncStatusPluginSetIncompatible) || issues[0].(map[string]any)["code"] != wire.IssuePluginMissing {
			t.Fatalf("node %v", n)
		}
		if len(p.Applied()) != 0 || p.ConfigHash() != wire.EmptyConfigHash {
			t.Fatalf("incompatible peer received a configuration: %+v", p.Applied())
		}
	})
}

func peerNodeIDByVersion(t *testing.T, e *env, version string) string {
	t.Helper()
	var id string
	waitFor(t, "node "+version, func() bool {
		r := e.do("GET", "/v2/runtime-groups/"+e.group+"/nodes", nil)
		items, _ := r.body["items"].([]any)
		for _, it := range items {
			if m := it.(map[string]any); m["version"] == version {
				id = m["id"].(string)
				return true
			}
		}
		return false
	})
	return id
}

func TestGantryRuntimeAcksAndIsOrphaned(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st, nil)
		g := e.newGroup("doomed")
		rev := e.write(g, "svc")
		cert, roots := e.cert(g)
		nodeID := uuid.NewString()
		gc, err := dialGantry(t, e.addr, cert, roots, nodeID)
		if err != nil {
			t.Fatal(err)
		}
		defer gc.ws.CloseNow()
		hello, ok := gc.next(t).(*wire.Hello)
		if !ok || !hello.Has(wire.CapRevisions) || hello.ProtocolVersion != wire.ProtocolVersion {
			t.Fatalf("hello %#v", hello)
		}
		r, ok := gc.next(t).(*wire.Revision)
		if !ok || r.Revision != rev || r.ConfigHash != e.expected(g) {
			t.Fatalf("revision frame %#v", r)
		}
		// A nack is shown as apply_failed with its per-entity errors.
		gc.send(t, &wire.Nack{Revision: r.Revision, ConfigHash: r.ConfigHash, Message: "rejected",
			Errors: []wire.EntityError{{EntityType: "services", EntityID: "x", Message: "bad host"}}})
		waitFor(t, "apply_failed", func() bool { n := e.node(g, nodeID); return n != nil && n["status"] == string(StatusApplyFailed) })
		if le, _ := e.node(g, nodeID)["last_error"].(string); !strings.Contains(le, "services x: bad host") {
			t.Errorf("last_error %q", le)
		}
		gc.send(t, &wire.Ack{Revision: r.Revision, ConfigHash: r.ConfigHash})
		waitFor(t, "in_sync", func() bool { n := e.node(g, nodeID); return n != nil && n["status"] == string(StatusInSync) })
		n := e.node(g, nodeID)
		if n["type"] != TypeGantry || n["revision"] != float64(rev) || n["last_error"] != nil || n["labels"].(map[string]any)["zone"] != "a" {
			t.Errorf("node %v", n)
		}
		gc.send(t, &wire.Telemetry{Schema: "gantry.metrics.v1", Payload: []byte(`{}`)})

		// Deleting the group orphans it: a frame saying so, then a close with a reason.
		if r := e.do("DELETE", "/v2/runtime-groups/"+g, nil); r.status != http.StatusNoContent {
			t.Fatalf("delete group: %d %s", r.status, r.raw)
		}
		// The deletion also arrives by the database's notification (on PostgreSQL) or the
		// pusher: told again, the instance still gets one notice, then the close.
		e.c.GroupDeleted(g)
		f := gc.next(t)
		if o, ok := f.(*Orphaned); !ok || o.GroupID != g {
			t.Fatalf("want orphaned frame, got %#v", f)
		}
		after := gc.next(t)
		err, _ = after.(error)
		if closeReason(err) == "" || !strings.Contains(closeReason(err), "orphaned") {
			t.Fatalf("after the orphaned frame, want the close; got %#v", after)
		}
		// Its certificate no longer connects; the refusal says why.
		_, err = dialGantry(t, e.addr, cert, roots, nodeID)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("reconnect after deletion: %v", err)
		}
	})
}

func TestKongPeerOrphanedAndRefusedWithReason(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	g := e.newGroup("doomed")
	e.write(g, "svc")
	cert, roots := e.cert(g)
	p, _ := kongpeer.New(kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(), Plugins: allPlugins(), Version: schema.KongVersion})
	defer p.Close()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	if err := p.Wait(waitCtx(t), func() bool { return p.ConfigHash() != wire.EmptyConfigHash }); err != nil {
		t.Fatal(err)
	}
	e.do("DELETE", "/v2/runtime-groups/"+g, nil)
	select {
	case err := <-errc:
		t.Logf("link ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("link stays open after group deletion")
	}
	if ci := p.CloseInfo(); ci == nil || !strings.Contains(ci.Reason, "orphaned") {
		t.Fatalf("close info %+v", ci)
	}
	// Kong logs the HTTP status and body of a refused upgrade.
	err := p.Connect(waitCtx(t))
	var he *kongpeer.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !strings.Contains(he.Body, "deleted") {
		t.Fatalf("reconnect: %v", err)
	}
}

func TestNodesAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		now := time.Now()
		clock := func() time.Time { return now }
		e := newEnv(t, st, func(o *Options) { o.Now = func() time.Time { return clock() } })
		e.write(e.group, "svc")
		for range 3 {
			e.peer(e.group, nil)
		}
		waitFor(t, "3 nodes", func() bool {
			r := e.do("GET", "/v2/runtime-groups/"+e.group+"/nodes", nil)
			return r.body["page"] != nil && r.body["page"].(map[string]any)["total_count"] == float64(3)
		})
		// Paging with a cursor visits every node once.
		seen := map[string]bool{}
		after := ""
		for range 4 {
			r := e.do("GET", "/v2/control-planes/"+e.group+"/nodes?page[size]=2&page[after]="+after, nil)
			for _, it := range r.body["items"].([]any) {
				seen[it.(map[string]any)["id"].(string)] = true
			}
			next, _ := r.body["page"].(map[string]any)["next"].(string)
			if next == "" {
				break
			}
			after = next
		}
		if len(seen) != 3 {
			t.Errorf("paging saw %d nodes", len(seen))
		}
		if r := e.do("GET", "/v2/runtime-groups/"+e.group+"/nodes?page[size]=0", nil); r.status != http.StatusBadRequest {
			t.Errorf("page[size]=0: %d", r.status)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+e.group+"/nodes/"+uuid.NewString(), nil); r.status != http.StatusNotFound {
			t.Errorf("unknown node: %d", r.status)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+uuid.NewString()+"/nodes", nil); r.status != http.StatusNotFound {
			t.Errorf("unknown group: %d", r.status)
		}
		var ids []string
		for id := range seen {
			ids = append(ids, id)
		}
		if r := e.do("DELETE", "/v2/runtime-groups/"+e.group+"/nodes/"+ids[0], nil); r.status != http.StatusNoContent {
			t.Errorf("delete: %d %s", r.status, r.raw)
		}
		if r := e.do("DELETE", "/v2/runtime-groups/"+e.group+"/nodes/"+ids[0], nil); r.status != http.StatusNotFound {
			t.Errorf("second delete: %d", r.status)
		}
		// The deletion is in the audit log once, with the node before; the refused second one
		// is not.
		deleted, _, err := e.st.ListAudit(context.Background(), store.AuditQuery{OrgID: e.org.Org.ID, EntityType: AuditNodes, Limit: 10})
		if err != nil || len(deleted) != 1 || deleted[0].Action != store.ActionDelete || deleted[0].EntityID != ids[0] || deleted[0].GroupID != e.group ||
			deleted[0].ActorID != e.org.Admin.ID || deleted[0].Status != http.StatusNoContent || !strings.Contains(string(deleted[0].Before), `"hostname"`) || deleted[0].After != nil {
			t.Errorf("audit of the node deletion: %+v, %v", deleted, err)
		}

		// Purge: nodes silent past the purge delay disappear.
		if n, err := e.c.Purge(context.Background()); err != nil || n != 0 {
			t.Fatalf("early purge removed %d (%v)", n, err)
		}
		later := now.Add(DefaultPurgeDelay + time.Hour)
		clock = func() time.Time { return later }
		// Seen from the future, the live nodes are silent: disconnected, then purged.
		if s := e.node(e.group, ids[1])["status"]; s != string(StatusDisconnected) {
			t.Errorf("silent node status %v", s)
		}
		if n, err := e.c.Purge(context.Background()); err != nil || n < 2 {
			t.Fatalf("purge removed %d (%v)", n, err)
		}
	})
}

func TestDeriveStatus(t *testing.T) {
	now := time.Now()
	base := Node{Connected: true, LastPing: now, ConfigHash: "h2"}
	cases := []struct {
		name string
		mod  func(*Node)
		want Status
	}{
		{"in sync", func(n *Node) {}, StatusInSync},
		{"behind", func(n *Node) { n.ConfigHash = "h1" }, StatusBehind},
		{"nothing yet", func(n *Node) { n.ConfigHash = wire.EmptyConfigHash }, StatusBehind},
		{"disconnected", func(n *Node) { n.Connected = false }, StatusDisconnected},
		{"silent link", func(n *Node) { n.LastPing = now.Add(-time.Minute) }, StatusDisconnected},
		{"apply failed on current", func(n *Node) { n.ConfigHash = "h1"; n.LastError = "x"; n.ErrorHash = "h2" }, StatusApplyFailed},
		{"old failure is history", func(n *Node) { n.ConfigHash = "h1"; n.LastError = "x"; n.ErrorHash = "h0" }, StatusBehind},
		{"incompatible", func(n *Node) {
			n.ConfigHash = "h1"
			n.Compatibility = []wire.CompatibilityIssue{{Severity: wire.SeverityError}}
		}, StatusIncompatible},
		{"warnings only", func(n *Node) { n.Compatibility = []wire.CompatibilityIssue{{Severity: wire.SeverityWarning}} }, StatusInSync},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := base
			c.mod(&n)
			if got := DeriveStatus(n, "h2", now, DefaultPingWait); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestCertificateAPI(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, nil)
	base := "/v2/runtime-groups/" + e.group + "/dp-client-certificates"
	gen := e.do("POST", base+"/generate", map[string]any{"title": "edge"})
	if gen.status != http.StatusCreated || !strings.Contains(gen.body["key"].(string), "PRIVATE KEY") || !strings.Contains(gen.body["ca_cert"].(string), "CERTIFICATE") {
		t.Fatalf("generate: %d %s", gen.status, gen.raw)
	}
	item := gen.body["item"].(map[string]any)
	if item["title"] != "edge" || item["generated"] != true || strings.Contains(gen.raw, `"key_pem"`) {
		t.Errorf("item %v", item)
	}
	got := e.do("GET", base+"/"+item["id"].(string), nil)
	if got.status != http.StatusOK || got.body["item"].(map[string]any)["cert"] != item["cert"] || strings.Contains(got.raw, "PRIVATE KEY") {
		t.Errorf("get: %d %s", got.status, got.raw)
	}
	cases := []struct {
		name   string
		body   map[string]any
		status int
		field  string // the invalid parameter a 400 names
	}{
		{"missing cert", map[string]any{"title": "x"}, http.StatusBadRequest, "cert"},
		{"not a certificate", map[string]any{"cert": "hello"}, http.StatusBadRequest, "cert"},
		{"unknown field", map[string]any{"cert": "x", "colour": "red"}, http.StatusBadRequest, "colour"},
		{"already pinned", map[string]any{"cert": item["cert"]}, http.StatusConflict, ""},
		{"user certificate", map[string]any{"cert": string(pemCert(mustLeaf(t, selfSigned(t, time.Now().Add(time.Hour))))), "title": "mine"}, http.StatusCreated, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", base, c.body)
			if r.status != c.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, c.status)
			}
			if c.status < 400 {
				return
			}
			// Errors are the management API's problem+json, with Konnect's legacy "message" too.
			if r.body["status"] != float64(c.status) || r.body["message"] == "" || r.body["message"] != r.body["detail"] ||
				!strings.HasPrefix(fmt.Sprint(r.body["instance"]), "gantry:trace:") {
				t.Fatalf("error body %s", r.raw)
			}
			if c.field != "" && !strings.Contains(r.raw, `"field":"`+c.field+`"`) {
				t.Fatalf("400 does not name %q: %s", c.field, r.raw)
			}
		})
	}
	list := e.do("GET", base, nil)
	if list.body["page"].(map[string]any)["total_count"] != float64(2) {
		t.Errorf("list %s", list.raw)
	}
}

func mustLeaf(t *testing.T, c tls.Certificate) *x509.Certificate {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}
