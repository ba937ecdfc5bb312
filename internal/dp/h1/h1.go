// Package h1 holds the HTTP/1.1 wire primitives shared by the runtime's
// server loop (internal/dp/h1server), its upstream client
// (internal/dp/h1client) and the proxy that joins them: character classes of
// RFC 9110/9112, number and token parsing, status lines and dates, and the one
// header-field writer used in both directions.
//
// Everything here is allocation-free on the hot path and safe for concurrent
// use.
package h1

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// IsTokenChar reports whether ch may appear in an RFC 9110 token (method,
// header field name).
func IsTokenChar(ch byte) bool { return ch < 0x80 && tokenTable[ch] }

// PlainPath reports whether p has only characters that a URL path keeps
// unescaped, so that url.URL{Path: p} is what net/url would parse.
func PlainPath(p string) bool { return allIn(&pathTable, p) }

// ValidHost accepts the characters a Host header may carry (reg-name, IPv4,
// bracketed IPv6, port), as net/http's check does.
func ValidHost(h string) bool { return allIn(&hostTable, h) }

var (
	tokenTable = alnumAnd("!#$%&'*+-.^_`|~")
	pathTable  = alnumAnd("-._~!$&'()*+,;=:@/")
	hostTable  = alnumAnd("-._~!$&'()*+,;=:[]%")
)

// alnumAnd returns the table of the ASCII letters and digits and the bytes of extra.
func alnumAnd(extra string) (t [128]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range extra {
		t[ch] = true
	}
	return
}

// allIn reports whether every byte of s is ASCII and set in t.
func allIn(t *[128]bool, s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x80 || !t[ch] {
			return false
		}
	}
	return true
}

// IsDigit reports whether ch is an ASCII digit.
func IsDigit(ch byte) bool { return '0' <= ch && ch <= '9' }

// EqualFoldASCII reports whether a and b are equal ignoring ASCII case.
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ParseLength parses a Content-Length value: 1 to 18 decimal digits and
// nothing else (no sign, no spaces, no list), so it always fits an int64.
func ParseLength(s string) (int64, bool) {
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

// ChunkSize parses the size of a chunk-size line stripped of extensions and
// whitespace: 1 to 15 hex digits, so that it fits an int64, and nothing else.
func ChunkSize(l []byte) (int64, bool) {
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

// TrimCRLF removes a trailing LF and then a CR before it, if present.
func TrimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// CutCRLF removes the CRLF that ends b and reports whether b ended with
// one. Unlike TrimCRLF it accepts no bare LF: chunked framing is read
// strictly, so that no two parsers can disagree on where a chunk ends.
func CutCRLF(b []byte) ([]byte, bool) {
	if n := len(b); n >= 2 && b[n-2] == '\r' && b[n-1] == '\n' {
		return b[:n-2], true
	}
	return b, false
}

// LastToken returns the last element of the comma-separated list v,
// untrimmed.
func LastToken(v string) string {
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		return v[i+1:]
	}
	return v
}

// HasToken reports whether the comma-separated list v contains tok,
// case-insensitively.
func HasToken(v, tok string) bool {
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

// HasTokenAny reports whether any of the lists vs contains tok.
func HasTokenAny(vs []string, tok string) bool {
	for _, v := range vs {
		if HasToken(v, tok) {
			return true
		}
	}
	return false
}

// AppendInt appends the decimal form of n ≥ 0 to b.
func AppendInt(b []byte, n int64) []byte {
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

// AppendHex appends the lower-case hexadecimal form of n ≥ 0 to b.
func AppendHex(b []byte, n int) []byte {
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

// ValidFieldName reports whether k is a non-empty token, so that writing it
// as a header name cannot split or corrupt the head.
func ValidFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte[k[i]] {
			return false
		}
	}
	return true
}

// tokenByte is tokenTable over every byte value, so that a name is checked
// with one load per byte.
var tokenByte = func() (t [256]bool) {
	copy(t[:], tokenTable[:])
	return
}()

// WriteFieldValue writes v with every CR, LF and NUL replaced by a space, so
// that no value, whoever produced it (a client, an upstream, a plugin
// template), can end the field line or inject another field.
func WriteFieldValue(bw *bufio.Writer, v string) {
	if breaksLine(v) {
		writeNeutralised(bw, v)
		return
	}
	_, _ = bw.WriteString(v)
}

// appendNeutralised appends v with CR, LF and NUL replaced by spaces.
func appendNeutralised(b []byte, v string) []byte {
	for j := 0; j < len(v); j++ {
		ch := v[j]
		if ch == '\r' || ch == '\n' || ch == 0 {
			ch = ' '
		}
		b = append(b, ch)
	}
	return b
}

// writeNeutralised writes v with CR, LF and NUL replaced by spaces.
func writeNeutralised(bw *bufio.Writer, v string) {
	for j := 0; j < len(v); j++ {
		ch := v[j]
		if ch == '\r' || ch == '\n' || ch == 0 {
			ch = ' '
		}
		_ = bw.WriteByte(ch)
	}
}

// breaksLine reports whether v has a CR, LF or NUL. Every header value
// written passes here, so it tests words of eight (or four) bytes at a time
// for a byte below 0x0e, which those three are, and looks closer only when
// a word has one: most values need a few word tests and no byte loop.
func breaksLine(v string) bool {
	n := len(v)
	switch {
	case n >= 8:
		for i := 0; i < n; i += 8 {
			if i > n-8 {
				i = n - 8 // The last word overlaps the one before.
			}
			if lowByte8(uint64(v[i]) | uint64(v[i+1])<<8 | uint64(v[i+2])<<16 | uint64(v[i+3])<<24 |
				uint64(v[i+4])<<32 | uint64(v[i+5])<<40 | uint64(v[i+6])<<48 | uint64(v[i+7])<<56) {
				return hasBreak(v)
			}
		}
		return false
	case n >= 4:
		if lowByte4(uint32(v[0])|uint32(v[1])<<8|uint32(v[2])<<16|uint32(v[3])<<24) ||
			lowByte4(uint32(v[n-4])|uint32(v[n-3])<<8|uint32(v[n-2])<<16|uint32(v[n-1])<<24) {
			return hasBreak(v)
		}
		return false
	}
	return hasBreak(v)
}

// lowByte8 reports whether a byte of w is below 0x0e (exactly: the lowest
// such byte always sets its high bit in the result).
func lowByte8(w uint64) bool { return (w-0x0e0e0e0e0e0e0e0e)&^w&0x8080808080808080 != 0 }

// lowByte4 is lowByte8 for four bytes.
func lowByte4(w uint32) bool { return (w-0x0e0e0e0e)&^w&0x80808080 != 0 }

// hasBreak is breaksLine one byte at a time.
func hasBreak(v string) bool {
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch == '\r' || ch == '\n' || ch == 0 {
			return true
		}
	}
	return false
}

// WriteField writes "name: value\r\n" with the value neutralised by
// WriteFieldValue. A name that is not a token is not written at all and
// WriteField reports false. Errors surface on the writer's Flush.
func WriteField(bw *bufio.Writer, name, value string) bool {
	if !ValidFieldName(name) {
		return false
	}
	if len(name)+len(value)+4 <= bw.Available() {
		// The common case, in one Write: the line is built in the
		// writer's own free space.
		b := append(bw.AvailableBuffer(), name...)
		b = append(b, ':', ' ')
		if breaksLine(value) {
			b = appendNeutralised(b, value)
		} else {
			b = append(b, value...)
		}
		b = append(b, '\r', '\n')
		_, _ = bw.Write(b)
		return true
	}
	_, _ = bw.WriteString(name)
	_, _ = bw.WriteString(": ")
	WriteFieldValue(bw, value)
	_, _ = bw.WriteString("\r\n")
	return true
}

// statusLines holds "HTTP/1.1 <code> <reason>\r\n" for every code.
var statusLines = func() (t [1000]string) {
	for code := 100; code < 1000; code++ {
		t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
	}
	return
}()

// StatusLine returns "HTTP/1.1 <code> <reason>\r\n" for 100 ≤ code ≤ 999.
func StatusLine(code int) string { return statusLines[code] }

type dateEntry struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[dateEntry]

// Date returns the current time in IMF-fixdate, formatted once a second.
func Date() string {
	now := time.Now()
	sec := now.Unix()
	if e := dateCache.Load(); e != nil && e.sec == sec {
		return e.s
	}
	e := &dateEntry{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(e)
	return e.s
}

// OriginTarget returns r's request target in origin form (path and query):
// the target as received when the client sent origin form, else the path
// and query of the parsed absolute-form URL. The router and the upstream
// request line both use it, so that they see the same path.
func OriginTarget(r *http.Request) string {
	if u := r.RequestURI; u != "" && u[0] == '/' {
		return u
	}
	return r.URL.RequestURI()
}
