package h1server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// respWriter is the http.ResponseWriter of a Serve connection, reused for
// each request. The head is serialised into the connection's buffer when
// WriteHeader is called, so later changes to the header map have no effect,
// as with net/http.
type respWriter struct {
	c   *serverConn
	req *http.Request
	hdr http.Header

	status      int
	wroteHeader bool
	bodyless    bool  // HEAD, 1xx, 204, 304: no body bytes go out
	length      int64 // declared Content-Length, -1 when none
	written     int64
	chunked     bool
	closeAfter  bool // the connection ends after this response
}

var (
	_ http.Flusher  = (*respWriter)(nil)
	_ http.Hijacker = (*respWriter)(nil)
)

func (w *respWriter) reset(r *http.Request) {
	clear(w.hdr)
	*w = respWriter{c: w.c, req: r, hdr: w.hdr, length: -1}
}

// Header implements http.ResponseWriter.
func (w *respWriter) Header() http.Header { return w.hdr }

// WriteHeader implements http.ResponseWriter. 1xx statuses other than 101
// are sent at once as interim responses.
func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader || w.c.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	bw := w.c.bw
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		bw.WriteString(h1.StatusLine(code))
		w.writeFields(false)
		bw.WriteString("\r\n")
		_ = bw.Flush() // a failure is sticky: the next write or Flush reports it
		return
	}
	w.wroteHeader = true
	w.status = code
	r := w.req
	w.bodyless = r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code < 200
	if v := w.hdr["Content-Length"]; len(v) > 0 {
		if n, ok := h1.ParseLength(v[0]); ok {
			w.length = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
	if code == http.StatusNoContent || code < 200 {
		delete(w.hdr, "Content-Length")
		w.length = -1
	}
	if conn := w.hdr["Connection"]; len(conn) > 0 && h1.HasTokenAny(conn, "close") {
		w.closeAfter = true
	}
	if !w.bodyless && w.length < 0 {
		if r.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true // HTTP/1.0: the body ends when the connection does
		}
	}
	if r.Close || w.c.s.shutdown.Load() {
		w.closeAfter = true
	}
	bw.WriteString(h1.StatusLine(code))
	w.writeFields(true)
	if _, ok := w.hdr["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(h1.Date())
		bw.WriteString("\r\n")
	}
	// A Connection header the handler set (Kong's 426 sends
	// "Connection: Upgrade") is kept, as net/http keeps it; the framing
	// tokens are the server's own.
	conn := w.hdr["Connection"]
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case len(conn) > 0:
		bw.WriteString("Connection: ")
		for i, v := range conn {
			if i > 0 {
				bw.WriteString(", ")
			}
			h1.WriteFieldValue(bw, v)
		}
		if r.ProtoMinor == 0 && !h1.HasTokenAny(conn, "keep-alive") {
			bw.WriteString(", keep-alive")
		}
		bw.WriteString("\r\n")
	case r.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
}

// writeFields writes the header map. Framing headers are the writer's own;
// names that could split the head are dropped and CR/LF in values become
// spaces, as net/http does.
func (w *respWriter) writeFields(final bool) {
	bw := w.c.bw
	for k, vv := range w.hdr {
		if final && (k == "Connection" || k == "Transfer-Encoding") {
			continue
		}
		if !h1.ValidFieldName(k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			h1.WriteFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
}

// Write implements http.ResponseWriter.
func (w *respWriter) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.bodyless {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	var err error
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		p = p[:w.length-w.written]
		err = http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, err
	}
	bw := w.c.bw
	if w.chunked {
		var hb [18]byte
		h := h1.AppendHex(hb[:0], len(p))
		h = append(h, '\r', '\n')
		bw.Write(h)
	}
	n, werr := bw.Write(p)
	w.written += int64(n)
	if w.chunked && werr == nil {
		_, werr = bw.WriteString("\r\n")
	}
	if werr != nil {
		w.closeAfter = true
		return n, werr
	}
	return n, err
}

// Flush implements http.Flusher: the head (200 if none was set) and every
// body byte written so far go to the client.
func (w *respWriter) Flush() {
	if w.c.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.c.bw.Flush(); err != nil {
		w.closeAfter = true
	}
}

// Hijack implements http.Hijacker. The returned reader holds bytes the
// client sent after the request head; deadlines are left as they are (a
// read deadline the server set for its background read is cleared) and no
// longer refreshed.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if c.nc == nil {
		return nil, nil, errors.New("h1server: connection cannot be hijacked")
	}
	// No background read may compete with the new owner's; a byte it
	// took is still returned by the reader below.
	_, running := c.endWatch(false)
	c.stopBackgroundRead(running)
	c.hijacked = true
	c.rd.timeout, c.wr.timeout, c.rd.awaitHead, c.rd.inHead = 0, 0, false, false
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish ends the response after the handler returned.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		if _, ok := w.hdr["Content-Length"]; !ok {
			w.hdr["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	} else if !w.bodyless && w.length >= 0 && w.written < w.length {
		// The client expects more bytes than were sent: only closing
		// tells it the response ended.
		w.closeAfter = true
	}
}

var zeroLength = []string{"0"}
