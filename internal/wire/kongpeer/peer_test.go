package kongpeer

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
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gantry-gw/gantry/internal/wire"
)

const testNodeID = "0b5d1f8e-3c1a-4d8e-9b61-4f2a7c9e5d10"

// testPKI is a CA with a server certificate for 127.0.0.1/localhost and a
// client certificate, as in Kong's pki mode.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost", "cp.test"},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:   pool,
		server: leaf(2, "cp.test", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "dp-1", x509.ExtKeyUsageClientAuth),
	}
}

// action is one thing the test control plane does on a link.
type action func(ctx context.Context, c *websocket.Conn) error

// testCP is a minimal control plane: it checks the client certificate and
// the query, reads basic_info, then performs the actions the test sends,
// recording what the data plane sends back.
type testCP struct {
	srv      *httptest.Server
	infos    chan *wire.BasicInfo
	pings    chan string
	dpFrames chan any
	linkErr  chan error
	actions  chan action
	stop     chan struct{}
}

func startCP(t *testing.T, pki *testPKI, pong bool) *testCP {
	t.Helper()
	cp := &testCP{
		infos:    make(chan *wire.BasicInfo, 4),
		pings:    make(chan string, 256),
		dpFrames: make(chan any, 16),
		linkErr:  make(chan error, 4),
		actions:  make(chan action, 16),
		stop:     make(chan struct{}),
	}
	cp.srv = httptest.NewUnstartedServer(cp.serve(t, pong))
	cp.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	}
	// Refused handshakes are the point of some tests; keep them out of the log.
	cp.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	cp.srv.StartTLS()
	t.Cleanup(func() {
		close(cp.stop)
		cp.srv.Close()
	})
	return cp
}

func (cp *testCP) serve(t *testing.T, pong bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wire.OutletPath {
			http.NotFound(w, r)
			return
		}
		if _, err := wire.ParseNodeQuery(r.URL.RawQuery); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			OnPingReceived: func(_ context.Context, p []byte) bool {
				select {
				case cp.pings <- string(p):
				default:
				}
				return pong
			},
		})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		typ, data, err := c.Read(ctx)
		if err != nil {
			cp.linkErr <- err
			return
		}
		if typ != websocket.MessageBinary {
			t.Errorf("basic_info came as %v", typ)
		}
		info, err := wire.DecodeBasicInfo(data)
		if err != nil {
			t.Errorf("basic_info: %v", err)
			return
		}
		cp.infos <- info

		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					cp.linkErr <- err
					return
				}
				m, err := wire.DecodeDPFrame(data, 0)
				if err != nil {
					t.Errorf("DP frame %q: %v", data, err)
					continue
				}
				cp.dpFrames <- m
			}
		}()
		for {
			select {
			case <-readDone:
				return
			case <-cp.stop:
				return
			case a := <-cp.actions:
				if err := a(ctx, c); err != nil {
					t.Logf("action: %v", err)
				}
			}
		}
	}
}

func (cp *testCP) address() string { return cp.srv.Listener.Addr().String() }

func sendBinary(frame []byte) action {
	return func(ctx context.Context, c *websocket.Conn) error {
		return c.Write(ctx, websocket.MessageBinary, frame)
	}
}

func newTestPeer(t *testing.T, pki *testPKI, cp *testCP, mod func(*Options)) *Peer {
	t.Helper()
	opts := Options{
		Address:      cp.address(),
		ServerName:   "cp.test",
		RootCAs:      pki.pool,
		Certificate:  pki.client,
		NodeID:       testNodeID,
		Hostname:     "dp-1",
		Version:      "3.10.0",
		Plugins:      []wire.PluginInfo{{Name: "rate-limiting", Version: "3.10.0"}, {Name: "ACL", Version: "3.10.0"}, {Name: "key-auth", Version: "3.10.0"}},
		Labels:       map[string]string{"region": "eu"},
		PingInterval: time.Hour, // tests that need periodic pings lower it
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// runPeer runs p in the background and returns a channel with Run's result.
func runPeer(t *testing.T, p *Peer) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return done
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitPing waits for a ping from the peer carrying want.
func waitPing(t *testing.T, cp *testCP, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-cp.pings:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no ping with payload %s", want)
		}
	}
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testConfig() map[string]any {
	return map[string]any{
		"_format_version": "3.0",
		"_transform":      false,
		"services":        []any{map[string]any{"id": "s1", "name": "web", "host": "example.com", "port": 443, "path": nil}},
		"routes":          []any{map[string]any{"id": "r1", "service": "s1", "paths": []any{"/web"}}},
		"plugins":         []any{map[string]any{"id": "p1", "name": "key-auth", "config": map[string]any{"key_names": []any{"apikey"}}}},
	}
}

func reconfigureFrame(t *testing.T, cfg map[string]any, mutate func(*wire.Reconfigure)) ([]byte, *wire.Reconfigure) {
	t.Helper()
	r, err := wire.NewReconfigure(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(r)
	}
	frame, err := wire.EncodeReconfigure(r)
	if err != nil {
		t.Fatal(err)
	}
	return frame, r
}

func TestReconfigureApplied(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	done := runPeer(t, p)

	info := recv(t, cp.infos, "basic_info")
	var names []string
	for _, pl := range info.Plugins {
		names = append(names, pl.Name)
	}
	if strings.Join(names, ",") != "ACL,key-auth,rate-limiting" || info.Labels["region"] != "eu" || info.Filters == nil {
		t.Errorf("basic_info %+v", info)
	}
	// The first ping goes out before any configuration: 32 zeros.
	waitPing(t, cp, wire.EmptyConfigHash)

	frame, r := reconfigureFrame(t, testConfig(), nil)
	cp.actions <- sendBinary(frame)
	ctx := waitCtx(t)
	if err := p.Wait(ctx, func() bool { return len(p.Applied()) == 1 }); err != nil {
		t.Fatal(err)
	}
	a := p.Applied()[0]
	if a.Err != nil || !a.HashMatches || a.NoOp || a.ConfigHash != r.ConfigHash || a.ComputedHash != r.ConfigHash {
		t.Fatalf("applied %+v, want hash %s", a, r.ConfigHash)
	}
	if p.ConfigHash() != r.ConfigHash {
		t.Errorf("peer hash %s, want %s", p.ConfigHash(), r.ConfigHash)
	}
	if svc, _ := p.Config()["services"].([]any); len(svc) != 1 {
		t.Errorf("config %v", p.Config())
	}
	// Right after applying, the peer pings with its new hash.
	waitPing(t, cp, r.ConfigHash)

	// The same configuration again is a no-op that still pings.
	pings := p.PingsSent()
	cp.actions <- sendBinary(frame)
	if err := p.Wait(ctx, func() bool { return len(p.Applied()) == 2 && p.PingsSent() > pings }); err != nil {
		t.Fatal(err)
	}
	if a := p.Applied()[1]; !a.NoOp || a.Err != nil {
		t.Errorf("second apply %+v, want a no-op", a)
	}
	// The peer sends only its basic_info as a data frame (no acks: Kong
	// has none), and never pongs.
	if got := len(p.FramesOf(Sent, OpBinary)); got != 1 {
		t.Errorf("peer sent %d binary frames, want 1", got)
	}
	select {
	case m := <-cp.dpFrames:
		t.Errorf("unexpected DP frame %+v", m)
	default:
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "Run to return"); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("Run returned %v, want ErrPeerClosed", err)
	}
	// A clean close: the CP sees a close frame, not a dropped socket.
	if err := recv(t, cp.linkErr, "link end"); websocket.CloseStatus(err) == -1 {
		t.Errorf("CP read error %v, want a close frame", err)
	}
}

// TestHashMismatchRecorded: Kong's DP stores the CP's config_hash without
// checking it; the peer does the same but records the mismatch.
func TestHashMismatchRecorded(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	runPeer(t, p)
	recv(t, cp.infos, "basic_info")

	bogus := strings.Repeat("f", 32)
	frame, r := reconfigureFrame(t, testConfig(), func(r *wire.Reconfigure) { r.ConfigHash = bogus })
	cp.actions <- sendBinary(frame)
	if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) == 1 }); err != nil {
		t.Fatal(err)
	}
	a := p.Applied()[0]
	if a.HashMatches || a.ConfigHash != bogus || a.ComputedHash != r.Hashes.Config {
		t.Errorf("applied %+v", a)
	}
	waitPing(t, cp, bogus)
}

// TestMissingConfigHash: without config_hash, the DP uses its own.
func TestMissingConfigHash(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	runPeer(t, p)
	recv(t, cp.infos, "basic_info")

	frame, r := reconfigureFrame(t, testConfig(), func(r *wire.Reconfigure) { r.ConfigHash = "" })
	cp.actions <- sendBinary(frame)
	if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) == 1 }); err != nil {
		t.Fatal(err)
	}
	if a := p.Applied()[0]; a.ConfigHash != r.Hashes.Config || a.HashMatches {
		t.Errorf("applied %+v, want stored hash %s", a, r.Hashes.Config)
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	good, _ := reconfigureFrame(t, testConfig(), nil)
	plain, err := json.Marshal(map[string]any{"type": "reconfigure", "config_table": testConfig()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		act  action
		want string
	}{
		{"plain JSON instead of gzip", sendBinary(plain), "not gzip"},
		{"gzip of non-JSON", sendBinary(gzipBytes(t, "<config/>")), "not a JSON object"},
		{"truncated gzip", sendBinary(good[:len(good)/2]), "protocol error"},
		{"fragmented message", func(ctx context.Context, c *websocket.Conn) error {
			w, err := c.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				return err
			}
			if _, err := w.Write(good[:10]); err != nil {
				return err
			}
			if _, err := w.Write(good[10:]); err != nil {
				return err
			}
			return w.Close()
		}, "fragmented binary message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startCP(t, pki, true)
			p := newTestPeer(t, pki, cp, nil)
			done := runPeer(t, p)
			recv(t, cp.infos, "basic_info")
			cp.actions <- tt.act

			err := recv(t, done, "Run to return")
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run returned %v, want a protocol error about %q", err, tt.want)
			}
			if errs := p.ProtocolErrors(); len(errs) != 1 {
				t.Errorf("protocol errors %v, want 1", errs)
			}
			if ci := p.CloseInfo(); ci == nil || ci.FromCP || !errors.Is(ci.Err, ErrProtocol) {
				t.Errorf("close info %+v", ci)
			}
			if len(p.Applied()) != 0 || p.ConfigHash() != wire.EmptyConfigHash {
				t.Errorf("applied %+v after a bad frame", p.Applied())
			}
			// The peer tears the link down.
			_ = recv(t, cp.linkErr, "link end")
		})
	}
}

// TestIgnoredFrames: Kong's DP ignores text frames and unknown message
// types and keeps the link.
func TestIgnoredFrames(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	runPeer(t, p)
	recv(t, cp.infos, "basic_info")

	cp.actions <- func(ctx context.Context, c *websocket.Conn) error {
		return c.Write(ctx, websocket.MessageText, []byte(`{"type":"reconfigure"}`))
	}
	cp.actions <- sendBinary(gzipBytes(t, `{"type":"something_new","x":1}`))
	hello, err := wire.EncodeCPFrame(&wire.Hello{ProtocolVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	cp.actions <- sendBinary(hello)
	frame, r := reconfigureFrame(t, testConfig(), nil)
	cp.actions <- sendBinary(frame)

	if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) == 1 }); err != nil {
		t.Fatal(err)
	}
	if p.ConfigHash() != r.ConfigHash || len(p.ProtocolErrors()) != 0 {
		t.Errorf("hash %s, protocol errors %v", p.ConfigHash(), p.ProtocolErrors())
	}
	if got := len(p.FramesOf(Received, OpText)); got != 1 {
		t.Errorf("recorded %d text frames, want 1", got)
	}
}

func TestKonnectModeErrorFrame(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	tests := []struct {
		name    string
		konnect bool
	}{
		{"konnect mode reports", true},
		{"oss mode stays silent", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startCP(t, pki, true)
			p := newTestPeer(t, pki, cp, func(o *Options) {
				o.KonnectMode = tt.konnect
				o.Validate = func(cfg map[string]any) error {
					if _, ok := cfg["routes"]; ok {
						return errors.New("routes are not allowed here")
					}
					return nil
				}
			})
			runPeer(t, p)
			recv(t, cp.infos, "basic_info")
			frame, r := reconfigureFrame(t, testConfig(), nil)
			cp.actions <- sendBinary(frame)
			if err := p.Wait(waitCtx(t), func() bool { return len(p.Applied()) == 1 }); err != nil {
				t.Fatal(err)
			}
			if a := p.Applied()[0]; a.Err == nil || p.ConfigHash() != wire.EmptyConfigHash || p.Config() != nil {
				t.Errorf("applied %+v, hash %s: a failed apply must keep the old state", a, p.ConfigHash())
			}
			if !tt.konnect {
				// Give a wrongly sent frame time to arrive.
				select {
				case m := <-cp.dpFrames:
					t.Errorf("OSS mode sent %+v", m)
				case <-time.After(100 * time.Millisecond):
				}
				return
			}
			m := recv(t, cp.dpFrames, "error frame")
			ef, ok := m.(*wire.ErrorFrame)
			if !ok || ef.Error.Name != wire.ErrorNameConfigParse || ef.Error.ConfigHash != r.ConfigHash ||
				!strings.Contains(ef.Error.Message, "routes are not allowed") {
				t.Errorf("CP got %+v", m)
			}
		})
	}
}

func TestCPCloses(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	done := runPeer(t, p)
	recv(t, cp.infos, "basic_info")
	cp.actions <- func(ctx context.Context, c *websocket.Conn) error {
		return c.Close(websocket.StatusPolicyViolation, "kong_version_incompatible")
	}
	if err := recv(t, done, "Run to return"); !errors.Is(err, ErrClosedByCP) {
		t.Fatalf("Run returned %v", err)
	}
	ci := p.CloseInfo()
	if ci == nil || !ci.FromCP || ci.Code != int(websocket.StatusPolicyViolation) || ci.Reason != "kong_version_incompatible" {
		t.Errorf("close info %+v", ci)
	}
}

// TestSilentCP: with no pongs and no frames, the peer drops the link
// after PingWait.
func TestSilentCP(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, false)
	p := newTestPeer(t, pki, cp, func(o *Options) { o.PingWait = 300 * time.Millisecond })
	start := time.Now()
	done := runPeer(t, p)
	err := recv(t, done, "Run to return")
	if !errors.Is(err, ErrSilent) {
		t.Fatalf("Run returned %v, want ErrSilent", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("dropped after %v, before PingWait", d)
	}
}

// TestPeriodicPings: pings repeat every PingInterval.
func TestPeriodicPings(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, func(o *Options) { o.PingInterval = 40 * time.Millisecond })
	runPeer(t, p)
	for range 4 {
		if got := recv(t, cp.pings, "ping"); got != wire.EmptyConfigHash {
			t.Fatalf("ping payload %q", got)
		}
	}
}

// TestCPPingNotAnswered: Kong's DP never pongs the CP's pings.
func TestCPPingNotAnswered(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cp := startCP(t, pki, true)
	p := newTestPeer(t, pki, cp, nil)
	runPeer(t, p)
	recv(t, cp.infos, "basic_info")
	pingErr := make(chan error, 1)
	cp.actions <- func(ctx context.Context, c *websocket.Conn) error {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		err := c.Ping(ctx)
		pingErr <- err
		return err
	}
	if err := recv(t, pingErr, "CP ping"); err == nil {
		t.Error("the CP's ping was answered")
	}
	if len(p.FramesOf(Received, OpPing)) != 1 || len(p.FramesOf(Sent, OpPong)) != 0 {
		t.Errorf("frames %+v", p.Frames())
	}
}

func TestHandshakeRefused(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"node_id not a uuid", func(o *Options) { o.NodeID = "dp-1" }},
		{"no node_version", func(o *Options) { o.OmitVersion = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startCP(t, pki, true)
			p := newTestPeer(t, pki, cp, tt.mod)
			err := p.Connect(waitCtx(t))
			var he *HandshakeError
			if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
				t.Fatalf("Connect returned %v, want HTTP 400", err)
			}
		})
	}
}

func TestTLSFailures(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	other := newPKI(t)
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		// The CP does not trust the client certificate's CA.
		{"untrusted client certificate", func(o *Options) { o.Certificate = other.client }},
		// The peer does not trust the CP's CA.
		{"untrusted server CA", func(o *Options) { o.RootCAs = other.pool }},
		// SNI and verification use ServerName.
		{"wrong server name", func(o *Options) { o.ServerName = "elsewhere.test" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startCP(t, pki, true)
			p := newTestPeer(t, pki, cp, tt.mod)
			if err := p.Run(waitCtx(t)); err == nil {
				t.Fatal("Run succeeded")
			}
			select {
			case info := <-cp.infos:
				t.Errorf("CP got basic_info %+v", info)
			default:
			}
		})
	}
}

func TestNewChecksOptions(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	valid := Options{Address: "127.0.0.1:8005", RootCAs: pki.pool, Certificate: pki.client, NodeID: testNodeID}
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"no address", func(o *Options) { o.Address = "" }},
		{"address without port", func(o *Options) { o.Address = "127.0.0.1" }},
		{"no CA", func(o *Options) { o.RootCAs = nil }},
		{"no certificate", func(o *Options) { o.Certificate = tls.Certificate{} }},
		{"no node id", func(o *Options) { o.NodeID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := valid
			tt.mod(&o)
			if _, err := New(o); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	p, err := New(valid)
	if err != nil {
		t.Fatal(err)
	}
	if p.opts.ServerName != "127.0.0.1" || p.opts.PingInterval != DefaultPingInterval || p.opts.PingWait != 45*time.Second ||
		p.opts.Version != DefaultVersion || p.opts.MaxPayload != wire.DefaultMaxPayload {
		t.Errorf("defaults %+v", p.opts)
	}
}

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := wire.EncodeGzipJSON(json.RawMessage(s))
	if err == nil {
		return b
	}
	// Not JSON: compress the raw bytes.
	return rawGzip(t, s)
}
