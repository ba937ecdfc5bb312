package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// recordingBalancer is an AttemptBalancer over a fixed list of peers: try n
// goes to peers[n] (the last one past the end). It records every pick and
// report, and which Attempt each came with.
type recordingBalancer struct {
	peers []string

	// mu guards the records below.
	mu       sync.Mutex
	attempts []*Attempt // the Attempt of each pick
	tries    []int      // a.Try at each pick
	statuses []int      // status of each report
	errs     []error    // err of each report
	legacy   int        // calls of the plain Pick/Report
}

func (b *recordingBalancer) Pick(*http.Request, int) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.legacy++
	return b.peers[0], nil
}

func (b *recordingBalancer) Report(string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.legacy++
}

func (b *recordingBalancer) PickAttempt(_ *http.Request, a *Attempt) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts = append(b.attempts, a)
	b.tries = append(b.tries, a.Try)
	a.Peer = a.Try // what a real balancer would remember of its pick
	return b.peers[min(a.Try, len(b.peers)-1)], nil
}

func (b *recordingBalancer) ReportAttempt(a *Attempt, status int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.Peer != a.Try {
		b.errs = append(b.errs, errors.New("report does not follow its pick"))
	}
	b.statuses = append(b.statuses, status)
	b.errs = append(b.errs, err)
}

// TestAttemptBalancer checks the per-request attempt seam: retries of one
// request share one Attempt whose Try counts up, every pick is reported
// once, connection failures come with their error, and the upstream's
// status reaches the balancer (passive health needs it), whatever it is.
func TestAttemptBalancer(t *testing.T) {
	bothServers(t, func(t *testing.T, sk serverKind) {
		refused := refusedAddr(t)
		ok := newRawUpstream(t, fixedResponder(okResp))
		failing := newRawUpstream(t, fixedResponder("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"))
		tests := []struct {
			name     string
			peers    []string
			retries  int
			status   int   // what the client gets
			tries    []int // a.Try at each pick
			statuses []int // reported statuses, 0 for a failed try
			failed   []bool
		}{
			{"first try", []string{ok.addr()}, 5, 200, []int{0}, []int{200}, []bool{false}},
			{"500 is reported", []string{failing.addr()}, 5, 500, []int{0}, []int{500}, []bool{false}},
			{"retries pick again", []string{refused, refused, ok.addr()}, 5, 200, []int{0, 1, 2}, []int{0, 0, 200}, []bool{true, true, false}},
			{"out of retries", []string{refused, refused, ok.addr()}, 1, 502, []int{0, 1}, []int{0, 0}, []bool{true, true}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bal := &recordingBalancer{peers: tt.peers}
				svc := serviceFor(t, ok.addr())
				svc.Retries = tt.retries
				svc.Balancer = bal
				env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
				resp, _ := get(t, env.url+"/")
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				bal.mu.Lock()
				defer bal.mu.Unlock()
				if bal.legacy != 0 {
					t.Errorf("plain Pick/Report called %d times on an AttemptBalancer", bal.legacy)
				}
				if !equalInts(bal.tries, tt.tries) {
					t.Errorf("tries at each pick %v, want %v", bal.tries, tt.tries)
				}
				for i, a := range bal.attempts {
					if a != bal.attempts[0] {
						t.Errorf("pick %d got another Attempt than the first", i)
					}
				}
				if !equalInts(bal.statuses, tt.statuses) {
					t.Errorf("reported statuses %v, want %v", bal.statuses, tt.statuses)
				}
				if len(bal.errs) != len(tt.failed) {
					t.Fatalf("%d reports for %d picks: %v", len(bal.errs), len(tt.failed), bal.errs)
				}
				for i, e := range bal.errs {
					if (e != nil) != tt.failed[i] {
						t.Errorf("report %d: err %v, want failed=%v", i, e, tt.failed[i])
					}
				}
			})
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// cookieBalancer asks for a cookie on every request that has none.
type cookieBalancer struct{ addr string }

func (b cookieBalancer) Pick(*http.Request, int) (string, error) { return b.addr, nil }
func (b cookieBalancer) Report(string, error)                    {}
func (b cookieBalancer) PickAttempt(r *http.Request, a *Attempt) (string, error) {
	if _, err := r.Cookie("sticky"); err != nil {
		a.SetCookie = "sticky=abc; Path=/"
	}
	return b.addr, nil
}
func (b cookieBalancer) ReportAttempt(*Attempt, int, error) {}

// TestAttemptSetCookie checks that a cookie a balancer minted reaches the
// client next to the upstream's own cookies, and only when minted.
func TestAttemptSetCookie(t *testing.T) {
	bothServers(t, func(t *testing.T, sk serverKind) {
		up := newRawUpstream(t, fixedResponder("HTTP/1.1 200 OK\r\nSet-Cookie: up=1\r\nContent-Length: 2\r\n\r\nok"))
		svc := serviceFor(t, up.addr())
		svc.Balancer = cookieBalancer{addr: up.addr()}
		env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
		resp, _ := get(t, env.url+"/")
		if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "up=1" || got[1] != "sticky=abc; Path=/" {
			t.Errorf("first response Set-Cookie %q", got)
		}
		resp, _ = get(t, env.url+"/", "Cookie", "sticky=abc")
		if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || got[0] != "up=1" {
			t.Errorf("with the cookie: Set-Cookie %q, want only the upstream's", got)
		}
	})
}

// TestRetryAfterSend checks nginx's proxy_next_upstream "error timeout"
// for requests already sent: an idempotent request that got no response
// head (the peer closed, or read_timeout passed) goes to the next peer; a
// POST is not sent twice.
func TestRetryAfterSend(t *testing.T) {
	bothServers(t, func(t *testing.T, sk serverKind) {
		dropping := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			_, _ = readHead(br) // read the request, answer nothing, close
		})
		silent := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			_, _ = readHead(br)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _ = br.ReadByte() // hold the connection open without answering
		})
		ok := newRawUpstream(t, fixedResponder(okResp))
		tests := []struct {
			name, method string
			first        string
			status       int
			picks        int
		}{
			{"GET dropped after send", "GET", dropping.addr(), 200, 2},
			{"GET past read_timeout", "GET", silent.addr(), 200, 2},
			{"POST dropped after send", "POST", dropping.addr(), 502, 1},
			{"POST past read_timeout", "POST", silent.addr(), 504, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bal := &recordingBalancer{peers: []string{tt.first, ok.addr()}}
				svc := serviceFor(t, ok.addr())
				svc.ReadTimeout = 100 * time.Millisecond
				svc.Balancer = bal
				env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
				req, _ := http.NewRequest(tt.method, env.url+"/", nil)
				resp, _ := do(t, http.DefaultClient, req)
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				bal.mu.Lock()
				defer bal.mu.Unlock()
				if len(bal.tries) != tt.picks {
					t.Errorf("%d picks (%v), want %d", len(bal.tries), bal.tries, tt.picks)
				}
				if len(bal.errs) == 0 || bal.errs[0] == nil {
					t.Errorf("the first peer's failure was not reported: %v", bal.errs)
				}
			})
		}
	})
}
