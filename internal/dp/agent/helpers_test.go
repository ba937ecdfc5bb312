package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/wire"
)

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, generated per test.
type pki struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips ...net.IP) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = leaf(2, "cp", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	p.client = leaf(3, "runtime", x509.ExtKeyUsageClientAuth)
	return p
}

// clientTLS is what a runtime holding p's client certificate uses.
func (p *pki) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// link is one runtime connection as the fake control plane sees it.
type link struct {
	t     *testing.T
	conn  *websocket.Conn
	query wire.NodeQuery
	info  *wire.BasicInfo
	// in receives every decoded DP data frame after basic_info, and
	// every ping as a string. The frame reader closes it when the
	// connection ends; pings arrive on another goroutine, so they are
	// delivered under inMu and only while in is open.
	in       chan any
	inMu     sync.Mutex
	inClosed bool // guarded by inMu
}

// send writes a CP->DP message as one gzip'd binary frame.
func (l *link) send(m any) {
	l.t.Helper()
	b, err := wire.EncodeCPFrame(m)
	if err != nil {
		l.t.Fatal(err)
	}
	l.sendRaw(b)
}

func (l *link) sendRaw(b []byte) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.conn.Write(ctx, websocket.MessageBinary, b); err != nil {
		l.t.Errorf("write to runtime: %v", err)
	}
}

func (l *link) sendRevision(rev int64, cfg map[string]any) string {
	l.t.Helper()
	r, err := wire.NewRevision(rev, cfg, time.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	l.send(r)
	return r.ConfigHash
}

// next returns the next data frame (skipping pings) within 5 s.
func (l *link) next() any {
	l.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-l.in:
			if !ok {
				l.t.Fatal("runtime closed the link while a frame was expected")
			}
			if _, ping := m.(string); ping {
				continue
			}
			return m
		case <-deadline:
			l.t.Fatal("no frame from the runtime within 5s")
		}
	}
}

// waitPing waits for a ping carrying hash and reports whether any data
// frame came before it.
func (l *link) waitPing(hash string) (framesBefore []any) {
	l.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-l.in:
			if !ok {
				l.t.Fatalf("link closed before a ping with %s", hash)
			}
			if p, ping := m.(string); ping {
				if p == hash {
					return framesBefore
				}
				continue
			}
			framesBefore = append(framesBefore, m)
		case <-deadline:
			l.t.Fatalf("no ping with %s within 5s", hash)
		}
	}
}

// fakeCP is an in-test control plane: a TLS server that requires client
// certificates of its CA and speaks /v1/outlet with coder/websocket. Each
// accepted link is handed to script; when script returns the link is
// closed normally.
type fakeCP struct {
	srv *httptest.Server

	mu sync.Mutex // guards connects
	// connects are the times links were accepted.
	connects []time.Time
}

func newFakeCP(t *testing.T, p *pki, script func(l *link)) *fakeCP {
	t.Helper()
	cp := &fakeCP{}
	cp.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wire.OutletPath {
			http.NotFound(w, r)
			return
		}
		q, err := wire.ParseNodeQuery(r.URL.RawQuery)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l := &link{t: t, query: q, in: make(chan any, 64)}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OnPingReceived: func(_ context.Context, p []byte) bool {
			l.inMu.Lock()
			defer l.inMu.Unlock()
			if !l.inClosed {
				select {
				case l.in <- string(p):
				default:
				}
			}
			return true
		}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		l.conn = c
		c.SetReadLimit(wire.DefaultMaxPayload)
		cp.mu.Lock()
		cp.connects = append(cp.connects, time.Now())
		cp.mu.Unlock()
		ctx := r.Context()
		typ, first, err := c.Read(ctx)
		if websocket.CloseStatus(err) == websocket.StatusGoingAway {
			// The agent stopped (the test is ending) between the upgrade and its basic_info.
			return
		}
		if err != nil || typ != websocket.MessageBinary {
			t.Errorf("first frame: %v %v", typ, err)
			return
		}
		if l.info, err = wire.DecodeBasicInfo(first); err != nil {
			t.Errorf("basic_info: %v", err)
			return
		}
		go func() {
			defer func() {
				l.inMu.Lock()
				l.inClosed = true
				close(l.in)
				l.inMu.Unlock()
			}()
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				m, err := wire.DecodeDPFrame(b, 0)
				if err != nil {
					t.Errorf("runtime sent an undecodable frame: %v", err)
					return
				}
				l.in <- m
			}
		}()
		script(l)
		c.Close(websocket.StatusNormalClosure, "")
	}))
	cp.srv.TLS = p.serverTLS()
	cp.srv.StartTLS()
	t.Cleanup(cp.srv.Close)
	return cp
}

func (cp *fakeCP) addr() string { return strings.TrimPrefix(cp.srv.URL, "https://") }

func (cp *fakeCP) connectTimes() []time.Time {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]time.Time(nil), cp.connects...)
}

// fakeGateway is an Applier that rejects any configuration holding a
// "bad" key, reporting one entity error per element of it.
type fakeGateway struct {
	mu      sync.Mutex // guards the fields below
	hash    string
	loaded  bool
	applied []string // every hash Apply was called with, in order
}

func (g *fakeGateway) Apply(_ context.Context, cfg map[string]any, hash string) ([]wire.EntityError, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.applied = append(g.applied, hash)
	if bad, ok := cfg["bad"].([]any); ok {
		var errs []wire.EntityError
		for _, b := range bad {
			errs = append(errs, wire.EntityError{EntityType: "routes", EntityID: fmt.Sprint(b), Field: "paths", Message: "invalid regex"})
		}
		return errs, errors.New("configuration has invalid entities")
	}
	g.hash, g.loaded = hash, true
	return nil, nil
}

func (g *fakeGateway) Current() (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hash, g.loaded
}

func (g *fakeGateway) applies() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.applied...)
}

// testConfig returns a small valid configuration; n makes it distinct.
func testConfig(n int) map[string]any {
	return map[string]any{
		"_format_version": "3.0",
		"services": []any{map[string]any{"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", n), "name": fmt.Sprintf("svc-%d", n),
			"host": "127.0.0.1", "port": json.Number("8080")}},
	}
}

func badConfig(ids ...string) map[string]any {
	c := testConfig(999)
	var bad []any
	for _, id := range ids {
		bad = append(bad, id)
	}
	c["bad"] = bad
	return c
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgent runs an agent with fast timings until the test ends.
func startAgent(t *testing.T, opts Options) (*Agent, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.NodeID == "" {
		opts.NodeID = "5b6f8e0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
	}
	if opts.Hostname == "" {
		opts.Hostname = "runtime-1"
	}
	if opts.Version == "" {
		opts.Version = "3.9.1"
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Second
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	})
	return a, logs
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *pki) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
}

// clientTLSTo presents p's client certificate to a server of roots.
func (p *pki) clientTLSTo(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{p.client}, ServerName: "127.0.0.1"}
}

// hold keeps the link open until the runtime closes it (at the end of the
// test) or 10 s pass, discarding what arrives.
func (l *link) hold() {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-l.in:
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}
