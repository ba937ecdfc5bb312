package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timing of TestMisbehavingUpstream.
const (
	// badReadTimeout is the raw service's read_timeout: how long the
	// runtime may wait on each upstream read, of the head or of the body.
	badReadTimeout = time.Second
	// badHold is how long /lying-cl keeps its connection open after its
	// short body. It is well over badReadTimeout, so that a response that
	// ends sooner was ended by the runtime's timeout.
	badHold = 5 * time.Second
	// badPromptly bounds answers that must come from badReadTimeout
	// firing: the timeout itself plus scheduling slack under -race with
	// every client busy.
	badPromptly = 3 * time.Second
	// badRequestDeadline bounds each exchange of a test client, so that a
	// hung runtime fails the test instead of stalling it.
	badRequestDeadline = 10 * time.Second
	// badRunBudget bounds the concurrent phase of the test.
	badRunBudget = 40 * time.Second
)

// badKinds are the misbehaving answers of badUpstream; each is served on
// the route and path of the same name.
var badKinds = []string{"extra", "lying-cl", "lying-cl-close", "head-body", "204-body", "304-body",
	"huge-head", "slow-head", "close-mid-body"}

// badMethod is the method a client uses for kind: /head-body misbehaves
// on HEAD only.
func badMethod(kind string) string {
	if kind == "head-body" {
		return http.MethodHead
	}
	return http.MethodGet
}

// badPartial is the body prefix sent by the answers whose Content-Length
// (100) promises more than they send.
const badPartial = "0123456789abcdefghijklmnopqrstuvwxyzABCD"

// badSent is how much of badPartial each lying answer sends before it
// stalls or closes.
var badSent = map[string]string{
	"lying-cl":       badPartial[:10],
	"lying-cl-close": badPartial[:40],
	"close-mid-body": badPartial[:10],
}

// badSmuggled is a complete response an upstream writes where no bytes
// belong. It names the request that caused it, so a client that ever reads
// it is seen to hold the answer to someone else's request.
func badSmuggled(id string) string {
	return "HTTP/1.1 200 OK\r\nX-Test-Id: " + id + "\r\nContent-Length: 8\r\n\r\nSMUGGLED"
}

// badUpstream is an HTTP/1.1 upstream on a raw listener whose answers are
// written by hand, byte for byte, so that they can break framing in ways
// net/http never would. Connections are kept alive unless an answer says
// otherwise.
type badUpstream struct {
	ln     net.Listener
	filler []byte        // the ~10 MB of header lines of /huge-head
	stop   chan struct{} // closed when the test ends
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu    sync.Mutex
	conns map[net.Conn]bool
	ids   map[string]int // good request ids received, with how often
	kinds map[string]int // requests received per kind
}

// newBadUpstream starts a badUpstream on loopback; it is stopped, and its
// connections closed, when the test ends.
func newBadUpstream(t *testing.T) *badUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// 200,000 lines of 50 bytes: a 10 MB head whose every line is short,
	// so that only a bound on the whole head can refuse it.
	var fill bytes.Buffer
	for i := range 200_000 {
		fmt.Fprintf(&fill, "X-Filler-%06d: %s\r\n", i, strings.Repeat("a", 31))
	}
	u := &badUpstream{ln: ln, filler: fill.Bytes(), stop: make(chan struct{}),
		conns: map[net.Conn]bool{}, ids: map[string]int{}, kinds: map[string]int{}}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(func() {
		close(u.stop)
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *badUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		select {
		case <-u.stop:
			u.mu.Unlock()
			c.Close()
			return
		default:
		}
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serve(c)
	}
}

// serve answers the requests of one keep-alive connection in turn.
func (u *badUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Time{})
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		// A request whose body did not arrive whole gets no answer: the
		// connection is broken or timed out.
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		// No answer may hang the goroutine past the test; the cleanup
		// closes the connection too.
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if !u.answer(c, r) {
			return
		}
	}
}

// answer writes the answer to r and reports whether the connection stays
// open for another request.
func (u *badUpstream) answer(c net.Conn, r *http.Request) bool {
	id := r.Header.Get("X-Test-Id")
	kind := strings.TrimPrefix(r.URL.Path, "/")
	if strings.HasPrefix(r.URL.Path, "/good/") {
		kind = "good"
	}
	u.mu.Lock()
	u.kinds[kind]++
	if kind == "good" {
		u.ids[id]++
	}
	u.mu.Unlock()

	write := func(s string) bool {
		_, err := io.WriteString(c, s)
		return err == nil
	}
	head := func(status, length string) string {
		h := "HTTP/1.1 " + status + "\r\nX-Test-Id: " + id + "\r\n"
		if length != "" {
			h += "Content-Length: " + length + "\r\n"
		}
		return h + "\r\n"
	}
	// Each answer goes out in one write, so that the bytes beyond its
	// framing reach the runtime together with it: a gateway cannot miss
	// them by looking too early.
	switch kind {
	case "good":
		body := "id=" + id
		return write(head("200 OK", strconv.Itoa(len(body))) + body)
	case "extra":
		return write(head("200 OK", "2") + "ok" + badSmuggled(id))
	case "lying-cl":
		if !write(head("200 OK", "100") + badSent[kind]) {
			return false
		}
		// Neither more body nor a close: only the runtime's read timeout
		// can end this response. Wait for the runtime to give up on the
		// connection, or for badHold.
		c.SetReadDeadline(time.Now().Add(badHold))
		// The wait ends when the runtime closes (EOF) or at badHold (a
		// deadline error); either way the connection is closed after it.
		_, _ = io.Copy(io.Discard, c)
		return false
	case "lying-cl-close":
		if !write(head("200 OK", "100") + badSent[kind][:20]) {
			return false
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-u.stop:
			return false
		}
		write(badSent[kind][20:])
		return false
	case "head-body":
		// A HEAD answer carries no body whatever its Content-Length says.
		return write(head("200 OK", "5") + "hello" + badSmuggled(id))
	case "204-body":
		return write(head("204 No Content", "") + badSmuggled(id))
	case "304-body":
		// The bytes after a 304 do not parse as a response: a connection
		// reused with them fails the next request instead of answering it.
		return write(head("304 Not Modified", "8") + "SMUGGLED")
	case "huge-head":
		if !write("HTTP/1.1 200 OK\r\nX-Test-Id: " + id + "\r\n") {
			return false
		}
		if _, err := c.Write(u.filler); err != nil {
			return false
		}
		return write("Content-Length: 2\r\n\r\nok")
	case "slow-head":
		h := head("200 OK", "2") + "ok"
		for i := range len(h) {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-u.stop:
				return false
			}
			if !write(h[i : i+1]) {
				return false
			}
		}
		return true
	case "close-mid-body":
		write(head("200 OK", "100") + badSent[kind])
		return false
	}
	write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	return true
}

// received returns how often each good id reached the upstream, and the
// requests received per kind.
func (u *badUpstream) received() (ids, kinds map[string]int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ids, kinds = make(map[string]int, len(u.ids)), make(map[string]int, len(u.kinds))
	for k, v := range u.ids {
		ids[k] = v
	}
	for k, v := range u.kinds {
		kinds[k] = v
	}
	return ids, kinds
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	return n, err
}

// badClient is one keep-alive connection to the proxy, driven by hand so
// that every byte the runtime sends on it is accounted for. A connection
// the runtime closed, or one that carried bytes nobody asked for, is
// replaced by a new one for the next request. It is used by one goroutine.
type badClient struct {
	addr  string
	nc    *countingConn
	br    *bufio.Reader
	dials int
}

// badExchange is what a client got for one request.
type badExchange struct {
	kind, id string
	took     time.Duration
	// res is nil when no complete response head arrived; headErr says
	// why and got how many bytes arrived before it failed.
	res     *http.Response
	headErr error
	got     int64
	body    []byte
	bodyErr error
	// extra holds the bytes the runtime sent after a complete response.
	extra []byte
}

func (c *badClient) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.br = nil, nil
	}
}

// do sends one request for kind with the test id id and reads the answer.
func (c *badClient) do(kind, path, id string) (x badExchange) {
	x.kind, x.id = kind, id
	method := badMethod(kind)
	start := time.Now()
	defer func() { x.took = time.Since(start) }()
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			x.headErr = fmt.Errorf("dial: %w", err)
			return x
		}
		c.nc = &countingConn{Conn: nc}
		c.br = bufio.NewReader(c.nc)
		c.dials++
	}
	c.nc.SetDeadline(start.Add(badRequestDeadline))
	if _, err := fmt.Fprintf(c.nc, "%s %s HTTP/1.1\r\nHost: badupstream.test\r\nX-Test-Id: %s\r\n\r\n", method, path, id); err != nil {
		x.headErr = fmt.Errorf("write: %w", err)
		c.close()
		return x
	}
	before := c.nc.n
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		x.headErr, x.got = err, c.nc.n-before
		c.close()
		return x
	}
	x.res = res
	x.body, x.bodyErr = io.ReadAll(res.Body)
	if x.bodyErr != nil || res.Close {
		c.close()
		return x
	}
	if n := c.br.Buffered(); n > 0 {
		x.extra, _ = c.br.Peek(min(n, 200))
		x.extra = bytes.Clone(x.extra)
		c.close()
	}
	return x
}

// Problem classes of badJudge, named in the failure summary.
const (
	badCrossTalk = "cross-talk"        // an answer meant for another request
	badHugeHead  = "huge head relayed" // an unbounded upstream head reached the client
	badWrong     = "wrong outcome"     // anything else a correct gateway would not do
)

// badJudge names x's outcome when it is one a correct gateway may give for
// its kind, or else returns the problem's class and description.
func badJudge(x badExchange) (outcome, class, problem string) {
	if x.res != nil {
		if got := x.res.Header.Get("X-Test-Id"); got != "" && got != x.id {
			return "", badCrossTalk, fmt.Sprintf("got the answer to request %s: %d %q", got, x.res.StatusCode, x.body)
		}
	}
	if bytes.Contains(x.body, []byte("SMUGGLED")) || bytes.Contains(x.extra, []byte("SMUGGLED")) {
		return "", badCrossTalk, fmt.Sprintf("a smuggled response reached the client: body %q, then %q", x.body, x.extra)
	}
	if x.kind != "good" && bytes.Contains(x.body, []byte("id=")) {
		return "", badCrossTalk, fmt.Sprintf("got a good request's answer: %q", x.body)
	}
	if len(x.extra) > 0 {
		return "", badWrong, fmt.Sprintf("the runtime sent %q after the response", x.extra)
	}
	if x.res == nil {
		if (x.kind == "lying-cl" || x.kind == "lying-cl-close" || x.kind == "close-mid-body") && x.got == 0 &&
			(errors.Is(x.headErr, io.ErrUnexpectedEOF) || errors.Is(x.headErr, syscall.ECONNRESET)) &&
			(x.kind != "lying-cl" || x.took < badPromptly) {
			// The runtime aborted before its buffered head reached the
			// client: the connection closes without a response
			// (http.ReadResponse reports a clean EOF as unexpected).
			return "aborted before the head", "", ""
		}
		return "", badWrong, fmt.Sprintf("no response head after %s (%d bytes): %v", x.took.Round(time.Millisecond), x.got, x.headErr)
	}
	status := x.res.StatusCode
	own := x.res.Header.Get("X-Test-Id") == x.id
	kongErr := func(code int, msg string) bool {
		var e kongError
		return status == code && x.bodyErr == nil && json.Unmarshal(x.body, &e) == nil && e.Message == msg && e.RequestID != ""
	}
	const bad, timeout = "An invalid response was received from the upstream server", "The upstream server is timing out"
	switch x.kind {
	case "good":
		if status == 200 && own && x.bodyErr == nil && string(x.body) == "id="+x.id {
			return "200", "", ""
		}
		if status == 200 && bytes.HasPrefix(x.body, []byte("id=")) {
			return "", badCrossTalk, fmt.Sprintf("got %q (X-Test-Id %q)", x.body, x.res.Header.Get("X-Test-Id"))
		}
	case "extra":
		// The answer itself is well framed; the bytes after it must only
		// keep the connection out of the pool. A gateway that sees them
		// in time may refuse the answer instead.
		if status == 200 && own && x.bodyErr == nil && string(x.body) == "ok" {
			return "200 ok", "", ""
		}
		if kongErr(502, bad) {
			return "502", "", ""
		}
	case "head-body":
		if status == 200 && own && x.bodyErr == nil && len(x.body) == 0 && x.res.ContentLength == 5 {
			return "200 HEAD", "", ""
		}
		if kongErr(502, bad) {
			return "502", "", ""
		}
	case "204-body", "304-body":
		want, _ := strconv.Atoi(x.kind[:3])
		if status == want && own && x.bodyErr == nil && len(x.body) == 0 {
			return x.kind[:3], "", ""
		}
		if kongErr(502, bad) {
			return "502", "", ""
		}
	case "huge-head":
		if kongErr(502, bad) {
			return "502", "", ""
		}
		if status == 200 {
			return "", badHugeHead, fmt.Sprintf("a %d-field head was relayed as %d", len(x.res.Header), status)
		}
	case "slow-head":
		if kongErr(504, timeout) {
			if x.took < badPromptly {
				return "504", "", ""
			}
			return "", badWrong, fmt.Sprintf("the 504 took %s; read_timeout is %s", x.took.Round(time.Millisecond), badReadTimeout)
		}
	case "lying-cl", "lying-cl-close", "close-mid-body":
		// The status line is out before the body fails, so the only
		// honest end is an aborted body: fewer bytes than promised, then
		// the connection closes.
		sent := badSent[x.kind]
		if status == 200 && own && errors.Is(x.bodyErr, io.ErrUnexpectedEOF) && len(x.body) < 100 &&
			strings.HasPrefix(sent, string(x.body)) && x.res.ContentLength == 100 {
			if x.kind == "lying-cl" && x.took >= badPromptly {
				return "", badWrong, fmt.Sprintf("the body was aborted after %s; read_timeout is %s", x.took.Round(time.Millisecond), badReadTimeout)
			}
			return fmt.Sprintf("200 aborted after %d of %d bytes", len(x.body), len(sent)), "", ""
		}
	}
	return "", badWrong, fmt.Sprintf("%d, Content-Length %d, body %.200q (read error %v) after %s",
		status, x.res.ContentLength, x.body, x.bodyErr, x.took.Round(time.Millisecond))
}

// badTally collects the outcomes of every client.
type badTally struct {
	mu       sync.Mutex                // guards the fields below
	outcomes map[string]map[string]int // kind → outcome → count
	classes  map[string]int            // problem class → count
	problems []string
	sent     map[string]int // requests sent per kind
}

func (b *badTally) add(x badExchange) {
	outcome, class, problem := badJudge(x)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent[x.kind]++
	if class != "" {
		b.classes[class]++
		b.problems = append(b.problems, fmt.Sprintf("%s %s (%s): %s: %s", badMethod(x.kind), x.kind, x.id, class, problem))
		outcome = class
	}
	if b.outcomes[x.kind] == nil {
		b.outcomes[x.kind] = map[string]int{}
	}
	b.outcomes[x.kind][outcome]++
}

// TestMisbehavingUpstream sends concurrent keep-alive clients through a
// runtime to an upstream that breaks HTTP/1.1 framing in every way a
// broken or hostile upstream can: bytes after a complete response, after
// a HEAD, 204 or 304 answer, a Content-Length it does not honour, a 10 MB
// head and a head trickled byte by byte. No client may ever get an answer
// meant for another request; the broken answers become Kong's 502 or 504,
// or an aborted body once the status line is out; every good request is
// answered with its own id, during the run and after it.
func TestMisbehavingUpstream(t *testing.T) {
	up := newBadUpstream(t)
	e := newGatewayEnv(t, "badupstream")
	ms := badReadTimeout.Milliseconds()
	e.create(t, "services", map[string]any{"name": "raw", "url": "http://" + up.ln.Addr().String(),
		"connect_timeout": ms, "write_timeout": ms, "read_timeout": ms, "retries": 0})
	for _, kind := range append([]string{"good"}, badKinds...) {
		e.create(t, "services/raw/routes", map[string]any{"name": kind, "paths": []string{"/" + kind}, "strip_path": false})
	}
	e.converge(t)

	var nonce [4]byte
	rand.Read(nonce[:])
	run := hex.EncodeToString(nonce[:])
	tally := &badTally{outcomes: map[string]map[string]int{}, classes: map[string]int{}, sent: map[string]int{}}
	goodIDs := map[string]bool{}
	const clients, perClient = 8, 30
	var (
		mu    sync.Mutex // guards dials
		dials int
		wg    sync.WaitGroup
	)
	start := time.Now()
	for ci := range clients {
		// Every other request is a good one; the bad ones rotate through
		// every kind, starting at a different kind on each client so
		// that all kinds are in flight at once.
		var plan []string
		for j := range perClient {
			kind := "good"
			if j%2 == 1 {
				kind = badKinds[(ci+j/2)%len(badKinds)]
			}
			plan = append(plan, kind)
			if kind == "good" {
				goodIDs[fmt.Sprintf("%s-c%d-r%02d", run, ci, j)] = true
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &badClient{addr: e.rt.proxy}
			defer func() {
				c.close()
				mu.Lock()
				dials += c.dials
				mu.Unlock()
			}()
			for j, kind := range plan {
				if time.Since(start) > badRunBudget {
					tally.add(badExchange{kind: kind, headErr: errors.New("not sent: the run is over its time budget")})
					continue
				}
				id := fmt.Sprintf("%s-c%d-r%02d", run, ci, j)
				path := "/" + kind
				if kind == "good" {
					path = fmt.Sprintf("/good/%d/%d", ci, j)
				}
				tally.add(c.do(kind, path, id))
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)

	// After the run, the pool must hold no connection left dirty by it:
	// sequential good requests on a new connection all get their own
	// answers.
	after := &badTally{outcomes: map[string]map[string]int{}, classes: map[string]int{}, sent: map[string]int{}}
	c := &badClient{addr: e.rt.proxy}
	for j := range 20 {
		id := fmt.Sprintf("%s-after-%02d", run, j)
		goodIDs[id] = true
		after.add(c.do("good", fmt.Sprintf("/good/after/%d", j), id))
	}
	c.close()

	kinds := append([]string{"good"}, badKinds...)
	for _, kind := range kinds {
		var outs []string
		for o, n := range tally.outcomes[kind] {
			outs = append(outs, fmt.Sprintf("%d × %s", n, o))
		}
		slices.Sort(outs)
		t.Logf("%-15s %3d sent: %s", kind, tally.sent[kind], strings.Join(outs, ", "))
	}
	ids, received := up.received()
	t.Logf("%d clients × %d requests in %s over %d client connections; upstream received %v",
		clients, perClient, took.Round(time.Millisecond), dials, received)

	for i, p := range tally.problems {
		if i == 25 {
			t.Errorf("... and %d more problems", len(tally.problems)-i)
			break
		}
		t.Error(p)
	}
	for _, p := range after.problems {
		t.Errorf("after the run: %s", p)
	}
	for _, class := range []string{badCrossTalk, badHugeHead, badWrong} {
		if n := tally.classes[class]; n > 0 {
			t.Errorf("%d of %d requests: %s", n, clients*perClient, class)
		}
	}
	if n := after.outcomes["good"]["200"]; n != 20 {
		t.Errorf("after the run, %d of 20 good requests got their own answer", n)
	}
	// Each good request must have reached the upstream exactly once:
	// never answered from elsewhere, never sent twice.
	var reach []string
	for id := range goodIDs {
		if n := ids[id]; n != 1 {
			reach = append(reach, fmt.Sprintf("%s %d times", id, n))
		}
	}
	for id, n := range ids {
		if !goodIDs[id] {
			reach = append(reach, fmt.Sprintf("unknown id %q %d times", id, n))
		}
	}
	if len(reach) > 0 {
		slices.Sort(reach)
		t.Errorf("%d good requests did not reach the upstream exactly once: %s", len(reach), strings.Join(reach[:min(len(reach), 10)], ", "))
	}
	select {
	case <-e.rt.done:
		t.Fatalf("the runtime exited: %v", e.rt.err)
	default:
	}
}
