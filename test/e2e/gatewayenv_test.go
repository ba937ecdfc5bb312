package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatewayEnv is a control plane with one runtime group and one runtime
// instance of it serving both proxy listeners, configured through the
// group's Kong Admin API as a user would.
type gatewayEnv struct {
	cp    *controlPlane
	group string
	rt    *runtime
	// tlsAddr is the runtime's HTTPS proxy listener.
	tlsAddr string
	// client sends plain HTTP/1.1 requests through the proxy; it never
	// follows redirects, so 3xx answers of the gateway stay visible.
	client *http.Client
}

// newGatewayEnv starts gantry serve on a fresh data directory, creates a
// group, has the control plane issue a client certificate for it and starts
// gantry runtime with it, adding runtimeArgs to its flags.
func newGatewayEnv(t *testing.T, name string, runtimeArgs ...string) *gatewayEnv {
	t.Helper()
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), base, cluster, "")
	group := cp.createGroup(t, name)
	certs := cp.generateCert(t, group)

	rt := &runtime{proxy: freeAddr(t), status: freeAddr(t), cacheDir: t.TempDir()}
	tlsAddr := freeAddr(t)
	rt.args = []string{"runtime", "--control-plane", cluster, "--cert", certs.cert, "--key", certs.key, "--ca", certs.ca,
		"--server-name", "localhost", "--proxy-listen", rt.proxy, "--proxy-tls-listen", tlsAddr, "--status-listen", rt.status,
		"--cache-dir", rt.cacheDir, "--ping-interval", "1s"}
	rt.args = append(rt.args, runtimeArgs...)
	rt.proc = start(t, []string{"GANTRY_LOG_LEVEL=info"}, rt.args...)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second)
	waitFor(t, "the runtime connected", func() bool { return rt.getStatus(t)["connected"] == true })

	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &gatewayEnv{cp: cp, group: group, rt: rt, tlsAddr: tlsAddr, client: &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// admin sends one Kong Admin API call for the group, path relative to
// core-entities/, and returns the status and decoded JSON.
func (e *gatewayEnv) admin(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return e.cp.call(t, method, "/v2/runtime-groups/"+e.group+"/core-entities/"+path, body)
}

// create POSTs body to the collection at path and fails the test unless it
// is created.
func (e *gatewayEnv) create(t *testing.T, path string, body map[string]any) map[string]any {
	t.Helper()
	code, out := e.admin(t, "POST", path, body)
	if code != 201 {
		t.Fatalf("create %s %v: %d %v", path, body, code, out)
	}
	return out
}

// converge waits until the runtime serves the group's current expected
// configuration hash, and returns it.
func (e *gatewayEnv) converge(t *testing.T) string {
	t.Helper()
	want := e.cp.expectedHash(t, e.group)
	waitFor(t, "the runtime to serve hash "+want, func() bool { return e.rt.getStatus(t)["configuration_hash"] == want })
	return want
}

// proxyURL is the plain proxy listener's URL for path.
func (e *gatewayEnv) proxyURL(path string) string { return "http://" + e.rt.proxy + path }

// send sends req through the client and returns the answer with its body
// read; a transport error fails the test.
func (e *gatewayEnv) send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return res, string(b)
}

// seen is what an echo upstream observed of one request.
type seen struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"query"`
	Host     string              `json:"host"`
	Proto    string              `json:"proto"`
	Header   map[string][]string `json:"header"`
	Body     string              `json:"body"`
}

// echoHandler answers every request with a JSON description of it (the
// first MiB of its body included), tagged
// with name so that the test can tell upstreams apart.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Upstream: name, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Host: r.Host, Proto: r.Proto, Header: r.Header, Body: string(body)})
	})
}

// newEcho starts an HTTP/1.1 echo upstream on loopback, closed when the test
// ends.
func newEcho(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(echoHandler(name))
	t.Cleanup(s.Close)
	return s
}

// decodeSeen parses an echo upstream's answer, failing the test when the
// body is not one.
func decodeSeen(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Upstream == "" {
		t.Fatalf("the answer is not from an echo upstream: %q (%v)", body, err)
	}
	return s
}

// hostPort is the host:port of a test server's URL.
func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// loadResult counts the outcome of the requests a load generator sent.
type loadResult struct {
	mu       sync.Mutex // guards the fields below
	ok       int
	failures []string
	byUp     map[string]int
}

func (l *loadResult) record(upstream string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if len(l.failures) < 20 {
			l.failures = append(l.failures, err.Error())
		} else if len(l.failures) == 20 {
			l.failures = append(l.failures, "...")
		}
		return
	}
	l.ok++
	if l.byUp == nil {
		l.byUp = map[string]int{}
	}
	l.byUp[upstream]++
}

// snapshot returns the counts so far.
func (l *loadResult) snapshot() (ok int, failures []string, byUp map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byUp = make(map[string]int, len(l.byUp))
	for k, v := range l.byUp {
		byUp[k] = v
	}
	return l.ok, append([]string(nil), l.failures...), byUp
}

// runLoad sends GET url from workers goroutines until stop is closed or
// limit requests were sent in all, whichever comes first. A request
// fails unless it answers 200 from an echo upstream. It returns once every
// worker has stopped.
func runLoad(client *http.Client, url string, workers, limit int, stop <-chan struct{}, res *loadResult) {
	var wg sync.WaitGroup
	var mu sync.Mutex // guards sent
	sent := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				if sent >= limit {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				res.record(getUpstream(client, url))
			}
		}()
	}
	wg.Wait()
}

// getUpstream sends one GET and returns the echo upstream that answered.
func getUpstream(client *http.Client, url string) (string, error) {
	res, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", fmt.Errorf("reading the body: %w", err)
	}
	if res.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	var s seen
	if err := json.Unmarshal(b, &s); err != nil || s.Upstream == "" {
		return "", fmt.Errorf("not an echo answer: %q", b)
	}
	return s.Upstream, nil
}

// waitLog waits until p's output matches re, failing t (which may be a
// subtest, unlike proc.waitOutput's) if it does not within timeout.
func waitLog(t *testing.T, p *proc, re *regexp.Regexp, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !re.MatchString(p.output()) {
		if time.Now().After(deadline) {
			t.Fatalf("the output did not match %s within %s", re, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
