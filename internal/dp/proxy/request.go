package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"time"
)

// fwdInfo is what the request head needs beyond the request itself,
// computed once per request by the handler.
type fwdInfo struct {
	clientIP  string // textual client address, no port or brackets
	trusted   bool   // client is in Config.TrustedIPs
	scheme    string // "http" or "https" as the client connected
	port      string // listener port the client connected to
	host      string // upstream Host header value
	reqIDName string // request id header name
	reqID     string
	via       bool
	upgrade   bool // websocket upgrade being tunnelled
}

// writeRequestHead writes the upstream request line and headers into bw,
// Kong's way: hop-by-hop headers (and those the client's Connection header
// names) are dropped, X-Forwarded-* are set with incoming values honoured
// only from trusted clients, X-Real-IP, Via and the request id are added,
// and framing is re-declared for the body that follows.
func writeRequestHead(bw *bufio.Writer, r *http.Request, m *Match, fi *fwdInfo, chunked bool) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if m.Path != "" {
		bw.WriteString(m.Path)
		if r.URL.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(r.URL.RawQuery)
		}
	} else if u := r.RequestURI; u != "" && u[0] == '/' {
		bw.WriteString(u)
	} else {
		bw.WriteString(r.URL.RequestURI()) // absolute-form or HTTP/2 without RequestURI.
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(fi.host)
	bw.WriteString("\r\n")

	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		switch k {
		case "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
			"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Content-Length", "Expect", "Via", "X-Real-Ip",
			"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
			"X-Forwarded-Path", "X-Forwarded-Prefix":
			continue
		}
		if k == fi.reqIDName {
			continue
		}
		if len(conn) > 0 && hasTokenAny(conn, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}

	// X-Forwarded-For is appended to whoever sent it, as Kong does; the
	// other X-Forwarded-* are taken from the client only when trusted.
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range r.Header["X-Forwarded-For"] {
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(fi.clientIP)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(fwd(r, fi, "X-Forwarded-Proto", fi.scheme))
	bw.WriteString("\r\nX-Forwarded-Host: ")
	if v := fwd(r, fi, "X-Forwarded-Host", ""); v != "" {
		bw.WriteString(v)
	} else {
		writeHostOnly(bw, r.Host)
	}
	bw.WriteString("\r\nX-Forwarded-Port: ")
	bw.WriteString(fwd(r, fi, "X-Forwarded-Port", fi.port))
	bw.WriteString("\r\nX-Forwarded-Path: ")
	if v := fwd(r, fi, "X-Forwarded-Path", ""); v != "" {
		bw.WriteString(v)
	} else {
		writeRequestPath(bw, r)
	}
	if v := fwd(r, fi, "X-Forwarded-Prefix", ""); v != "" {
		bw.WriteString("\r\nX-Forwarded-Prefix: ")
		bw.WriteString(v)
	} else if m.Prefix != "" && m.Prefix != "/" {
		bw.WriteString("\r\nX-Forwarded-Prefix: ")
		bw.WriteString(m.Prefix)
	}
	bw.WriteString("\r\nX-Real-IP: ")
	bw.WriteString(fi.clientIP)
	if fi.via {
		bw.WriteString("\r\nVia: ")
		for _, v := range r.Header["Via"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
		bw.WriteString(viaValue)
	}
	if fi.reqID != "" {
		bw.WriteString("\r\n")
		bw.WriteString(fi.reqIDName)
		bw.WriteString(": ")
		bw.WriteString(fi.reqID)
	}
	if fi.upgrade {
		bw.WriteString("\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket")
	} else {
		bw.WriteString("\r\nConnection: keep-alive")
	}
	switch {
	case chunked:
		bw.WriteString("\r\nTransfer-Encoding: chunked")
	case r.ContentLength > 0:
		bw.WriteString("\r\nContent-Length: ")
		var b [20]byte
		bw.Write(appendInt(b[:0], r.ContentLength))
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		// An empty body on a method that normally has one is declared,
		// so the upstream does not wait for one.
		bw.WriteString("\r\nContent-Length: 0")
	}
	bw.WriteString("\r\n\r\n")
}

// viaValue is the pseudonym this proxy adds to Via (RFC 9110 7.6.3).
const viaValue = "1.1 gantry"

func fwd(r *http.Request, fi *fwdInfo, name, def string) string {
	if fi.trusted {
		if v := r.Header[name]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return def
}

// writeHostOnly writes host without its port, lower-cased, as nginx's $host
// (what Kong sends as X-Forwarded-Host).
func writeHostOnly(bw *bufio.Writer, host string) {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		bw.WriteByte(c)
	}
}

// writeRequestPath writes the client's request path without the query.
func writeRequestPath(bw *bufio.Writer, r *http.Request) {
	u := r.RequestURI
	if u == "" || u[0] != '/' {
		u = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	bw.WriteString(u)
}

func appendInt(b []byte, n int64) []byte {
	if n == 0 {
		return append(b, '0')
	}
	var tmp [20]byte
	i := len(tmp)
	for n > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

func appendHex(b []byte, n int) []byte {
	const digits = "0123456789abcdef"
	if n == 0 {
		return append(b, '0')
	}
	var tmp [16]byte
	i := len(tmp)
	for n > 0 {
		i--
		tmp[i] = digits[n&15]
		n >>= 4
	}
	return append(b, tmp[i:]...)
}

// writeRequestBody streams the client body to the upstream: exactly
// ContentLength bytes, or chunk-encoded when the length is unknown. Each
// write refreshes the write deadline, so write_timeout bounds the time
// between two successive writes, as nginx's proxy_send_timeout does.
func writeRequestBody(c *upConn, r *http.Request, chunked bool, timeout time.Duration) error {
	if r.Body == nil || r.Body == http.NoBody || (!chunked && r.ContentLength <= 0) {
		return nil
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	remain := r.ContentLength
	var hdr [20]byte
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			if !chunked {
				if int64(n) > remain {
					return errBodyTooLong
				}
				remain -= int64(n)
			}
			c.nc.SetWriteDeadline(time.Now().Add(timeout))
			if chunked {
				h := appendHex(hdr[:0], n)
				h = append(h, '\r', '\n')
				c.bw.Write(h)
			}
			c.bw.Write(buf[:n])
			if chunked {
				c.bw.WriteString("\r\n")
			}
			if c.bw.Buffered() > 0 && c.bw.Available() < 512 {
				if err := c.bw.Flush(); err != nil {
					return &upstreamWriteError{err}
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &clientBodyError{rerr}
		}
	}
	if !chunked && remain != 0 {
		return &clientBodyError{io.ErrUnexpectedEOF}
	}
	if chunked {
		c.bw.WriteString("0\r\n\r\n")
	}
	return nil
}

// clientBodyError is a failure reading the client's request body (client
// went away or sent a malformed body): answered 400, never retried.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read client body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// upstreamWriteError is a failure writing to the upstream.
type upstreamWriteError struct{ err error }

func (e *upstreamWriteError) Error() string { return "write upstream: " + e.err.Error() }
func (e *upstreamWriteError) Unwrap() error { return e.err }

var errBodyTooLong = &clientBodyError{io.ErrShortWrite}
