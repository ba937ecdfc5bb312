package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/h1server"
)

// TestNewServerInFront is the gateway's use: one Server on the listener,
// its own handler choosing the Proxy generation per request.
func TestNewServerInFront(t *testing.T) {
	if _, err := h1server.New(h1server.Options{}); err == nil {
		t.Error("NewServer without a Handler succeeded")
	}
	if _, err := h1server.New(h1server.Options{Handler: http.NotFoundHandler(), IdleTimeout: -1}); err == nil {
		t.Error("negative IdleTimeout accepted")
	}
	up := newRawUpstream(t, fixedResponder(okResp))
	tr, _ := h1client.New(h1client.Options{})
	defer tr.Close()
	p, err := New(Options{Transport: tr, Config: staticCfg(serviceFor(t, up.addr()))})
	if err != nil {
		t.Fatal(err)
	}
	var gen atomic.Pointer[Proxy]
	gen.Store(p)
	srv, err := h1server.New(h1server.Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Front", "1")
		gen.Load().ServeHTTP(w, r)
	})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	resp, body := get(t, "http://"+ln.Addr().String()+"/x")
	if resp.StatusCode != 200 || len(body) != 64 || resp.Header.Get("X-Front") != "1" || resp.Header.Get("Via") != "1.1 gantry" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
