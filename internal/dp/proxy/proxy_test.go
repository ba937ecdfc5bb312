package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

func TestUpstreamRequestHeaders(t *testing.T) { bothServers(t, testUpstreamRequestHeaders) }

func testUpstreamRequestHeaders(t *testing.T, sk serverKind) {
	cu := newCapture(t)
	svc := serviceFor(t, cu.addr())
	tests := []struct {
		name     string
		trusted  []netip.Prefix
		match    Match
		hdr      []string
		want     map[string]string // header -> exact value ("" = absent)
		wantHost string
		wantURI  string
	}{
		{
			name:     "untrusted client: forwarded values replaced, XFF appended",
			hdr:      []string{"Host", "Example.COM:8000", "X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil", "X-Forwarded-Port", "1", "X-Forwarded-Path", "/evil", "X-Forwarded-Prefix", "/evil"},
			want:     map[string]string{"X-Forwarded-For": "1.2.3.4, 127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "example.com", "X-Forwarded-Port": "8000", "X-Forwarded-Path": "/a/b", "X-Forwarded-Prefix": "", "X-Real-Ip": "127.0.0.1", "Via": "1.1 gantry"},
			wantHost: svc.hostHeader,
			wantURI:  "/a/b?q=1",
		},
		{
			name:     "trusted client: forwarded values kept",
			trusted:  []netip.Prefix{mustPrefix("127.0.0.0/8")},
			hdr:      []string{"X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "api.example", "X-Forwarded-Port", "443", "X-Forwarded-Path", "/orig", "X-Forwarded-Prefix", "/pre"},
			want:     map[string]string{"X-Forwarded-For": "1.2.3.4, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example", "X-Forwarded-Port": "443", "X-Forwarded-Path": "/orig", "X-Forwarded-Prefix": "/pre"},
			wantHost: svc.hostHeader,
			wantURI:  "/a/b?q=1",
		},
		{
			name:     "trust list not matching the client",
			trusted:  []netip.Prefix{mustPrefix("10.0.0.0/8")},
			hdr:      []string{"X-Forwarded-Proto", "https"},
			want:     map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-For": "127.0.0.1"},
			wantHost: svc.hostHeader,
			wantURI:  "/a/b?q=1",
		},
		{
			name:     "preserve_host, rewritten path and prefix",
			match:    Match{PreserveHost: true, Path: "/svc/b", Prefix: "/a"},
			hdr:      []string{"Host", "client.example", "Via", "1.0 other"},
			want:     map[string]string{"X-Forwarded-Prefix": "/a", "Via": "1.0 other, 1.1 gantry", "X-Forwarded-Path": "/a/b"},
			wantHost: "client.example",
			wantURI:  "/svc/b?q=1",
		},
		{
			name:     "hop-by-hop and Connection-named headers removed",
			hdr:      []string{"Connection", "X-Secret, keep-alive", "X-Secret", "s", "Keep-Alive", "timeout=5", "Te", "trailers", "Proxy-Authorization", "x", "Upgrade", "h2c", "X-Keep", "k"},
			want:     map[string]string{"X-Secret": "", "Keep-Alive": "", "Te": "", "Proxy-Authorization": "", "Upgrade": "", "X-Keep": "k", "Connection": "keep-alive"},
			wantHost: svc.hostHeader,
			wantURI:  "/a/b?q=1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.match
			cfg := &Config{Resolver: resolverFunc(func(r *http.Request, out *Match) { *out = m; out.Service = svc }), TrustedIPs: tt.trusted}
			env := newEnv(t, sk, cfg, h1client.Options{})
			resp, _ := get(t, env.url+"/a/b?q=1", tt.hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			cu.mu.Lock()
			defer cu.mu.Unlock()
			for k, v := range tt.want {
				if got := strings.Join(cu.last.Values(k), ","); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if cu.host != tt.wantHost {
				t.Errorf("Host = %q, want %q", cu.host, tt.wantHost)
			}
			if cu.uri != tt.wantURI {
				t.Errorf("URI = %q, want %q", cu.uri, tt.wantURI)
			}
			id := cu.last.Get("X-Gantry-Request-Id")
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || resp.Header.Get("X-Gantry-Request-Id") != id {
				t.Errorf("request id upstream %q, downstream %q", id, resp.Header.Get("X-Gantry-Request-Id"))
			}
		})
	}
}

type resolverFunc func(*http.Request, *Match)

func (f resolverFunc) Resolve(r *http.Request, m *Match) { f(r, m) }

func TestResponseHeaders(t *testing.T) { bothServers(t, testResponseHeaders) }

func testResponseHeaders(t *testing.T, sk serverKind) {
	cu := newCapture(t)
	svc := serviceFor(t, cu.addr())
	for _, kong := range []bool{false, true} {
		t.Run(fmt.Sprint("kong=", kong), func(t *testing.T) {
			cfg := staticCfg(svc)
			cfg.KongHeaders = kong
			env := newEnv(t, sk, cfg, h1client.Options{})
			resp, body := get(t, env.url+"/")
			if string(body) != "aaaaaaaaaa" {
				t.Fatalf("body %q", body)
			}
			prefix := "X-Gantry-"
			if kong {
				prefix = "X-Kong-"
			}
			for _, h := range []string{"Upstream-Latency", "Proxy-Latency"} {
				if v := resp.Header.Get(prefix + h); !regexp.MustCompile(`^\d+$`).MatchString(v) {
					t.Errorf("%s%s = %q", prefix, h, v)
				}
			}
			if resp.Header.Get(prefix+"Request-Id") == "" {
				t.Errorf("missing %sRequest-Id", prefix)
			}
			if got := resp.Header.Get("Via"); got != "1.1 gantry" {
				t.Errorf("Via = %q", got)
			}
			if resp.Header.Get("X-Up") != "yes" || resp.Header.Get("X-Drop-Me") != "" || resp.Header.Get("Keep-Alive") != "" {
				t.Errorf("end-to-end/hop-by-hop response headers wrong: %v", resp.Header)
			}
		})
	}
}

func TestBodiesStreamBothWays(t *testing.T) { bothServers(t, testBodiesStreamBothWays) }

func testBodiesStreamBothWays(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := readHead(br)
			if err != nil {
				return
			}
			h := sha256.New()
			n, _ := io.Copy(h, req.Body)
			sum := fmt.Sprintf("%x", h.Sum(nil))
			size := req.URL.Query().Get("size")
			var sz int
			_, _ = fmt.Sscan(size, &sz)
			bw := bufio.NewWriter(c)
			_, _ = fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nX-Got: %d\r\nX-Sum: %s\r\nX-Te: %s\r\n", n, sum, strings.Join(req.TransferEncoding, ","))
			pat := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			if req.URL.Query().Get("chunked") == "1" {
				bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
				all := bytes.Repeat(pat, sz/len(pat)+1)[:sz]
				for len(all) > 0 {
					k := min(len(all), 7777)
					_, _ = fmt.Fprintf(bw, "%x;ext=1\r\n", k)
					bw.Write(all[:k])
					bw.WriteString("\r\n")
					all = all[k:]
				}
				bw.WriteString("0\r\nX-Trailer: t\r\n\r\n")
			} else {
				_, _ = fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", sz)
				for left := sz; left > 0; {
					k := min(left, len(pat))
					bw.Write(pat[:k])
					left -= k
				}
			}
			if bw.Flush() != nil {
				return
			}
		}
	})
	env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
	tests := []struct {
		name    string
		reqSize int
		chunkUp bool // client sends chunked
		respSz  int
		chunked bool // upstream answers chunked
	}{
		{"small fixed", 10, false, 64, false},
		{"large fixed both ways", 3 << 20, false, 5 << 20, false},
		{"chunked request, chunked response", 2<<20 + 3, true, 3<<20 + 1, true},
		{"empty chunked response", 0, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("xyz"), tt.reqSize/3+1)[:tt.reqSize]
			var body io.Reader = bytes.NewReader(payload)
			if tt.chunkUp {
				body = io.MultiReader(body) // hides the length: client sends chunked.
			}
			url := fmt.Sprintf("%s/?size=%d&chunked=%d", env.url, tt.respSz, map[bool]int{false: 0, true: 1}[tt.chunked])
			req, _ := http.NewRequest("POST", url, body)
			resp, got := do(t, http.DefaultClient, req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.Header.Get("X-Got") != fmt.Sprint(tt.reqSize) || resp.Header.Get("X-Sum") != fmt.Sprintf("%x", sha256.Sum256(payload)) {
				t.Errorf("upstream got %s bytes sum %s", resp.Header.Get("X-Got"), resp.Header.Get("X-Sum"))
			}
			if tt.chunkUp != (resp.Header.Get("X-Te") == "chunked") {
				t.Errorf("upstream transfer-encoding %q", resp.Header.Get("X-Te"))
			}
			want := bytes.Repeat([]byte("0123456789abcdef"), tt.respSz/16+1)[:tt.respSz]
			if wantCL := int64(tt.respSz); tt.chunked {
				if resp.ContentLength != -1 && !(tt.respSz == 0 && resp.ContentLength == 0) {
					t.Errorf("chunked upstream: client Content-Length %d", resp.ContentLength)
				}
			} else if resp.ContentLength != wantCL {
				t.Errorf("client Content-Length %d, want %d", resp.ContentLength, wantCL)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response body: %d bytes, want %d (equal=%v)", len(got), len(want), bytes.Equal(got, want))
			}
		})
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("upstream connections = %d, want 1 (keep-alive across bodies)", n)
	}
}

func TestKeepAliveAndConnectionRules(t *testing.T) { bothServers(t, testKeepAliveAndConnectionRules) }

func testKeepAliveAndConnectionRules(t *testing.T, sk serverKind) {
	tests := []struct {
		name      string
		resp      string
		method    string
		wantConns int64
		wantBody  string
	}{
		{"keep-alive reused", okResp, "GET", 1, okResp[len(okResp)-64:]},
		{"Connection: close not reused", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", "GET", 5, "hi"},
		{"HTTP/1.0 not reused", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", "GET", 5, "hi"},
		{"HEAD has no body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", 1, ""},
		{"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", "GET", 1, ""},
		{"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n", "GET", 1, ""},
		{"1xx skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", 1, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				for {
					req, err := readHead(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, tt.resp); err != nil {
						return
					}
					if strings.Contains(tt.resp, "close") || strings.HasPrefix(tt.resp, "HTTP/1.0") {
						return
					}
				}
			})
			env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
			for i := 0; i < 5; i++ {
				req, _ := http.NewRequest(tt.method, env.url+"/", nil)
				resp, body := do(t, env.client, req)
				if resp.StatusCode >= 500 || string(body) != tt.wantBody {
					t.Fatalf("request %d: status %d body %q", i, resp.StatusCode, body)
				}
				if tt.method == "HEAD" && resp.ContentLength != 10 {
					t.Errorf("HEAD Content-Length %d, want 10 relayed", resp.ContentLength)
				}
			}
			if n := up.conns.Load(); n != tt.wantConns {
				t.Errorf("upstream connections = %d, want %d", n, tt.wantConns)
			}
		})
	}
}

func TestUntilCloseBody(t *testing.T) { bothServers(t, testUntilCloseBody) }

func testUntilCloseBody(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nstreamed until close")
	})
	env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
	for i := 0; i < 2; i++ {
		resp, body := get(t, env.url+"/")
		if resp.StatusCode != 200 || string(body) != "streamed until close" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2 (until-close bodies cannot be reused)", n)
	}
}

func TestStaleConnectionRetry(t *testing.T) { bothServers(t, testStaleConnectionRetry) }

func testStaleConnectionRetry(t *testing.T, sk serverKind) {
	// The upstream answers one request per connection but claims keep-alive,
	// then closes: the pooled connection is stale for the next request.
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := readHead(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, okResp)
	})
	env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
	for i, method := range []string{"GET", "GET", "POST", "DELETE"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("payload")
		}
		req, _ := http.NewRequest(method, env.url+"/", body)
		resp, _ := do(t, env.client, req)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d (%s): status %d", i, method, resp.StatusCode)
		}
		// Let the upstream's close reach the pooled socket.
		time.Sleep(20 * time.Millisecond)
	}
	if n := up.conns.Load(); n != 4 {
		t.Errorf("connections = %d, want 4", n)
	}
}

func TestUpstreamFailures(t *testing.T) { bothServers(t, testUpstreamFailures) }

func testUpstreamFailures(t *testing.T, sk serverKind) {
	slow := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = readHead(br)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(c, okResp)
	})
	garbage := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = readHead(br)
		_, _ = io.WriteString(c, "SMTP ready\r\n\r\n")
	})
	closed := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) { _, _ = readHead(br) })
	refusedAddr := refusedAddr(t)

	dialBlock := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	dialDNS := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}
	}
	var dials atomic.Int32
	dialCount := func(ctx context.Context, n, a string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}
	tests := []struct {
		name   string
		addr   string
		dial   func(context.Context, string, string) (net.Conn, error)
		bal    Balancer
		status int
		msg    string
		dials  int
	}{
		{"read timeout", slow.addr(), nil, nil, 504, MsgTimeout, 0},
		{"malformed response", garbage.addr(), nil, nil, 502, MsgBadGateway, 0},
		{"closed without response", closed.addr(), nil, nil, 502, MsgBadGateway, 0},
		{"connection refused after retries", refusedAddr, dialCount, nil, 502, MsgBadGateway, 3},
		{"connect timeout", refusedAddr, dialBlock, nil, 504, MsgTimeout, 0},
		{"name resolution", refusedAddr, dialDNS, nil, 503, MsgNameFailed, 0},
		{"no peer", refusedAddr, nil, staticBalancer{err: fmt.Errorf("upstream u: %w", ErrNoPeer)}, 503, MsgNoPeer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := serviceFor(t, tt.addr)
			svc.ReadTimeout = 50 * time.Millisecond
			svc.ConnectTimeout = 50 * time.Millisecond
			svc.Balancer = tt.bal
			dials.Store(0)
			env := newEnv(t, sk, staticCfg(svc), h1client.Options{Dial: tt.dial})
			resp, body := get(t, env.url+"/")
			id := resp.Header.Get("X-Gantry-Request-Id")
			want := fmt.Sprintf("{\n  \"message\":%q,\n  \"request_id\":%q\n}", tt.msg, id)
			if resp.StatusCode != tt.status || string(body) != want || id == "" {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if n := int(dials.Load()); tt.dials > 0 && n != tt.dials {
				t.Errorf("dials = %d, want %d (1 + retries)", n, tt.dials)
			}
		})
	}
}

type staticBalancer struct {
	addr string
	err  error
}

func (b staticBalancer) Pick(*http.Request, int) (string, error) { return b.addr, b.err }
func (b staticBalancer) Report(string, error)                    {}

func TestNoRouteAndNegotiation(t *testing.T) { bothServers(t, testNoRouteAndNegotiation) }

func testNoRouteAndNegotiation(t *testing.T, sk serverKind) {
	env := newEnv(t, sk, &Config{Resolver: resolverFunc(func(*http.Request, *Match) {})}, h1client.Options{})
	tests := []struct {
		accept, ctype string
		wantCT        string
		wantBody      string // %s = request id
	}{
		{"", "", "application/json; charset=utf-8", "{\n  \"message\":\"no Route matched with those values\",\n  \"request_id\":\"%s\"\n}"},
		{"text/plain", "", "text/plain; charset=utf-8", "no Route matched with those values\nrequest_id: %s\n"},
		{"text/html,application/xhtml+xml;q=0.9", "", "text/html; charset=utf-8", "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>no Route matched with those values.</p>\n    <p>request_id: %s</p>\n  </body>\n</html>\n"},
		{"application/xml", "", "application/xml; charset=utf-8", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>no Route matched with those values</message>\n  <requestid>%s</requestid>\n</error>\n"},
		{"text/html;q=0.5, application/xml;q=0.8", "", "application/xml; charset=utf-8", ""},
		{"text/*", "", "text/plain; charset=utf-8", ""},
		{"image/png", "", "application/json; charset=utf-8", ""},
		{"", "text/html", "text/html; charset=utf-8", ""},
		{"*/*", "text/html", "application/json; charset=utf-8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.accept+"|"+tt.ctype, func(t *testing.T) {
			resp, body := get(t, env.url+"/nope", "Accept", tt.accept, "Content-Type", tt.ctype)
			if resp.StatusCode != 404 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.wantCT {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantCT)
			}
			if tt.wantBody != "" {
				if want := fmt.Sprintf(tt.wantBody, resp.Header.Get("X-Gantry-Request-Id")); string(body) != want {
					t.Errorf("body %q, want %q", body, want)
				}
			}
		})
	}
}

func TestWebSocketTunnel(t *testing.T) { bothServers(t, testWebSocketTunnel) }

func testWebSocketTunnel(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := readHead(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "websocket" || !strings.Contains(req.Header.Get("Connection"), "Upgrade") {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n")
		// Echo frames (opaque bytes here) back, upper-cased.
		buf := make([]byte, 1024)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				_, _ = c.Write(bytes.ToUpper(buf[:n]))
			}
			if err != nil {
				return
			}
		}
	})
	env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nhello")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "abc" || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "HELLO" {
		t.Fatalf("early bytes: %q %v", got, err)
	}
	_, _ = io.WriteString(c, "again")
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "AGAIN" {
		t.Fatalf("echo: %q %v", got, err)
	}
}

func TestConfigSwap(t *testing.T) { bothServers(t, testConfigSwap) }

func testConfigSwap(t *testing.T, sk serverKind) {
	a := newRawUpstream(t, fixedResponder("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"))
	b := newRawUpstream(t, fixedResponder("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"))
	env := newEnv(t, sk, nil, h1client.Options{})
	if resp, _ := get(t, env.url+"/"); resp.StatusCode != 404 {
		t.Fatalf("no config: status %d, want 404", resp.StatusCode)
	}
	for _, u := range []*rawUpstream{a, b} {
		if err := env.p.Store(staticCfg(serviceFor(t, u.addr()))); err != nil {
			t.Fatal(err)
		}
		_, body := get(t, env.url+"/")
		if want := map[*rawUpstream]string{a: "a", b: "b"}[u]; string(body) != want {
			t.Errorf("body %q, want %q", body, want)
		}
	}
	if err := env.p.Store(&Config{}); err == nil {
		t.Error("Store accepted a config without a resolver")
	}
}

func TestOptionChecks(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without Transport succeeded")
	}
	if _, err := h1client.New(h1client.Options{MaxIdlePerHost: -1}); err == nil {
		t.Error("negative MaxIdlePerHost accepted")
	}
	for _, s := range []Service{{Port: 80}, {Host: "h", Port: 0}, {Host: "h", Port: 80, Protocol: "tcp"}, {Host: "h", Port: 80, Retries: -1}} {
		if err := s.Prepare(); err == nil {
			t.Errorf("Prepare(%+v) succeeded", s)
		}
	}
	s := Service{Host: "h", Port: 80}
	if err := s.Prepare(); err != nil || s.hostHeader != "h" || s.addr != "h:80" || s.ReadTimeout != time.Minute {
		t.Errorf("Prepare: %v %+v", err, s)
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrNoPeer), ErrNoPeer) {
		t.Error("ErrNoPeer does not wrap")
	}
}

func TestIdleExpiry(t *testing.T) { bothServers(t, testIdleExpiry) }

func testIdleExpiry(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, fixedResponder(okResp))
	env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{IdleTimeout: 30 * time.Millisecond, MaxIdlePerHost: 1})
	get(t, env.url+"/")
	if n := env.tr.IdleConns(up.addr()); n != 1 {
		t.Fatalf("idle = %d, want 1", n)
	}
	time.Sleep(60 * time.Millisecond)
	get(t, env.url+"/")
	if n := up.conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2 (expired idle connection replaced)", n)
	}
}
