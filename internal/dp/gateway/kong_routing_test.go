package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestKongRoutingEdges checks router and proxy behaviours against Kong 3.x
// (router_flavor traditional_compatible), each case naming where Kong's
// behaviour was read:
//   - a plain path with regex metacharacters is a literal prefix
//     (Kong/kong kong/router/compat.lua: only "~" paths become regexes);
//   - a route host with a port matches requests whose listener has that port,
//     on the plain and the TLS listener, over HTTP/1.1 and HTTP/2
//     (kong/router/compat.lua "net.dst.port", kong/router/atc.lua server_port);
//   - a request target ending in a bare "?" reaches the upstream with it
//     (Kong proxies $request_uri's path and query as received).
func TestKongRoutingEdges(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	certPEM, keyPEM := testCert(t, "port.example.com")
	g := start(t)
	plain, secure := g.Addrs()
	_, plainPort, _ := net.SplitHostPort(plain.String())
	_, tlsPort, _ := net.SplitHostPort(secure.String())
	apply(t, g, map[string]any{
		"certificates": arr(map[string]any{"id": id('e', 1), "cert": certPEM, "key": keyPEM}),
		"snis":         arr(map[string]any{"id": id('f', 1), "name": "port.example.com", "certificate": id('e', 1)}),
		"services":     arr(service(1, ah, ap, nil)),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/v1.0/*/files", "/a+b(c)"), "strip_path": false}),
			route(2, 1, map[string]any{"paths": arr("/plain-port"), "hosts": arr("port.example.com:" + plainPort), "strip_path": false}),
			route(3, 1, map[string]any{"paths": arr("/tls-port"), "hosts": arr("port.example.com:" + tlsPort), "strip_path": false}),
			route(4, 1, map[string]any{"paths": arr("/q"), "strip_path": false}),
		),
	}, "edges")

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "port.example.com", NextProtos: []string{"http/1.1"}},
	}}
	h2tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "port.example.com"}}
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: h2tr}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2tr.CloseIdleConnections)

	cases := []struct {
		name   string
		client *http.Client
		url    string
		code   int
		body   string
		proto  int
	}{
		{"literal path with metacharacters", h1, "http://" + plain.String() + "/v1.0/*/files/x", 200, "A GET /v1.0/*/files/x", 1},
		{"'.' is not a wildcard", h1, "http://" + plain.String() + "/v1x0/*/files/x", 404, "", 1},
		{"'*' is not a repetition", h1, "http://" + plain.String() + "/v1.0/files/x", 404, "", 1},
		{"'+' and parentheses are literal", h1, "http://" + plain.String() + "/a+b(c)/d", 200, "A GET /a+b(c)/d", 1},
		{"'+' is not a repetition", h1, "http://" + plain.String() + "/aab(c)", 404, "", 1},
		{"host port of the plain listener", h1, "http://" + plain.String() + "/plain-port", 200, "A GET /plain-port", 1},
		{"plain listener is not the TLS port", h1, "http://" + plain.String() + "/tls-port", 404, "", 1},
		{"host port of the TLS listener", h1, "https://" + secure.String() + "/tls-port", 200, "A GET /tls-port", 1},
		{"host port of the TLS listener over HTTP/2", h2, "https://" + secure.String() + "/tls-port", 200, "A GET /tls-port", 2},
		{"TLS listener is not the plain port", h1, "https://" + secure.String() + "/plain-port", 404, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.url, nil)
			req.Host = "port.example.com"
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) || resp.ProtoMajor != tc.proto {
				t.Errorf("got %s %d %q, want HTTP/%d %d %q", resp.Proto, resp.StatusCode, b, tc.proto, tc.code, tc.body)
			}
		})
	}

	t.Run("bare question mark reaches the upstream", func(t *testing.T) {
		for target, want := range map[string]string{"/q?": "A GET /q?", "/q/x?": "A GET /q/x?", "/q?a=1": "A GET /q?a=1"} {
			c, err := net.Dial("tcp", plain.String())
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: any\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			c.Close()
			if resp.StatusCode != 200 || string(b) != want {
				t.Errorf("%s: got %d %q, want the upstream to see %q", target, resp.StatusCode, b, want)
			}
		}
	})
}

// TestKeyAuthTTLForms checks both forms a key-auth credential's ttl takes in a configuration:
// the absolute expiry (Unix seconds) Kong's control plane exports (Kong/kong
// kong/db/strategies/postgres/init.lua select_for_export_expressions: EXTRACT(EPOCH FROM ttl)),
// and seconds counted from created_at, as a declarative file may give it.
func TestKeyAuthTTLForms(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	g := start(t)
	now := time.Now().Unix()
	cred := func(n int, key string, created, ttl int64) map[string]any {
		return map[string]any{"id": id('k', n), "consumer": id('c', 1), "key": key, "created_at": created, "ttl": ttl}
	}
	apply(t, g, map[string]any{
		"services":  arr(service(1, ah, ap, nil)),
		"routes":    arr(route(1, 1, map[string]any{"paths": arr("/"), "strip_path": false})),
		"consumers": arr(map[string]any{"id": id('c', 1), "username": "alice"}),
		"keyauth_credentials": arr(
			cred(1, "absolute-future", now-10, now+100),
			cred(2, "absolute-past", now-100, now-5),
			cred(3, "relative-future", now-10, 100),
			cred(4, "relative-past", now-100, 5),
		),
		"plugins": arr(map[string]any{"id": id('p', 1), "name": "key-auth", "config": map[string]any{"key_names": arr("apikey")}}),
	}, "ttl")
	for key, want := range map[string]int{"absolute-future": 200, "absolute-past": 401, "relative-future": 200, "relative-past": 401} {
		req, _ := http.NewRequest("GET", baseURL(g)+"/x", nil)
		req.Header.Set("apikey", key)
		if code, _ := get(t, req); code != want {
			t.Errorf("%s: %d, want %d", key, code, want)
		}
	}
}
