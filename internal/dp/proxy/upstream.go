package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// copyBufSize is the size of the pooled body copy buffers. 32 KiB matches
// io.Copy's default and amortises syscalls for large bodies.
const copyBufSize = 32 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

var (
	errMalformed   = errors.New("proxy: malformed upstream response")
	errHeadTooLong = errors.New("proxy: upstream response header line too long")
)

// headerKV is one response header kept for the client.
type headerKV struct{ name, value string }

// respHead is the parsed upstream response head.
type respHead struct {
	status    int
	http10    bool
	keepAlive bool   // the connection may be reused after the body
	length    int64  // Content-Length, -1 when absent
	lengthStr string // Content-Length as received, relayed to the client
	chunked   bool
	upgrade   bool // Upgrade header present (101 answers)
	hdrs      []headerKV
	via       string // upstream Via, appended to
	connToks  string // Connection header value(s), naming extra hop-by-hop headers
}

// bodyless reports whether a response to method with this status has no
// body regardless of its framing headers (RFC 9112 section 6.3).
func (h *respHead) bodyless(method string) bool {
	return method == http.MethodHead || h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200)
}

// readResponseHead parses the status line and headers from c. It skips
// interim 1xx responses other than 101. got reports whether any byte was
// received, which decides whether a failure on a reused connection may be
// retried.
func readResponseHead(c *upConn, h *respHead, timeout time.Duration) (got bool, err error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		h.hdrs = h.hdrs[:0]
		h.length = -1
		h.chunked, h.upgrade, h.via, h.connToks, h.lengthStr = false, false, "", "", ""
		line, err := c.br.ReadSlice('\n')
		if len(line) > 0 {
			got = true
		}
		if err != nil {
			if err == bufio.ErrBufferFull {
				return got, errHeadTooLong
			}
			return got, err
		}
		line = trimCRLF(line)
		// "HTTP/1.1 200 OK"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return got, errMalformed
		}
		h.http10 = line[7] == '0'
		h.keepAlive = !h.http10
		s0, s1, s2 := line[9], line[10], line[11]
		if s0 < '1' || s0 > '5' || s1 < '0' || s1 > '9' || s2 < '0' || s2 > '9' || (len(line) > 12 && line[12] != ' ') {
			return got, errMalformed
		}
		h.status = int(s0-'0')*100 + int(s1-'0')*10 + int(s2-'0')
		if err := readHeaders(c, h); err != nil {
			return got, err
		}
		if h.status >= 100 && h.status < 200 && h.status != 101 {
			continue // 100 Continue, 103 Early Hints: not forwarded.
		}
		return got, nil
	}
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// readHeaders reads header lines up to the blank line, keeping the
// end-to-end ones in h.hdrs and interpreting the framing ones.
func readHeaders(c *upConn, h *respHead) error {
	miss := false
	n := 0 // index of this line among all lines, for the cache
	for {
		raw, err := c.br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return errHeadTooLong
			}
			return err
		}
		line := trimCRLF(raw)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errMalformed // obsolete line folding (RFC 9112 5.2).
		}
		var name, value string
		if n < len(c.hdrCache) && bytes.Equal(c.hdrCache[n].raw, line) {
			name, value = c.hdrCache[n].name, c.hdrCache[n].value
		} else {
			i := bytes.IndexByte(line, ':')
			if i <= 0 {
				return errMalformed
			}
			nb := line[:i]
			if nb[len(nb)-1] == ' ' || nb[len(nb)-1] == '\t' {
				return errMalformed // no whitespace before the colon (RFC 9112 5.1).
			}
			name = canonicalName(nb)
			value = string(bytes.TrimSpace(line[i+1:]))
			miss = true
			if n < maxCachedLines && len(line) <= maxCachedLineLen {
				if n >= len(c.hdrCache) {
					c.hdrCache = append(c.hdrCache, cachedLine{})
				}
				e := &c.hdrCache[n]
				e.raw = append(e.raw[:0], line...)
				e.name, e.value = name, value
			}
		}
		n++
		switch name {
		case "Content-Length":
			l, ok := parseLength(value)
			if !ok || (h.length >= 0 && h.length != l) {
				return errMalformed
			}
			h.length, h.lengthStr = l, value
			continue
		case "Transfer-Encoding":
			// Only "chunked" as the final coding is understood; anything
			// else is read until close, as RFC 9112 6.3 says.
			h.chunked = strings.EqualFold(strings.TrimSpace(lastToken(value)), "chunked")
			if !h.chunked {
				h.keepAlive = false
			}
			continue
		case "Connection":
			if hasToken(value, "close") {
				h.keepAlive = false
			} else if h.http10 && hasToken(value, "keep-alive") {
				h.keepAlive = true
			}
			if h.connToks == "" {
				h.connToks = value
			} else {
				h.connToks += "," + value
			}
			continue
		case "Upgrade":
			h.upgrade = true
			continue
		case "Keep-Alive", "Proxy-Connection", "Te", "Trailer":
			continue
		case "Via":
			h.via = value
			continue
		}
		h.hdrs = append(h.hdrs, headerKV{name, value})
	}
	if miss && n < len(c.hdrCache) {
		c.hdrCache = c.hdrCache[:n]
	}
	if h.chunked {
		h.length = -1 // Transfer-Encoding overrides Content-Length.
	} else if h.length >= 0 {
		// Relayed so the client gets the same framing (and HEAD/304 answers
		// keep their length), instead of net/http chunking the body.
		h.hdrs = append(h.hdrs, headerKV{"Content-Length", h.lengthStr})
	}
	if h.connToks != "" {
		h.hdrs = dropConnNamed(h.hdrs, h.connToks)
	}
	return nil
}

const (
	maxCachedLines   = 32
	maxCachedLineLen = 512
)

// commonNames interns canonical names of frequent headers, keyed by the
// spellings upstreams actually send (canonical and lower case), so that a
// cache miss still avoids allocating the name.
var commonNames = func() map[string]string {
	names := []string{"Accept-Ranges", "Age", "Cache-Control", "Connection", "Content-Encoding",
		"Content-Language", "Content-Length", "Content-Type", "Date", "Etag", "Expires",
		"Keep-Alive", "Last-Modified", "Location", "Server", "Set-Cookie", "Transfer-Encoding",
		"Upgrade", "Vary", "Via", "X-Powered-By", "Access-Control-Allow-Origin",
		"Access-Control-Allow-Credentials", "Strict-Transport-Security", "Www-Authenticate",
		"X-Request-Id", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
		"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Retry-After",
		"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Te", "Trailer", "Proxy-Connection"}
	m := make(map[string]string, 3*len(names))
	for _, n := range names {
		m[n] = n
		m[strings.ToLower(n)] = n
	}
	m["ETag"] = "Etag"
	m["WWW-Authenticate"] = "Www-Authenticate"
	return m
}()

func canonicalName(b []byte) string {
	if s, ok := commonNames[string(b)]; ok {
		return s
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func lastToken(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		return v[i+1:]
	}
	return v
}

// hasToken reports whether the comma-separated list v contains tok,
// case-insensitively.
func hasToken(v, tok string) bool {
	for v != "" {
		var t string
		if i := strings.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, ""
		}
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

func hasTokenAny(vs []string, tok string) bool {
	for _, v := range vs {
		if hasToken(v, tok) {
			return true
		}
	}
	return false
}

func dropConnNamed(hs []headerKV, toks string) []headerKV {
	out := hs[:0]
	for _, kv := range hs {
		if !hasToken(toks, kv.name) {
			out = append(out, kv)
		}
	}
	return out
}

// bodyReader yields the upstream response body per its framing, reading
// from the connection's buffered reader. It returns io.EOF at the end of the
// body; done reports whether the body ended cleanly (so the connection may
// be reused when keep-alive).
type bodyReader struct {
	c       *upConn
	timeout time.Duration
	remain  int64 // bytes left: in the body (length) or in the current chunk
	chunked bool
	toClose bool // read until the peer closes
	started bool // a chunk-size line was read, so a chunk's CRLF follows
	done    bool
	err     error
}

func (b *bodyReader) init(c *upConn, h *respHead, timeout time.Duration) {
	*b = bodyReader{c: c, timeout: timeout}
	switch {
	case h.chunked:
		b.chunked = true
	case h.length >= 0:
		b.remain = h.length
		b.done = h.length == 0
	default:
		b.toClose = true
	}
}

// next returns the next piece of body: a slice of the connection buffer
// when bytes are already buffered (no copy), else it reads into buf. The
// slice is valid until the next call.
func (b *bodyReader) next(buf []byte) ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	if b.err != nil {
		return nil, b.err
	}
	br := b.c.br
	if b.chunked && b.remain == 0 {
		if err := b.chunkHeader(); err != nil {
			b.err = err
			return nil, err
		}
		if b.done {
			return nil, io.EOF
		}
	}
	want := len(buf)
	if !b.toClose && int64(want) > b.remain {
		want = int(b.remain)
	}
	var p []byte
	if nb := br.Buffered(); nb > 0 {
		if nb < want {
			want = nb
		}
		p, _ = br.Peek(want)
		br.Discard(want)
	} else {
		b.c.nc.SetReadDeadline(time.Now().Add(b.timeout))
		n, err := br.Read(buf[:want])
		if n == 0 && err != nil {
			if b.toClose && err == io.EOF {
				b.done = true
				return nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.err = err
			return nil, err
		}
		p = buf[:n]
	}
	if !b.toClose {
		b.remain -= int64(len(p))
		// For chunked bodies the CRLF after the chunk data is consumed
		// with the next chunk header.
		if b.remain == 0 && !b.chunked {
			b.done = true
		}
	}
	return p, nil
}

// chunkSize parses the size of a chunk-size line stripped of extensions and
// whitespace: 1 to 15 hex digits, so that it fits an int64, and nothing else.
func chunkSize(l []byte) (int64, bool) {
	if len(l) == 0 || len(l) > 15 {
		return 0, false
	}
	var size int64
	for _, c := range l {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		size = size<<4 | int64(d)
	}
	return size, true
}

// chunkHeader reads the CRLF ending the previous chunk (if any), then the
// next chunk-size line; a zero size consumes the trailer section.
func (b *bodyReader) chunkHeader() error {
	if b.started {
		l, err := b.readLine()
		if err != nil {
			return err
		}
		if len(l) != 0 {
			return errMalformed
		}
	}
	b.started = true
	l, err := b.readLine()
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i] // Chunk extensions are ignored.
	}
	l = bytes.TrimSpace(l)
	size, ok := chunkSize(l)
	if !ok {
		return errMalformed
	}
	if size > 0 {
		b.remain = size
		return nil
	}
	// Last chunk: skip the trailer section up to the blank line.
	for {
		l, err := b.readLine()
		if err != nil {
			return err
		}
		if len(l) == 0 {
			break
		}
	}
	b.done = true
	return nil
}

// readLine reads one CRLF-terminated line of chunk framing.
func (b *bodyReader) readLine() ([]byte, error) {
	br := b.c.br
	if br.Buffered() == 0 {
		b.c.nc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	l, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, errMalformed
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return trimCRLF(l), nil
}
