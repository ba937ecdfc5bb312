package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// Lingering close (see Serve): after the last response of a connection
// that may still have bytes coming, read and discard for at most
// lingerTime in total and lingerTimeout of silence (net/http sleeps 500 ms
// after its half-close, its rstAvoidanceDelay). nginx's defaults are 30 s
// and 5 s; a gateway shedding a bad or unwanted request should hold its
// connection slot for less. Time is the bound that matters: a client that
// reads while it sends stops within a round trip of our response, and one
// that does not would lose the response to any bound. lingerBytes only
// caps the work one fast sender can cause (nginx has no such cap); it is
// above what a client can have in flight (1 Gbit/s over a 100 ms round
// trip).
const (
	lingerTime    = 2 * time.Second
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 16 << 20
)

// aLongTimeAgo is a deadline in the past: it ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// connReader is the connection's read side under its bufio.Reader. It sets
// the read deadline of each phase of a request:
//
//   - waiting for a request (awaitHead): IdleTimeout, refreshed;
//   - reading the head (inHead), once its first bytes came: one fixed
//     deadline, ReadHeaderTimeout from the first read that needs one (the
//     next read is issued as soon as the first returns, so that is when
//     the first byte came, to within the parse of what it brought; and a
//     head read whole at once, the common case, costs no clock read);
//   - reading the body: BodyTimeout, refreshed (timeout).
//
// A refreshed deadline moves only when that moves it by more than a
// slack, so a busy keep-alive connection changes its deadline about once a
// second, not per request.
type connReader struct {
	nc       net.Conn  // nil in parser tests: no deadlines
	src      io.Reader // nc, or the test input
	timeout  time.Duration
	deadline time.Time // the read deadline in force

	headTimeout time.Duration
	awaitHead   bool // the next byte read is a head's first
	inHead      bool // a head is being read: its deadline is fixed
	headSet     bool // the head's deadline was set

	// pending is a byte the background read took from the connection
	// (the start of the next request); Read returns it first.
	pending    byte
	hasPending bool
}

func (r *connReader) Read(b []byte) (int, error) {
	if r.hasPending && len(b) > 0 {
		b[0], r.hasPending = r.pending, false
		r.gotBytes()
		return 1, nil
	}
	if r.nc != nil {
		switch {
		case r.inHead:
			if !r.headSet {
				r.headSet = true
				r.deadline = time.Now().Add(r.headTimeout)
				_ = r.nc.SetReadDeadline(r.deadline)
			}
		case r.timeout > 0:
			r.deadline = refreshDeadline(r.nc.SetReadDeadline, r.deadline, r.timeout)
		}
	}
	n, err := r.src.Read(b)
	if n > 0 {
		r.gotBytes()
	}
	return n, err
}

// gotBytes starts the head's clock when these are its first bytes.
func (r *connReader) gotBytes() {
	if r.awaitHead {
		r.startHead()
	}
}

// startHead moves to the head's fixed deadline.
func (r *connReader) startHead() {
	r.awaitHead, r.inHead, r.headSet = false, true, false
}

// connWriter is connReader's counterpart for writes.
type connWriter struct {
	nc       net.Conn
	dst      io.Writer
	timeout  time.Duration
	deadline time.Time
}

func (w *connWriter) Write(b []byte) (int, error) {
	if w.nc != nil && w.timeout > 0 {
		w.deadline = refreshDeadline(w.nc.SetWriteDeadline, w.deadline, w.timeout)
	}
	return w.dst.Write(b)
}

// refreshDeadline sets now+timeout when it differs from the current
// deadline by more than min(timeout/8, 1s), and returns the deadline in
// force.
func refreshDeadline(set func(time.Time) error, cur time.Time, timeout time.Duration) time.Time {
	want := time.Now().Add(timeout)
	slack := min(timeout/8, time.Second)
	if d := want.Sub(cur); d > slack || d < -slack {
		_ = set(want)
		return want
	}
	return cur
}

// serverConn is one client connection of Serve and the request state it
// reuses from one request to the next.
type serverConn struct {
	s     *Server
	h     http.Handler
	opts  *Options
	nc    net.Conn
	local net.Addr // nc's local address, for http.LocalAddrContextKey
	rd    connReader
	wr    connWriter
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32 // connIdle, connActive or connClosed

	remote string

	// Reused per request. base is an empty request carrying ctx (made once:
	// http.Request.WithContext copies and allocates); ctx is reset for each
	// request, as the Request, URL and Header map are.
	base    http.Request
	ctx     reqCtx
	req     http.Request
	url     url.URL
	hdr     http.Header
	vals    []string
	scratch []byte     // the raw request head
	lines   []headLine // parsed header line offsets into scratch
	body    reqBody
	w       respWriter
	why     string // why the last request was refused, for the debug log

	watch watch

	hijacked   bool
	clientGone bool // the background read saw the client leave
}

// headLine locates one header line's name and value in the head.
type headLine struct{ name0, name1, val0, val1 int }

func (s *Server) newServerConn(nc net.Conn) *serverConn {
	c := &serverConn{s: s, remote: nc.RemoteAddr().String()}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Responses are written in one flush; Nagle would only delay them.
		_ = tc.SetNoDelay(true)
	}
	c.init(nc, nc, nc)
	return c
}

// init sets up the reusable state; nc may be nil (parser tests).
func (c *serverConn) init(nc net.Conn, src io.Reader, dst io.Writer) {
	c.opts = &c.s.opts
	c.h = c.opts.Handler
	c.nc = nc
	if nc != nil {
		// As net/http does, requests carry the local address: routes whose
		// hosts name a port match on it.
		c.local = nc.LocalAddr()
	}
	c.ctx.c = c
	c.base = *(&http.Request{}).WithContext(&c.ctx)
	c.rd = connReader{nc: nc, src: src, headTimeout: c.opts.ReadHeaderTimeout}
	c.wr = connWriter{nc: nc, dst: dst, timeout: c.opts.WriteTimeout}
	c.br = bufio.NewReaderSize(&c.rd, 4<<10)
	c.bw = bufio.NewWriterSize(&c.wr, 4<<10)
	c.hdr = make(http.Header, 16)
	c.vals = make([]string, 0, 32)
	c.scratch = make([]byte, 0, 1024)
	c.lines = make([]headLine, 0, 32)
	c.body.c = c
	c.w.c = c
	c.w.hdr = make(http.Header, 16)
}

// serverWideOptions answers OPTIONS * (RFC 9110 9.3.7: a request about the
// server, not a resource, which no route can match) as net/http's server
// does: 200 and no body.
var serverWideOptions = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Length"] = zeroLength
	w.WriteHeader(http.StatusOK)
})

func (c *serverConn) serve() {
	defer c.close()
	defer func() {
		e := recover()
		if e == nil {
			return
		}
		if err, ok := e.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			// The handler's way to abort the response, as with net/http:
			// what it wrote goes out (a truncated body the client can
			// tell from a complete one, as nginx sends), then the close.
			if !c.hijacked {
				_ = c.bw.Flush()
			}
			return
		}
		c.opts.Logger.Error("panic serving request", "remote", c.remote, "panic", e, "stack", string(debug.Stack()))
	}()
	for {
		r, status, msg := c.readRequest()
		if r == nil {
			if status != 0 {
				c.opts.Logger.Debug("request refused", "remote", c.remote, "status", status, "reason", c.why)
				c.writeServerError(status, msg)
				c.lingeringClose()
			}
			return
		}
		c.w.reset(r)
		h := c.h
		if r.RequestURI == "*" {
			h = serverWideOptions
		}
		h.ServeHTTP(&c.w, r)
		c.endRequest()
		if c.hijacked {
			return
		}
		keep, linger := c.finishRequest()
		if !keep {
			if linger {
				c.lingeringClose()
			}
			return
		}
		c.state.Store(connIdle)
		if c.s.shutdown.Load() {
			return
		}
	}
}

// close ends the connection (unless hijacked), forgets it and frees its
// slot.
func (c *serverConn) close() {
	c.endRequest()
	c.stopWatchTimer()
	if !c.hijacked {
		_ = c.nc.Close()
	}
	s := c.s
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	<-s.slots
}

// statusHeaderTooLarge is nginx's own 494 for request headers over its
// buffers, which Kong's error handler answers with "Request header or
// cookie too large"; Kong clients see it rather than RFC 6585's 431.
const statusHeaderTooLarge = 494

// msgHeaderTooLarge is Kong's message for statusHeaderTooLarge.
const msgHeaderTooLarge = "Request header or cookie too large"

// errorMessage is the fixed message of each status the server answers
// itself, as Kong's error handler words them.
func errorMessage(status int) string {
	switch status {
	case http.StatusRequestURITooLong:
		return "Request-URI Too Large"
	case statusHeaderTooLarge:
		return msgHeaderTooLarge
	case http.StatusMethodNotAllowed:
		return "Method not allowed"
	case http.StatusExpectationFailed:
		return "Expectation Failed"
	case http.StatusNotImplemented:
		return "Not Implemented"
	case http.StatusHTTPVersionNotSupported:
		return "HTTP Version Not Supported"
	}
	return "Bad request"
}

// maxDrain is how much of an unread request body is read and discarded to
// keep the connection; beyond it the connection is closed instead.
const maxDrain = 256 << 10

// finishRequest completes the response and decides whether the connection
// can serve another request; when it cannot, linger reports whether the
// client may still be sending (an unread body, pipelined bytes), so that
// the close must be a lingering one.
func (c *serverConn) finishRequest() (keep, linger bool) {
	w := &c.w
	w.finish()
	if err := c.bw.Flush(); err != nil {
		return false, false
	}
	if c.clientGone {
		return false, false
	}
	b := &c.body
	unread := (b.chunked || b.remain > 0) && !b.done
	if w.closeAfter || c.req.Close {
		return false, unread || c.br.Buffered() > 0
	}
	if unread {
		if b.expect {
			// The client waits for 100 Continue that never came: whether
			// it sends the body now is unknown, so the framing is lost.
			return false, true
		}
		if !b.drain() {
			return false, true
		}
	}
	return true, false
}

// writeServerError answers a request the server itself rejects, then the
// connection is closed.
func (c *serverConn) writeServerError(status int, msg string) {
	var idb [32]byte
	n := c.s.idSeq.Add(1)
	copy(idb[:16], c.s.idPrefix[:])
	const digits = "0123456789abcdef"
	for i := 31; i >= 16; i-- {
		idb[i] = digits[n&15]
		n >>= 4
	}
	body, ctype := c.opts.ErrorBody(make([]byte, 0, 128), msg, string(idb[:]))
	bw := c.bw
	bw.WriteString(h1.StatusLine(status))
	bw.WriteString("Content-Type: ")
	bw.WriteString(ctype)
	bw.WriteString("\r\nConnection: close\r\nServer: gantry\r\nDate: ")
	bw.WriteString(h1.Date())
	bw.WriteString("\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\n\r\n")
	bw.Write(body)
	_ = bw.Flush()
}

// lingeringClose is the close after a response when the client may still
// be sending (see Serve): half-close, so the client reads the response and
// then EOF, and read and discard what still comes, within lingerTime,
// lingerTimeout and lingerBytes, so that the final close finds nothing
// unread and does not reset the connection.
func (c *serverConn) lingeringClose() {
	if c.nc == nil {
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	buf := c.scratch[:cap(c.scratch)]
	end := time.Now().Add(lingerTime)
	for n := 0; n < lingerBytes; {
		d := time.Now().Add(lingerTimeout)
		if d.After(end) {
			d = end
		}
		if c.nc.SetReadDeadline(d) != nil {
			return
		}
		m, err := c.nc.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// watchTick is the period of the watch's timer: a request's context must
// be waited on for one to two periods before the server starts reading
// the connection in the background to notice the client leaving. Requests
// answered sooner (most proxied requests) never pay for that read (a
// goroutine and two deadline changes); for the others the delay is small
// next to their length. Under load every connection's timer ticks while
// its requests are waited on, so the period is also what the watch costs:
// 100 ms keeps it under 1% of a proxied request's CPU (10 ms cost about
// 2%), and a client that leaves is noticed within 100 to 200 ms.
const watchTick = 100 * time.Millisecond

// watch is the client-gone detection of the request in progress. The
// request's context asks for it when first waited on (reqCtx.Done,
// AfterFunc). A per-connection timer ticks every watchTick while watched
// requests run, and is neither reset nor stopped per request: a request
// that is still the current one at a tick after the one that saw it begin
// is due. Once due and its body read to its end, a background read waits
// for the client's next byte: a byte is the next request (kept for the
// parser), an error means the client closed the connection, which cancels
// the context. The read is aborted when the request ends.
type watch struct {
	// mu guards the fields up to running.
	mu       sync.Mutex
	rc       *reqCtx // the request's context while it runs
	seq      uint64  // counts requests; the current one's number
	wanted   bool    // the context is waited on
	due      bool    // it was waited on for at least watchTick
	bodyDone bool    // the request body was read to its end (or there is none)
	off      bool    // the request ended, or the handler hijacked the connection
	timer    *time.Timer
	ticking  bool          // the timer is armed
	tickSeq  uint64        // the request current at the last tick (or arming)
	running  chan struct{} // closed when the background read returns; nil when none runs

	aborting atomic.Bool // the server ends the background read itself
	// Written by the background read before it closes running.
	buf  [1]byte
	got  bool // buf holds the next byte of the connection
	gone bool // the client closed the connection
}

// beginRequest starts the watch state of a request with context rc.
func (c *serverConn) beginRequest(rc *reqCtx, hasBody bool) {
	w := &c.watch
	// Until rc is handed to the handler, only the timer can run
	// concurrently; with no timer (no request of this connection was
	// watched yet), the lock is not needed: the last endRequest took it
	// after every earlier access.
	if w.timer != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	w.seq++
	w.rc, w.wanted, w.due, w.bodyDone, w.off = rc, false, false, !hasBody, false
	c.clientGone = false
}

// endRequest cancels the request's context and ends its watch, keeping a
// byte the background read took. It is idempotent.
func (c *serverConn) endRequest() {
	rc, running := c.endWatch(true)
	if rc != nil {
		rc.cancel(context.Canceled)
	}
	c.stopBackgroundRead(running)
}

// endWatch ends the watch of the request: no background read starts from
// now on. It returns the running background read's channel, if any, and,
// when the request ended (end), takes its context out of the watch.
func (c *serverConn) endWatch(end bool) (rc *reqCtx, running chan struct{}) {
	w := &c.watch
	w.mu.Lock()
	running = w.running
	w.running, w.off = nil, true
	if end {
		rc, w.rc = w.rc, nil
	}
	w.mu.Unlock()
	return rc, running
}

// stopBackgroundRead ends the background read whose channel is done, if
// any, keeping the byte it took. Called by the connection's goroutine (the
// handler's, for Hijack) after endWatch.
func (c *serverConn) stopBackgroundRead(done chan struct{}) {
	if done == nil {
		return
	}
	w := &c.watch
	w.aborting.Store(true)
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-done
	w.aborting.Store(false)
	_ = c.nc.SetReadDeadline(time.Time{})
	c.rd.deadline = time.Time{}
	if w.got {
		w.got = false
		c.rd.pending, c.rd.hasPending = w.buf[0], true
	}
	if w.gone {
		w.gone = false
		c.clientGone = true
	}
}

// watchWanted is called when rc is first waited on.
func (c *serverConn) watchWanted(rc *reqCtx) {
	if c.nc == nil {
		return
	}
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rc != rc || w.off || w.wanted {
		return
	}
	w.wanted = true
	if w.ticking {
		return // the running timer sees this request at its next tick
	}
	w.ticking, w.tickSeq = true, w.seq
	if w.timer == nil {
		w.timer = time.AfterFunc(watchTick, c.watchTicked)
	} else {
		w.timer.Reset(watchTick)
	}
}

// watchTicked runs at each tick of the watch's timer.
func (c *serverConn) watchTicked() {
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.wanted || w.off || w.due:
		// No watched request waits: the next one arms the timer again.
		w.ticking = false
	case w.seq == w.tickSeq:
		// The request was current at the previous tick too.
		w.due, w.ticking = true, false
		c.startBackgroundReadLocked()
	default:
		w.tickSeq = w.seq
		w.timer.Reset(watchTick)
	}
}

// stopWatchTimer stops the watch's timer for good, when the connection
// closes.
func (c *serverConn) stopWatchTimer() {
	w := &c.watch
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// bodyEnded is called when the request body was read to its end.
func (c *serverConn) bodyEnded() {
	w := &c.watch
	w.mu.Lock()
	w.bodyDone = true
	c.startBackgroundReadLocked()
	w.mu.Unlock()
}

// startBackgroundReadLocked starts the background read once everything it
// waits for is there. w.mu is held.
func (c *serverConn) startBackgroundReadLocked() {
	w := &c.watch
	if !w.wanted || !w.due || !w.bodyDone || w.off || w.running != nil || c.nc == nil {
		return
	}
	done := make(chan struct{})
	w.running = done
	// The client may stay silent while the handler works.
	_ = c.nc.SetReadDeadline(time.Time{})
	go c.backgroundRead(w.rc, done)
}

func (c *serverConn) backgroundRead(rc *reqCtx, done chan struct{}) {
	w := &c.watch
	n, err := c.nc.Read(w.buf[:])
	w.got = n > 0
	if err != nil && !(w.aborting.Load() && isNetTimeout(err)) {
		// The client closed or reset the connection: nobody will read the
		// response.
		w.gone = true
		rc.cancel(context.Canceled)
	}
	close(done)
}

// reqCtx is a request's context.Context: it carries the connection's
// local address under http.LocalAddrContextKey and is cancelled when the
// request ends or the client leaves (see watch). Each connection has one,
// reset for each of its requests: like the Request it hangs on, a handler
// must not use it after returning (it then belongs to the connection's next
// request). Its Done channel is made only when someone asks for it.
// Registration ids keep counting across requests, so a stop function kept
// from an earlier request never removes a later registration.
type reqCtx struct {
	c *serverConn

	// mu guards the fields below.
	mu      sync.Mutex
	done    chan struct{} // made by the first Done; closedChan once cancelled
	err     error
	watched bool
	fns     []afterFunc  // AfterFunc callbacks not yet run or stopped
	fn0     [1]afterFunc // fns' first backing array
	nextID  uint32

	// running counts AfterFunc callbacks started and not yet returned. reset waits for them:
	// a callback reads the context (the context package's calls Err to cancel a derived
	// context), and must see the request it was registered on, not the next one.
	running sync.WaitGroup
}

// afterFunc is one AfterFunc registration.
type afterFunc struct {
	id uint32
	f  func()
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

var _ context.Context = (*reqCtx)(nil)

// Deadline implements context.Context: a request has none.
func (rc *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (rc *reqCtx) Done() <-chan struct{} {
	rc.mu.Lock()
	if rc.done == nil {
		rc.done = make(chan struct{})
	}
	d := rc.done
	first := rc.markWatchedLocked()
	rc.mu.Unlock()
	if first {
		rc.c.watchWanted(rc)
	}
	return d
}

// Err implements context.Context.
func (rc *reqCtx) Err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

// Value implements context.Context.
func (rc *reqCtx) Value(key any) any {
	if key == http.LocalAddrContextKey && rc.c.local != nil {
		return rc.c.local
	}
	return nil
}

// AfterFunc arranges for f to run in its own goroutine when the request's
// context ends. The context package uses it (context.AfterFunc, and
// contexts derived with WithCancel or WithTimeout) instead of starting a
// goroutine per derived context to wait on Done.
func (rc *reqCtx) AfterFunc(f func()) (stop func() bool) {
	rc.mu.Lock()
	if rc.err != nil {
		rc.running.Add(1)
		rc.mu.Unlock()
		go rc.run(f)
		return func() bool { return false }
	}
	if rc.fns == nil {
		rc.fns = rc.fn0[:0]
	}
	rc.nextID++
	id := rc.nextID
	rc.fns = append(rc.fns, afterFunc{id, f})
	first := rc.markWatchedLocked()
	rc.mu.Unlock()
	if first {
		rc.c.watchWanted(rc)
	}
	return func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for i, a := range rc.fns {
			if a.id == id {
				rc.fns = append(rc.fns[:i], rc.fns[i+1:]...)
				return true
			}
		}
		return false
	}
}

// markWatchedLocked records that the context is waited on and reports
// whether this is the first time while it is live. rc.mu is held.
func (rc *reqCtx) markWatchedLocked() bool {
	if rc.watched || rc.err != nil {
		return false
	}
	rc.watched = true
	return true
}

// reset makes rc the live context of a new request. It first waits for the
// previous request's AfterFunc callbacks to return (endRequest started them),
// so none of them sees the new request's state; no background read of the
// previous request is running (endRequest stopped it).
func (rc *reqCtx) reset() {
	rc.running.Wait()
	rc.mu.Lock()
	rc.done, rc.err, rc.watched = nil, nil, false
	clear(rc.fn0[:])
	rc.fns = nil
	rc.mu.Unlock()
}

// cancel ends the context with err; later calls do nothing.
func (rc *reqCtx) cancel(err error) {
	rc.mu.Lock()
	if rc.err != nil {
		rc.mu.Unlock()
		return
	}
	rc.err = err
	if rc.done == nil {
		rc.done = closedChan
	} else {
		close(rc.done)
	}
	fns := rc.fns
	rc.fns = nil
	rc.running.Add(len(fns))
	rc.mu.Unlock()
	for _, a := range fns {
		go rc.run(a.f)
	}
}

// run runs one AfterFunc callback, counted in rc.running.
func (rc *reqCtx) run(f func()) {
	defer rc.running.Done()
	f()
}

// String describes the context, as the context package's do.
func (rc *reqCtx) String() string { return "h1server.requestContext" }

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
