package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// rawUpstream is a loopback TCP server whose connections are handled by
// fn, counting accepted connections, for wire-level upstream behaviour
// net/http's server would not produce.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newRawUpstream(t testing.TB, fn func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

// readHead reads one request head and returns it (without body).
func readHead(br *bufio.Reader) (*http.Request, error) {
	return http.ReadRequest(br)
}

// fixedResponder answers every request on a connection with resp.
func fixedResponder(resp string) func(c net.Conn, br *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := readHead(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

const okResp = "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
	"0123456789012345678901234567890123456789012345678901234567890123"

func serviceFor(t testing.TB, addr string) *Service {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	s := &Service{Name: "s", Host: host, Port: pn, Retries: 2}
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	return s
}

type testEnv struct {
	p      *Proxy
	tr     *h1client.Transport
	url    string       // http://addr
	addr   string       // the proxy's listener address
	client *http.Client // keep-alive client for the server
}

// serverKind selects the server in front of the proxy: the same tests run
// against net/http's server and against Proxy.Serve.
type serverKind string

const (
	netHTTP serverKind = "net-http"
	ownLoop serverKind = "serve"
)

var serverKinds = []serverKind{netHTTP, ownLoop}

// bothServers runs fn once per server kind.
func bothServers(t *testing.T, fn func(t *testing.T, sk serverKind)) {
	for _, sk := range serverKinds {
		t.Run(string(sk), func(t *testing.T) { fn(t, sk) })
	}
}

// newEnv starts the proxy behind a real server of kind sk on loopback.
func newEnv(t testing.TB, sk serverKind, cfg *Config, topts h1client.Options) *testEnv {
	return newEnvOpts(t, sk, Options{Config: cfg}, topts)
}

// newEnvOpts is newEnv with proxy options (Transport is filled in).
func newEnvOpts(t testing.TB, sk serverKind, opts Options, topts h1client.Options) *testEnv {
	t.Helper()
	tr, err := h1client.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Transport = tr
	if opts.HTTPPort == "" {
		opts.HTTPPort = "8000"
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{p: p, tr: tr}
	switch sk {
	case netHTTP:
		srv := httptest.NewServer(p)
		t.Cleanup(func() { srv.Close(); tr.Close() })
		env.addr, env.client = srv.Listener.Addr().String(), srv.Client()
	default:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Serve(ln) }()
		client := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(func() {
			client.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
			tr.Close()
		})
		env.addr, env.client = ln.Addr().String(), client
	}
	env.url = "http://" + env.addr
	return env
}

func staticCfg(s *Service) *Config { return &Config{Resolver: StaticResolver{Service: s}} }

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			continue
		}
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return do(t, http.DefaultClient, req)
}

// captureUpstream is an httptest upstream that records the last request's
// headers and host.
type captureUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
	host string
	uri  string
	body []byte
}

func newCapture(t testing.TB) *captureUpstream {
	cu := &captureUpstream{}
	cu.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		cu.mu.Lock()
		cu.last, cu.host, cu.uri, cu.body = r.Header.Clone(), r.Host, r.RequestURI, b
		cu.mu.Unlock()
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Drop-Me", "1")
		w.Header().Set("Connection", "X-Drop-Me")
		w.Header().Set("X-Up", "yes")
		_, _ = w.Write(bytes.Repeat([]byte("a"), 10))
	}))
	t.Cleanup(cu.Close)
	return cu
}

func (cu *captureUpstream) addr() string { return cu.Listener.Addr().String() }

// refusedAddr returns an address where nothing listens, so a dial is
// refused. It is on 127.0.0.2, where no listener of these tests is: a port
// freed on 127.0.0.1 may be handed to the next test listener (the proxy
// itself), and a "refused" upstream would then be the proxy, looping.
func refusedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}
