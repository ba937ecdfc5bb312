package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startLimited runs a Gateway on loopback ports with opts' limits.
func startLimited(t *testing.T, opts Options) *Gateway {
	t.Helper()
	opts.ProxyListen, opts.ProxyTLSListen, opts.ShutdownTimeout = "127.0.0.1:0", "127.0.0.1:0", 2*time.Second
	opts.LookupEnv = func(string) (string, bool) { return "", false }
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// rawGet sends one request head on a new plain or TLS connection and reads
// the response; the connection stays open for the caller.
func rawGet(g *Gateway, secure bool, head string, wait time.Duration) (net.Conn, *http.Response, error) {
	plain, tlsAddr := g.Addrs()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: wait}
	if secure {
		c, err = tls.DialWithDialer(d, "tcp", tlsAddr.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		c, err = d.Dial("tcp", plain.String())
	}
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, head); err != nil {
		c.Close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return c, resp, nil
}

// TestListenersShareConnectionCap checks that the plain and the TLS
// listener count their client connections against one MaxConnections: at
// the cap neither accepts, and a close on either frees a slot for both.
func TestListenersShareConnectionCap(t *testing.T) {
	g := startLimited(t, Options{MaxConnections: 1})
	const head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	plain, _, err := rawGet(g, false, head, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The TLS handshake cannot even start: the connection waits in the
	// backlog.
	if c, _, err := rawGet(g, true, head, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("TLS listener accepted past the shared cap")
	}
	plain.Close()
	secure, resp, err := rawGet(g, true, head, 2*time.Second)
	if err != nil {
		t.Fatalf("TLS listener not served once the slot freed: %v", err)
	}
	if resp.StatusCode != 404 {
		t.Errorf("TLS: status %d", resp.StatusCode)
	}
	if c, _, err := rawGet(g, false, head, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("plain listener accepted past the shared cap")
	}
	secure.Close()
	if c, _, err := rawGet(g, false, head, 2*time.Second); err != nil {
		t.Fatalf("plain listener not served once the slot freed: %v", err)
	} else {
		c.Close()
	}
}

// TestTLSListenerLimits checks that the TLS listener, served by net/http,
// has the plain listener's limits: the whole head within
// ReadHeaderTimeout, and headers bounded by the same MaxHeaderBytes. The
// answers differ in one documented way: net/http answers 431 where the
// plain listener answers Kong's 494, and allows 4 KiB over the bound.
func TestTLSListenerLimits(t *testing.T) {
	g := startLimited(t, Options{ReadHeaderTimeout: 300 * time.Millisecond})
	big := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"
	for _, tt := range []struct {
		secure bool
		status int
	}{{false, 494}, {true, http.StatusRequestHeaderFieldsTooLarge}} {
		c, resp, err := rawGet(g, tt.secure, big, 2*time.Second)
		if err != nil {
			t.Fatalf("TLS=%v: %v", tt.secure, err)
		}
		c.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("TLS=%v: 70 KiB of headers answered %d, want %d", tt.secure, resp.StatusCode, tt.status)
		}
	}
	for _, secure := range []bool{false, true} {
		plain, tlsAddr := g.Addrs()
		var c net.Conn
		var err error
		if secure {
			c, err = tls.Dial("tcp", tlsAddr.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		} else {
			c, err = net.Dial("tcp", plain.String())
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\n")
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, c)
			close(closed)
		}()
	trickle:
		for {
			select {
			case <-closed:
				break trickle
			case <-time.After(50 * time.Millisecond):
				_, _ = io.WriteString(c, "X")
			}
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("TLS=%v: a trickled head held the connection %v; ReadHeaderTimeout is 300ms", secure, el)
		}
		c.Close()
	}
}
