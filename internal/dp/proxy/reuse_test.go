package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// smuggled is a complete response that an upstream writes where no bytes
// belong; a client that ever reads it got someone else's answer.
const smuggled = "HTTP/1.1 200 OK\r\nX-Test-Id: smuggled\r\nContent-Length: 8\r\n\r\nSMUGGLED"

// goodAnswer is the well-framed answer to the request with id id.
func goodAnswer(id string) string {
	body := "id=" + id
	return "HTTP/1.1 200 OK\r\nX-Test-Id: " + id + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// misbehaviour is how an upstream answers one bad path: it writes the
// answer to req on c and reports whether the connection stays open.
type misbehaviour func(c net.Conn, br *bufio.Reader, req *http.Request) bool

// once writes resp in one write, so that the bytes beyond its framing reach
// the proxy together with it, and keeps the connection open.
func once(resp string) misbehaviour {
	return func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
		_, err := io.WriteString(c, resp)
		return err == nil
	}
}

// thenSmuggle writes resp, then answers every later request on the same
// connection with the smuggled response: only a proxy that never reuses
// the connection after resp is safe from it.
func thenSmuggle(resp string) misbehaviour {
	return func(c net.Conn, br *bufio.Reader, _ *http.Request) bool {
		if _, err := io.WriteString(c, resp); err != nil {
			return false
		}
		for {
			req, err := readHead(br)
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, smuggled); err != nil {
				return false
			}
		}
	}
}

// misbehaviours are the answers that break HTTP/1.1 framing in the ways
// that could hand one request's answer to another, by the path they are
// served on.
var misbehaviours = map[string]struct {
	method string
	answer misbehaviour
}{
	"/extra": {"GET", once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled)},
	"/head":  {"HEAD", once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + smuggled)},
	"/204":   {"GET", once("HTTP/1.1 204 No Content\r\n\r\n" + smuggled)},
	"/304":   {"GET", once("HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n" + smuggled)},
	"/late": {"GET", func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		// A well-framed answer, then stray bytes while the connection
		// sits idle in the pool.
		if _, err := io.WriteString(c, goodAnswer(req.Header.Get("X-Test-Id"))); err != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
		_, err := io.WriteString(c, smuggled)
		return err == nil
	}},
	"/lying-cl": {"GET", func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		return false
	}},
	"/204-length":  {"GET", thenSmuggle("HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n")},
	"/100-length":  {"GET", thenSmuggle("HTTP/1.1 100 Continue\r\nContent-Length: 8\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")},
	"/te-and-cl":   {"GET", thenSmuggle("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")},
	"/http10-body": {"GET", thenSmuggle("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")},
}

// misbehavingUpstream answers the paths of misbehaviours their way and
// every other request with goodAnswer for its X-Test-Id.
func misbehavingUpstream(t testing.TB) *rawUpstream {
	return newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := readHead(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if m, ok := misbehaviours[req.URL.Path]; ok {
				if !m.answer(c, br, req) {
					return
				}
				continue
			}
			if _, err := io.WriteString(c, goodAnswer(req.Header.Get("X-Test-Id"))); err != nil {
				return
			}
		}
	})
}

// exchange sends method path with the test id id through the proxy and
// returns the status, the X-Test-Id answered and the body (an error when
// the response was aborted).
func exchangeID(t testing.TB, c *http.Client, method, url, id string) (int, string, string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("X-Test-Id", id)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Test-Id"), string(b), err
}

// TestNoReuseAfterBrokenFraming sends one misbehaving request, then three
// good ones that reuse the pooled connection: each good request must get
// its own answer, never the bytes the bad answer left behind.
func TestNoReuseAfterBrokenFraming(t *testing.T) { bothServers(t, testNoReuseAfterBrokenFraming) }

func testNoReuseAfterBrokenFraming(t *testing.T, sk serverKind) {
	for path, m := range misbehaviours {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			up := misbehavingUpstream(t)
			svc := serviceFor(t, up.addr())
			svc.ReadTimeout = 2 * time.Second
			env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
			_, gotID, body, _ := exchangeID(t, env.client, m.method, env.url+path, "bad")
			if gotID == "smuggled" || strings.Contains(body, "SMUGGLED") {
				t.Errorf("the bad request itself got the smuggled answer: %q", body)
			}
			// Let stray bytes sent after the answer reach the pooled socket.
			time.Sleep(40 * time.Millisecond)
			for i, p := range []string{"/a", "/b", "/c"} {
				id := fmt.Sprintf("good-%d", i)
				status, gotID, body, err := exchangeID(t, env.client, "GET", env.url+p, id)
				if err != nil || status != 200 || gotID != id || body != "id="+id {
					t.Errorf("GET %s after %s %s: %d, X-Test-Id %q, body %q, err %v; want its own answer",
						p, m.method, path, status, gotID, body, err)
				}
			}
		})
	}
}

// TestPooledAnswersMatchRequests is a differential check: concurrent
// clients interleave good requests with every misbehaviour, and every good
// request must be answered with its own id. /late is left out: bytes an
// upstream sends after its connection was taken for another request cannot
// be told from that request's answer by anyone; the sequential test gives
// them time to arrive while the connection is idle.
func TestPooledAnswersMatchRequests(t *testing.T) { bothServers(t, testPooledAnswersMatchRequests) }

func testPooledAnswersMatchRequests(t *testing.T, sk serverKind) {
	up := misbehavingUpstream(t)
	svc := serviceFor(t, up.addr())
	svc.ReadTimeout = 2 * time.Second
	env := newEnv(t, sk, staticCfg(svc), h1client.Options{MaxIdlePerHost: 4})
	var paths []string
	for p := range misbehaviours {
		if p != "/late" {
			paths = append(paths, p)
		}
	}
	const workers, perWorker = 4, 40
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
		good     int
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if i%2 == 1 {
					p := paths[(w+i/2)%len(paths)]
					_, _, _, _ = exchangeID(t, env.client, misbehaviours[p].method, env.url+p, "bad")
					continue
				}
				id := fmt.Sprintf("w%d-r%d", w, i)
				status, gotID, body, err := exchangeID(t, env.client, "GET", env.url+"/good", id)
				mu.Lock()
				if err != nil || status != 200 || gotID != id || body != "id="+id {
					problems = append(problems, fmt.Sprintf("%s: %d, X-Test-Id %q, body %q, err %v", id, status, gotID, body, err))
				} else {
					good++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}
	if want := workers * perWorker / 2; good != want {
		t.Errorf("%d of %d good requests got their own answer", good, want)
	}
}
