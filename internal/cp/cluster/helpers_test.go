package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/google/uuid"
)

// env is a control plane's cluster listener and management API on a real store.
type env struct {
	t     testing.TB
	st    *sqlstore.Store
	es    *entitystore.Store
	c     *Cluster
	addr  string
	api   *httptest.Server
	token string
	org   store.BootstrapResult
	group string // the default group
}

func newEnv(t testing.TB, st *sqlstore.Store, mod func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	token := auth.NewToken()
	res, err := st.Bootstrap(ctx, store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
	if err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(st)
	opts := Options{Store: st, Entities: es, ServerNames: []string{"127.0.0.1"}, FlushInterval: 20 * time.Millisecond,
		MinPushInterval: 20 * time.Millisecond, PollInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(ctx, opts)
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
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return")
		}
	})
	a, err := api.New(api.Options{Store: st, Region: "us", OnGroupDeleted: c.GroupDeleted, InstanceCounts: c.InstanceCounts})
	if err != nil {
		t.Fatal(err)
	}
	c.Mount(a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, es: es, c: c, addr: ln.Addr().String(), api: srv, token: token, org: res, group: res.Group.ID}
}

// newGroup adds a group to the organization.
func (e *env) newGroup(name string) string {
	e.t.Helper()
	g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: e.org.Org.ID, Region: "us", Name: name, ClusterType: "CLUSTER_TYPE_CONTROL_PLANE",
		AuthType: "pinned_client_certs", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.st.CreateGroup(context.Background(), g); err != nil {
		e.t.Fatal(err)
	}
	return g.ID
}

// cert issues a client certificate for the group.
func (e *env) cert(groupID string) (tls.Certificate, *x509.CertPool) {
	e.t.Helper()
	issued, err := e.c.IssueCertificate(context.Background(), groupID, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(issued.CertPEM), []byte(issued.KeyPEM))
	if err != nil {
		e.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(issued.CAPEM))
	return pair, roots
}

// allPlugins is what a stock Kong data plane of the CP's version announces.
func allPlugins() []wire.PluginInfo {
	var out []wire.PluginInfo
	for _, p := range schema.Plugins() {
		out = append(out, wire.PluginInfo{Name: p.Name, Version: p.Version})
	}
	return out
}

// peer starts a Kong data plane test peer of the group and returns it running.
func (e *env) peer(groupID string, mod func(*kongpeer.Options)) *kongpeer.Peer {
	e.t.Helper()
	cert, roots := e.cert(groupID)
	opts := kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(), Hostname: "dp-" + groupID[:4],
		Version: schema.KongVersion, Plugins: allPlugins(), PingInterval: 10 * time.Second}
	if mod != nil {
		mod(&opts)
	}
	p, err := kongpeer.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		_ = p.Close()
		if err := <-errc; err != nil {
			e.t.Logf("peer stopped: %v", err)
		}
	})
	return p
}

// write adds a service (and a route) to the group and returns the new revision.
func (e *env) write(groupID, name string) int64 {
	e.t.Helper()
	svc, _ := schema.Lookup("services")
	d, _, perr := svc.Process(schema.OpCreate, map[string]any{"name": name, "host": name + ".internal"}, nil)
	if perr != nil {
		e.t.Fatal(perr)
	}
	rev, err := e.es.Write(context.Background(), groupID, func(tx *entitystore.Tx) error { return tx.Insert(svc, d) })
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// insert adds one entity document of the named type.
func (e *env) insert(groupID, name string, in map[string]any) {
	e.t.Helper()
	ent, _ := schema.Lookup(name)
	if name == "plugins" {
		p, _ := schema.LookupPlugin(in["name"].(string))
		ent = p.Entity()
	}
	d, _, perr := ent.Process(schema.OpCreate, in, nil)
	if perr != nil {
		e.t.Fatal(perr)
	}
	if _, err := e.es.Write(context.Background(), groupID, func(tx *entitystore.Tx) error { return tx.Insert(ent, d) }); err != nil {
		e.t.Fatal(err)
	}
}

// expected returns the hash of the group's current configuration.
func (e *env) expected(groupID string) string {
	e.t.Helper()
	s, err := e.c.snaps.Build(context.Background(), groupID)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Hash
}

type resp struct {
	status int
	body   map[string]any
	raw    string
}

func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.api.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body) // not every answer is JSON; those are read from r.raw
	return r
}

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// node fetches a node through the API.
func (e *env) node(groupID, nodeID string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "/v2/runtime-groups/"+groupID+"/nodes/"+nodeID, nil)
	if r.status != http.StatusOK {
		return nil
	}
	item, _ := r.body["item"].(map[string]any)
	return item
}

// gantryClient is a minimal Gantry runtime: it speaks the extension, acks revisions and records
// what it receives.
type gantryClient struct {
	ws     *websocket.Conn
	frames chan any
	nodeID string
}

func dialGantry(t testing.TB, addr string, cert tls.Certificate, roots *x509.CertPool, nodeID string) (*gantryClient, error) {
	return dialGantryCaps(t, addr, cert, roots, nodeID, []string{wire.CapRevisions})
}

// dialGantryCaps is dialGantry announcing the given capabilities.
func dialGantryCaps(t testing.TB, addr string, cert tls.Certificate, roots *x509.CertPool, nodeID string, caps []string) (*gantryClient, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}}}
	q := wire.NodeQuery{NodeID: nodeID, Hostname: "gantry-rt", Version: "0.1.0"}.RawQuery()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+addr+wire.OutletPath+"?"+q, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.DefaultMaxPayload)
	info, _ := wire.EncodeBasicInfo(&wire.BasicInfo{Plugins: allPlugins(), Labels: map[string]string{"zone": "a"},
		Gantry: &wire.GantryHello{ProtocolVersion: wire.ProtocolVersion, Capabilities: caps}})
	if err := ws.Write(ctx, websocket.MessageBinary, info); err != nil {
		return nil, err
	}
	g := &gantryClient{ws: ws, frames: make(chan any, 64), nodeID: nodeID}
	go func() {
		defer close(g.frames)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				g.frames <- err
				return
			}
			if o, err := OrphanedFromFrame(data); err == nil {
				g.frames <- o
				continue
			}
			m, err := wire.DecodeCPFrame(data, 0)
			if err != nil {
				g.frames <- fmt.Errorf("bad frame: %w", err)
				continue
			}
			g.frames <- m
		}
	}()
	return g, nil
}

func (g *gantryClient) next(t testing.TB) any {
	t.Helper()
	select {
	case f, ok := <-g.frames:
		if !ok {
			t.Fatal("link closed")
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10 s")
	}
	return nil
}

func (g *gantryClient) send(t testing.TB, m any) {
	t.Helper()
	b, err := wire.EncodeDPFrame(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
		t.Fatal(err)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// closeReason returns the reason of the close frame that ended a link.
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}
