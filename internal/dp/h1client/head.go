package h1client

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// Field is one response header field kept for the client.
type Field struct{ Name, Value string }

// Head is a parsed upstream response head. Its Fields slice is reused:
// Reset keeps its capacity, so a Head kept per request (pooled) parses
// without allocating.
type Head struct {
	// Status is the final status code (interim 1xx heads other than 101
	// are skipped).
	Status int
	// Length is the Content-Length, -1 when absent or when the body is
	// chunked.
	Length int64
	// Chunked reports a chunked body.
	Chunked bool
	// Bodyless reports a response that has no body whatever its framing
	// fields say: to a HEAD request, or 1xx, 204 and 304 (RFC 9112 6.3).
	Bodyless bool
	// Fields are the end-to-end fields in the order received: hop-by-hop
	// ones, those the Connection field names, Transfer-Encoding and Via
	// are left out; Content-Length is kept (last) so that the client gets
	// the same framing.
	Fields []Field
	// Via is the upstream's Via value, kept apart because a proxy appends
	// to it.
	Via string

	http10    bool
	keepAlive bool   // the connection may be reused after the body
	hasLength bool   // a Content-Length field was received
	hasTE     bool   // a Transfer-Encoding field was received
	lengthStr string // Content-Length as received, relayed to the client
	connToks  string // Connection value(s), naming extra hop-by-hop fields
}

// Reset empties h, keeping the capacity of Fields.
func (h *Head) Reset() {
	clear(h.Fields)
	*h = Head{Fields: h.Fields[:0], Length: -1}
}

// headBudget is what is left of the bounds of one head or trailer section.
type headBudget struct{ bytes, fields int }

// take accounts for one line of n bytes, field or not, and reports whether
// the budget still holds.
func (b *headBudget) take(n int, field bool) bool {
	b.bytes -= n
	if field {
		b.fields--
	}
	return b.bytes >= 0 && b.fields >= 0
}

// ReadHead reads the response head into h, skipping interim 1xx heads
// other than 101, within the read timeout given to Begin for the whole
// head. method is the request's: the answer to HEAD has no body. got
// reports whether any byte arrived, which decides whether a failure on a
// reused connection may be retried. A head over Options.MaxHeaderBytes or
// MaxHeaderFields is ErrHeadTooLarge.
func (c *Conn) ReadHead(h *Head, method string) (got bool, err error) {
	if !c.readArmed {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
	c.readArmed = false
	opts := &c.pool.t.opts
	budget := headBudget{bytes: opts.MaxHeaderBytes, fields: opts.MaxHeaderFields}
	interimFraming := false
	for {
		h.Reset()
		raw, err := c.br.ReadSlice('\n')
		if len(raw) > 0 {
			got = true
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return got, ErrHeadTooLarge
			}
			return got, err
		}
		if !budget.take(len(raw), false) {
			return got, ErrHeadTooLarge
		}
		line := h1.TrimCRLF(raw)
		// "HTTP/1.1 200 OK"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return got, ErrMalformed
		}
		h.http10 = line[7] == '0'
		h.keepAlive = !h.http10
		s0, s1, s2 := line[9], line[10], line[11]
		if s0 < '1' || s0 > '5' || s1 < '0' || s1 > '9' || s2 < '0' || s2 > '9' || (len(line) > 12 && line[12] != ' ') {
			return got, ErrMalformed
		}
		h.Status = int(s0-'0')*100 + int(s1-'0')*10 + int(s2-'0')
		if err := c.readFields(h, &budget); err != nil {
			return got, err
		}
		if h.Status >= 100 && h.Status < 200 && h.Status != http.StatusSwitchingProtocols {
			// 100 Continue, 103 Early Hints: not forwarded. One that
			// declares a body has framing nobody can trust.
			interimFraming = interimFraming || h.hasLength || h.hasTE
			continue
		}
		break
	}
	h.Bodyless = method == http.MethodHead || h.Status < 200 || h.Status == http.StatusNoContent || h.Status == http.StatusNotModified
	c.reusable = h.keepAlive && !interimFraming && !framingDoubt(h)
	if h.Bodyless || (!h.Chunked && h.Length == 0) {
		c.state = stateDone
	} else {
		c.state = stateBody
	}
	return got, nil
}

// framingDoubt reports a head after which the connection must not carry
// another exchange, because the two ends may disagree on where this
// response ends (RFC 9112 6.1, 6.3).
func framingDoubt(h *Head) bool {
	switch {
	case h.Status == http.StatusSwitchingProtocols:
		return true // The connection is the upgraded protocol's now.
	case (h.Status < 200 || h.Status == http.StatusNoContent) && (h.hasLength || h.hasTE):
		return true // A 1xx or 204 must not declare a body.
	case h.hasTE && (h.hasLength || h.http10):
		return true // Possible smuggling; faulty framing on HTTP/1.0.
	case !h.Bodyless && !h.Chunked && h.Length < 0:
		return true // The body runs until the connection closes.
	}
	return false
}

// readFields reads field lines up to the blank line, keeping the
// end-to-end ones in h.Fields and interpreting the framing ones.
func (c *Conn) readFields(h *Head, budget *headBudget) error {
	miss := false
	n := 0 // index of this line among all lines, for the cache
	for {
		raw, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return ErrHeadTooLarge
			}
			return err
		}
		line := h1.TrimCRLF(raw)
		if !budget.take(len(raw), len(line) > 0) {
			return ErrHeadTooLarge
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrMalformed // Obsolete line folding (RFC 9112 5.2).
		}
		var name, value string
		if n < len(c.hdrCache) && bytes.Equal(c.hdrCache[n].raw, line) {
			name, value = c.hdrCache[n].name, c.hdrCache[n].value
		} else {
			i := bytes.IndexByte(line, ':')
			if i <= 0 {
				return ErrMalformed
			}
			nb := line[:i]
			if nb[len(nb)-1] == ' ' || nb[len(nb)-1] == '\t' {
				return ErrMalformed // No whitespace before the colon (RFC 9112 5.1).
			}
			name = canonicalName(nb)
			value = string(bytes.TrimSpace(line[i+1:]))
			miss = true
			if n < maxCachedLines && len(line) <= maxCachedLineLen {
				// Entries are positional: lines too long to cache leave
				// empty entries, which match no line.
				for len(c.hdrCache) <= n {
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
			l, ok := h1.ParseLength(value)
			if !ok || (h.hasLength && h.Length != l) {
				return ErrMalformed
			}
			h.Length, h.lengthStr, h.hasLength = l, value, true
			continue
		case "Transfer-Encoding":
			// Only "chunked" as the final coding is understood; anything
			// else is read until close, as RFC 9112 6.3 says.
			h.hasTE = true
			h.Chunked = strings.EqualFold(strings.TrimSpace(h1.LastToken(value)), "chunked")
			if !h.Chunked {
				h.keepAlive = false
			}
			continue
		case "Connection":
			if h1.HasToken(value, "close") {
				h.keepAlive = false
			} else if h.http10 && h1.HasToken(value, "keep-alive") {
				h.keepAlive = true
			}
			if h.connToks == "" {
				h.connToks = value
			} else {
				h.connToks += "," + value
			}
			continue
		case "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade":
			continue
		case "Via":
			h.Via = value
			continue
		}
		h.Fields = append(h.Fields, Field{name, value})
	}
	if miss && n < len(c.hdrCache) {
		c.hdrCache = c.hdrCache[:n]
	}
	if h.Chunked {
		h.Length = -1 // Transfer-Encoding overrides Content-Length.
	} else if h.hasLength {
		// Relayed so the client gets the same framing (and HEAD/304 answers
		// keep their length), instead of its server chunking the body.
		h.Fields = append(h.Fields, Field{"Content-Length", h.lengthStr})
	}
	if h.connToks != "" {
		h.Fields = dropConnNamed(h.Fields, h.connToks)
	}
	return nil
}

// cachedLine is one remembered response header line.
type cachedLine struct {
	raw   []byte // the line as received, without CRLF
	name  string // canonical header name
	value string
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

// dropConnNamed removes the fields that the Connection value toks names.
func dropConnNamed(fs []Field, toks string) []Field {
	out := fs[:0]
	for _, f := range fs {
		if !h1.HasToken(toks, f.Name) {
			out = append(out, f)
		}
	}
	clear(fs[len(out):])
	return out
}
