package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

var chunkedTE = []string{"chunked"}

// reject records why a request is refused and returns readRequest's
// result for status.
func (c *serverConn) reject(status int, why string) (*http.Request, int, string) {
	c.why = why
	return nil, status, errorMessage(status)
}

// readRequest reads and parses the next request head. It returns nil and
// a status to answer (0: just close) when there is no valid request.
func (c *serverConn) readRequest() (r *http.Request, status int, msg string) {
	rd := &c.rd
	rd.timeout, rd.inHead = c.opts.IdleTimeout, false
	rd.awaitHead = true
	if c.br.Buffered() > 0 || rd.hasPending {
		// Pipelined: the head has begun already.
		rd.startHead()
	}
	c.scratch = c.scratch[:0]
	c.lines = c.lines[:0]
	limit := c.opts.MaxHeaderBytes
	first, active := true, false
	lineStart := 0
	reqLineEnd := -1
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(frag) > 0 && !active {
			active = true
			if !c.state.CompareAndSwap(connIdle, connActive) {
				return nil, 0, "" // closed by Shutdown while idle
			}
		}
		c.scratch = append(c.scratch, frag...)
		if len(c.scratch) > limit {
			if reqLineEnd < 0 {
				return c.reject(http.StatusRequestURITooLong, "request line over MaxHeaderBytes")
			}
			return c.reject(statusHeaderTooLarge, "head over MaxHeaderBytes")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if len(c.scratch) > 0 && !isNetTimeout(err) && !errors.Is(err, io.EOF) {
				return c.reject(http.StatusBadRequest, "read error in the head")
			}
			return nil, 0, ""
		}
		end := len(c.scratch)
		// RFC 9112 2.2: the head's lines may end with a bare LF; a CR left
		// at the end of the line is a bare CR, refused with the line.
		line := h1.TrimCRLF(c.scratch[lineStart:end])
		if first {
			first = false
			if len(line) == 0 && lineStart == 0 && reqLineEnd < 0 {
				// RFC 9112 2.2: ignore empty lines before the request line.
				c.scratch = c.scratch[:0]
				first = true
				continue
			}
			reqLineEnd = lineStart + len(line)
			lineStart = end
			continue
		}
		if len(line) == 0 {
			break
		}
		c.lines = append(c.lines, headLine{name0: lineStart, val1: lineStart + len(line)})
		lineStart = end
	}
	return c.parseHead(reqLineEnd)
}

// parseHead validates the head read into c.scratch and fills c.req. Header
// names are canonicalised in place first, so that the whole head becomes
// one string and every name and value is a substring of it: one
// allocation per request for the head, one for its context.
func (c *serverConn) parseHead(reqLineEnd int) (*http.Request, int, string) {
	b := c.scratch
	// Request line (RFC 9112 3): method SP request-target SP HTTP-version.
	rl := b[:reqLineEnd]
	sp1 := bytes.IndexByte(rl, ' ')
	if sp1 <= 0 {
		return c.reject(http.StatusBadRequest, "request line")
	}
	sp2 := sp1 + 1 + bytes.IndexByte(rl[sp1+1:], ' ')
	if sp2 <= sp1+1 {
		return c.reject(http.StatusBadRequest, "request line")
	}
	for _, ch := range rl[:sp1] {
		if !h1.IsTokenChar(ch) {
			return c.reject(http.StatusBadRequest, "method")
		}
	}
	for _, ch := range rl[sp1+1 : sp2] {
		if ch <= ' ' || ch == 0x7f {
			return c.reject(http.StatusBadRequest, "request-target byte")
		}
	}
	var minor int
	switch v := rl[sp2+1:]; string(v) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
		minor = 0
	default:
		// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT; a higher
		// minor version of HTTP/1 is served as the highest one supported.
		if len(v) != 8 || string(v[:5]) != "HTTP/" || !h1.IsDigit(v[5]) || v[6] != '.' || !h1.IsDigit(v[7]) {
			return c.reject(http.StatusBadRequest, "HTTP-version")
		}
		if v[5] != '1' {
			return c.reject(http.StatusHTTPVersionNotSupported, "major version")
		}
		minor = 1
	}
	// Field lines (RFC 9112 5): name ":" OWS value OWS.
	for i := range c.lines {
		l := &c.lines[i]
		line := b[l.name0:l.val1]
		if line[0] == ' ' || line[0] == '\t' {
			return c.reject(http.StatusBadRequest, "obs-fold") // RFC 9112 5.2
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return c.reject(http.StatusBadRequest, "field line without a name and colon")
		}
		name := line[:colon]
		upper := true
		for j, ch := range name {
			if !h1.IsTokenChar(ch) {
				// Whitespace before the colon included (RFC 9112 5.1).
				return c.reject(http.StatusBadRequest, "field name")
			}
			// Canonical form, as textproto.CanonicalMIMEHeaderKey.
			if upper && 'a' <= ch && ch <= 'z' {
				name[j] = ch - ('a' - 'A')
			} else if !upper && 'A' <= ch && ch <= 'Z' {
				name[j] = ch + ('a' - 'A')
			}
			upper = ch == '-'
		}
		v0, v1 := colon+1, len(line)
		for v0 < v1 && (line[v0] == ' ' || line[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (line[v1-1] == ' ' || line[v1-1] == '\t') {
			v1--
		}
		for _, ch := range line[v0:v1] {
			// RFC 9110 5.5: no CTL but HTAB; a bare CR (RFC 9112 2.2) too.
			if (ch < ' ' && ch != '\t') || ch == 0x7f {
				return c.reject(http.StatusBadRequest, "field value byte")
			}
		}
		l.name1 = l.name0 + colon
		l.val0, l.val1 = l.name0+v0, l.name0+v1
	}

	s := string(b) // the head's one allocation
	r := &c.req
	*r = c.base
	r.Method = s[:sp1]
	target := s[sp1+1 : sp2]
	r.ProtoMajor, r.ProtoMinor = 1, minor
	r.Proto = "HTTP/1.1"
	if minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.RemoteAddr = c.remote
	clear(c.hdr)
	r.Header = c.hdr
	clear(c.vals[:cap(c.vals)])
	c.vals = c.vals[:0]

	var (
		hosts, cls, tes            int
		host, cl, te               string
		keepAlive                  = minor == 1
		connClose                  bool
		expectContinue, expectElse bool
	)
	for _, l := range c.lines {
		name, value := s[l.name0:l.name1], s[l.val0:l.val1]
		switch name {
		case "Host":
			hosts++
			host = value
			continue // net/http moves it to Request.Host
		case "Content-Length":
			if cls > 0 && value != cl {
				return c.reject(http.StatusBadRequest, "different Content-Length values")
			}
			cls++
			cl = value
		case "Transfer-Encoding":
			tes++
			te = value
			continue // reported in Request.TransferEncoding
		case "Connection":
			if h1.HasToken(value, "close") {
				connClose = true
			} else if h1.HasToken(value, "keep-alive") {
				keepAlive = true
			}
		case "Expect":
			// The server answers the expectation; it is not passed on.
			if h1.EqualFoldASCII(value, "100-continue") {
				expectContinue = true
			} else {
				cont, other := expectMembers(value)
				expectContinue, expectElse = expectContinue || cont, expectElse || other
			}
			continue
		}
		if old, ok := c.hdr[name]; ok {
			c.hdr[name] = append(old, value)
			continue
		}
		n := len(c.vals)
		c.vals = append(c.vals, value)
		c.hdr[name] = c.vals[n : n+1 : n+1]
	}
	// RFC 9112 3.2: one valid Host, required in HTTP/1.1.
	if hosts > 1 || (hosts == 0 && minor == 1) || !h1.ValidHost(host) {
		return c.reject(http.StatusBadRequest, "Host")
	}
	r.Host = host
	r.Close = connClose || !keepAlive

	// The request-target (RFC 9112 3.2), without a fragment: none belongs
	// in a request-target, and it must never reach an upstream.
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	r.RequestURI = target
	if r.Method == http.MethodConnect {
		// Authority-form (3.2.3) is CONNECT's alone, and the runtime is
		// no forward proxy: nginx (so Kong) answers CONNECT 405.
		return c.reject(http.StatusMethodNotAllowed, "CONNECT")
	}
	switch {
	case len(target) > 0 && target[0] == '/':
		// Origin-form (3.2.1). Paths made only of characters that need no
		// escaping are taken as they are; anything else goes through
		// net/url.
		path, query, hasQuery := target, "", false
		if i := strings.IndexByte(target, '?'); i >= 0 {
			path, query, hasQuery = target[:i], target[i+1:], true
		}
		c.url = url.URL{}
		if h1.PlainPath(path) {
			c.url.Path, c.url.RawQuery, c.url.ForceQuery = path, query, hasQuery && query == ""
			if strings.ContainsAny(path, "!'()*") {
				// net/url escapes these when it re-encodes a path, so it
				// keeps the path as sent in RawPath.
				c.url.RawPath = path
			}
			r.URL = &c.url
		} else {
			u, err := url.ParseRequestURI(target)
			if err != nil {
				return c.reject(http.StatusBadRequest, "origin-form target")
			}
			r.URL = u
		}
	case target == "*":
		// Asterisk-form (3.2.4) is OPTIONS' alone; Serve answers it.
		if r.Method != http.MethodOptions {
			return c.reject(http.StatusBadRequest, "asterisk-form without OPTIONS")
		}
		c.url = url.URL{Path: "*"}
		r.URL = &c.url
	default:
		// Absolute-form (3.2.2) of an http or https URI: it has a host
		// (RFC 9110 4.2.1) and no userinfo (4.2.4), and its authority is
		// the request's host, whatever the Host field says.
		if !hasHTTPScheme(target) {
			return c.reject(http.StatusBadRequest, "request-target form")
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" || !h1.ValidHost(u.Host) {
			return c.reject(http.StatusBadRequest, "absolute-form target")
		}
		r.URL = u
		r.Host = u.Host
	}

	// Body framing (RFC 9112 6.3).
	c.body.reset()
	r.Body, r.ContentLength = http.NoBody, 0
	switch {
	case tes > 0 && cls > 0:
		// Both framings at once is a smuggling attempt or a broken
		// client; 6.3 (3) says to handle it as an error.
		return c.reject(http.StatusBadRequest, "Transfer-Encoding with Content-Length")
	case tes > 1:
		// As nginx: a second Transfer-Encoding line is refused rather than
		// combined, so that no two parsers can frame the body differently.
		return c.reject(http.StatusBadRequest, "Transfer-Encoding on several lines")
	case tes == 1:
		if minor == 0 {
			// 6.1: HTTP/1.0 with Transfer-Encoding has faulty framing.
			return c.reject(http.StatusBadRequest, "Transfer-Encoding in HTTP/1.0")
		}
		if status := checkTransferEncoding(te); status != 0 {
			return c.reject(status, "Transfer-Encoding "+te)
		}
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		c.body.chunked = true
		r.Body = &c.body
	case cls > 0:
		n, ok := h1.ParseLength(trimZeros(cl))
		if !ok {
			return c.reject(http.StatusBadRequest, "Content-Length value")
		}
		r.ContentLength = n
		if n > 0 {
			c.body.remain = n
			r.Body = &c.body
		}
	}
	// RFC 9110 10.1.1: an expectation other than 100-continue is answered
	// 417; 100-continue in HTTP/1.0 is ignored.
	if expectElse {
		return c.reject(http.StatusExpectationFailed, "expectation")
	}
	if expectContinue && r.Body != http.NoBody && minor == 1 {
		c.body.expect = true
	}
	if r.Body != http.NoBody {
		c.rd.inHead, c.rd.timeout = false, c.opts.BodyTimeout
	} else {
		c.rd.inHead, c.rd.timeout = false, 0
	}
	rc := &c.ctx
	rc.reset()
	c.beginRequest(rc, r.Body != http.NoBody)
	return r, 0, ""
}

// hasHTTPScheme reports whether t starts with "http://" or "https://", in
// any case (RFC 3986 3.1).
func hasHTTPScheme(t string) bool {
	return len(t) > 7 && h1.EqualFoldASCII(t[:7], "http://") || len(t) > 8 && h1.EqualFoldASCII(t[:8], "https://")
}

// checkTransferEncoding judges a request's Transfer-Encoding list (RFC
// 9112 6.1, 6.3): 0 when chunked is the final coding and the only one; 400
// when chunked is not final (the length cannot be determined) or comes
// twice; 501 when another coding precedes it (not understood). Empty list
// elements are no codings (RFC 9110 5.6.1).
func checkTransferEncoding(te string) int {
	if h1.EqualFoldASCII(te, "chunked") {
		return 0
	}
	var codings, chunked int
	other, lastChunked := false, false
	for te != "" {
		var e string
		e, te, _ = strings.Cut(te, ",")
		e = strings.Trim(e, " \t")
		if e == "" {
			continue
		}
		codings++
		lastChunked = h1.EqualFoldASCII(e, "chunked")
		if lastChunked {
			chunked++
		} else {
			other = true
		}
	}
	switch {
	case !lastChunked || chunked > 1:
		return http.StatusBadRequest
	case other:
		return http.StatusNotImplemented
	}
	return 0
}

// expectMembers reads an Expect field value (RFC 9110 10.1.1: a list of
// expectations) and reports whether it holds 100-continue and whether it
// holds anything else.
func expectMembers(v string) (cont, other bool) {
	for v != "" {
		var e string
		e, v, _ = strings.Cut(v, ",")
		if e = strings.Trim(e, " \t"); e == "" {
			continue
		}
		if h1.EqualFoldASCII(e, "100-continue") {
			cont = true
		} else {
			other = true
		}
	}
	return cont, other
}

// trimZeros drops the leading zeros of a decimal or hex number, keeping
// one digit, so that a length's bound counts only its significant digits.
func trimZeros[T string | []byte](s T) T {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
