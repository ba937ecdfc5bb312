package proxy

import (
	"bufio"
	"net"
	"net/http"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// rejectingResolver matches every request but refuses its protocol, as the
// compiled router does for an https-only route reached over http.
type rejectingResolver struct{ svc *Service }

func (rr rejectingResolver) Resolve(_ *http.Request, m *Match) {
	m.Service = rr.svc
	m.Reject = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "TLS/1.2, HTTP/1.1")
		w.WriteHeader(http.StatusUpgradeRequired)
		_, _ = w.Write([]byte(`{"message":"Please use HTTPS protocol"}`))
	})
}

func TestMatchRejectAnswersWithoutUpstream(t *testing.T) { bothServers(t, testMatchReject) }

func testMatchReject(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = readHead(br)
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	})
	env := newEnv(t, sk, &Config{Resolver: rejectingResolver{svc: serviceFor(t, up.addr())}}, h1client.Options{})
	resp, body := get(t, env.url+"/x")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") == "" || string(body) != `{"message":"Please use HTTPS protocol"}` {
		t.Fatalf("got %d %v %s, want the Reject handler's 426", resp.StatusCode, resp.Header, body)
	}
	if n := up.conns.Load(); n != 0 {
		t.Fatalf("the upstream got %d connections for a rejected request", n)
	}
}
