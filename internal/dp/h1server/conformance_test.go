package h1server

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// parsed is what the server made of the first request of a connection's
// bytes: its own answer (status), or the request the handler would see and
// its body.
type parsed struct {
	status  int // the server's own answer; 0 when the request is accepted
	req     *http.Request
	body    []byte
	bodyErr error
}

// parseFirst runs the server's parser and body reader over data as one
// connection would, and returns the first request. The request is copied:
// the connection reuses its own.
func parseFirst(srv *Server, data []byte) parsed {
	c := &serverConn{s: srv, remote: "192.0.2.1:1234"}
	c.init(nil, bytes.NewReader(data), io.Discard)
	r, status, _ := c.readRequest()
	if r == nil {
		return parsed{status: status}
	}
	rc := *r
	u := *r.URL
	rc.URL = &u
	rc.Header = r.Header.Clone()
	body, err := io.ReadAll(r.Body)
	return parsed{req: &rc, body: body, bodyErr: err}
}

// fields renders what a row can check of an accepted request.
func fields(p parsed) map[string]string {
	r := p.req
	m := map[string]string{
		"method":  r.Method,
		"uri":     r.RequestURI,
		"origin":  h1.OriginTarget(r),
		"path":    r.URL.Path,
		"query":   r.URL.RawQuery,
		"urluri":  r.URL.RequestURI(),
		"host":    r.Host,
		"proto":   r.Proto,
		"close":   strconv.FormatBool(r.Close),
		"cl":      strconv.FormatInt(r.ContentLength, 10),
		"te":      strings.Join(r.TransferEncoding, ","),
		"body":    string(p.body),
		"bodyerr": fmt.Sprint(p.bodyErr != nil),
	}
	for k, vv := range r.Header {
		m["hdr:"+k] = strings.Join(vv, "|")
	}
	return m
}

// kv builds a row's expected fields from name, value pairs.
func kv(pairs ...string) map[string]string {
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// conformance rows outcomes besides a status.
const (
	ok      = 0  // accepted; the fields listed are checked
	badBody = -1 // the head is accepted; reading the body fails, so the handler sees an error and the connection ends after its answer
)

// confRow is one rule of RFC 9112 (or RFC 9110 where named), the raw bytes
// of a request exercising it, and the outcome: the status the server
// answers itself, ok, or badBody.
type confRow struct {
	sec, rule string
	raw       string
	want      int
	fields    map[string]string
}

const confMaxHeaderBytes = 1024

// conformanceRows is the conformance table. Its rows also seed
// FuzzDifferential's corpus (TestConformanceSeeds).
var conformanceRows = []confRow{
	// Message format and line endings.
	{"2.1", "a request line, fields, an empty line", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("method", "GET", "uri", "/", "path", "/", "host", "h", "proto", "HTTP/1.1", "close", "false", "cl", "0", "body", "")},
	{"2.2", "a server SHOULD ignore at least one empty line (CRLF) received before the request-line", "\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("path", "/x")},
	{"2.2", "several empty lines before the request-line are ignored too", "\r\n\r\n\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("path", "/x")},
	{"2.2", "a recipient MAY recognize a single LF as a line terminator in the start-line and fields", "GET /lf HTTP/1.1\nHost: h\nX-A: b\n\n", ok, kv("path", "/lf", "hdr:X-A", "b")},
	{"2.2", "a bare CR in the request-line is invalid", "GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"2.2", "a bare CR before the request-line's CRLF is invalid", "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", 400, nil},
	{"2.2", "a bare CR in a field value is invalid", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\rc\r\n\r\n", 400, nil},
	{"2.2", "a bare CR at the end of a field line is invalid", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\r\n\r\n", 400, nil},
	{"2.2", "a bare CR in a field name is invalid", "GET / HTTP/1.1\r\nHost: h\r\nX\rA: b\r\n\r\n", 400, nil},

	// Request line.
	{"3", "request-line = method SP request-target SP HTTP-version", "GARBAGE\r\n\r\n", 400, nil},
	{"3", "no HTTP-version (HTTP/0.9 form) is refused", "GET /\r\n\r\n", 400, nil},
	{"3", "two spaces between method and target", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3", "HTAB as a separator", "GET\t/\tHTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3", "trailing space after the version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, nil},
	{"3", "a space inside the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3", "an empty target", "GET  HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3", "a request-target longer than the server parses is answered 414", "GET /" + strings.Repeat("a", confMaxHeaderBytes) + " HTTP/1.1\r\nHost: h\r\n\r\n", 414, nil},

	// Methods (RFC 9110 9.1: method = token, case-sensitive).
	{"3.1", "the method is case-sensitive and kept as sent", "get / HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("method", "get")},
	{"3.1", "an extension method is any token", "M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("method", "M-SEARCH")},
	{"3.1", "a method with a non-token character", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.1", "an empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.1", "NUL in the method", "G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.3", "CONNECT is answered 405: the runtime is no forward proxy (nginx since 1.21.1, so Kong)", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, nil},

	// Request targets.
	{"3.2.1", "origin-form: absolute-path and query", "GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "/a/b?x=1&y", "origin", "/a/b?x=1&y", "path", "/a/b", "query", "x=1&y")},
	{"3.2.1", "origin-form: an empty query is kept", "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "/a?", "urluri", "/a?", "query", "")},
	{"3.2.1", "origin-form: percent-encoding is decoded in URL.Path, kept in RequestURI", "GET /a%20b/%2F?q HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "/a%20b/%2F?q", "path", "/a b//", "urluri", "/a%20b/%2F?q")},
	{"3.2.1", "origin-form: sub-delimiters stay as sent in URL.RequestURI", "GET /a!b'(c)*d$e HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("path", "/a!b'(c)*d$e", "urluri", "/a!b'(c)*d$e")},
	{"3.2.1", "origin-form: bytes above 0x7f are taken as net/url takes them", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("path", "/\xc3\xa9")},
	{"3.2.1", "origin-form: invalid percent-encoding", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.1", "a relative target is no request-target form", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.1", "a control byte in the target", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.1", "DEL in the target", "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.1", "NUL in the target", "GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2", "a fragment is no part of a request-target: stripped (as nginx does), from RequestURI too", "GET /a?b=1#frag HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "/a?b=1", "origin", "/a?b=1", "path", "/a", "query", "b=1")},
	{"3.2", "a fragment right after the path is stripped", "GET /a#f?x HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "/a", "path", "/a", "query", "")},
	{"3.2.2", "absolute-form: the target's authority is the host; the Host field is ignored", "GET http://abs.example/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", ok, kv("uri", "http://abs.example/p?q=1", "origin", "/p?q=1", "path", "/p", "query", "q=1", "host", "abs.example")},
	{"3.2.2", "absolute-form: the fragment is stripped", "GET http://abs.example/p?q#f HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "http://abs.example/p?q", "origin", "/p?q", "query", "q")},
	{"3.2.2", "absolute-form: an empty path is / in origin form", "GET http://abs.example HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("origin", "/", "path", "", "host", "abs.example")},
	{"3.2.2", "absolute-form: a query without a path", "GET http://abs.example?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("origin", "/?x=1", "query", "x=1")},
	{"3.2.2", "absolute-form: https, a port, a scheme in capitals (RFC 3986 3.1)", "GET HTTPS://abs.example:8443/p HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("origin", "/p", "host", "abs.example:8443")},
	{"3.2.2", "absolute-form: percent-encoded path", "GET http://abs.example/a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("origin", "/a%2Fb", "path", "/a/b")},
	{"3.2.2", "absolute-form: HTTP/1.0 without Host", "GET http://abs.example/p HTTP/1.0\r\n\r\n", ok, kv("host", "abs.example", "origin", "/p")},
	{"3.2.2", "absolute-form: an http URI with an empty host MUST be rejected (RFC 9110 4.2.1)", "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.2", "absolute-form: userinfo in an http URI is an error (RFC 9110 4.2.4)", "GET http://user:pw@abs.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.2", "absolute-form: only http and https are served", "GET ftp://abs.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.2", "absolute-form: no authority", "GET http:p HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.2", "absolute-form: an invalid host", "GET http://a\"b/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"3.2.3", "authority-form is only for CONNECT", "GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, nil},
	{"3.2.4", "asterisk-form is for OPTIONS (the server answers it itself)", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("uri", "*", "method", "OPTIONS")},
	{"3.2.4", "asterisk-form with another method", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, nil},

	// Versions.
	{"2.3", "HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", ok, kv("proto", "HTTP/1.0", "close", "true")},
	{"2.3", "a higher minor version of HTTP/1 is served as HTTP/1.1", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", ok, kv("proto", "HTTP/1.1", "close", "false")},
	{"2.3", "HTTP/1.9 is served as HTTP/1.1", "GET / HTTP/1.9\r\nHost: h\r\nConnection: close\r\n\r\n", ok, kv("proto", "HTTP/1.1", "close", "true")},
	{"2.3", "a major version other than 1 is answered 505 (RFC 9110 15.6.6)", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, nil},
	{"2.3", "HTTP/3.0 is answered 505", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505, nil},
	{"2.3", "HTTP/0.9 is answered 505", "GET / HTTP/0.9\r\n\r\n", 505, nil},
	{"2.3", "HTTP-version is one digit . one digit", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400, nil},
	{"2.3", "HTTP-name is case-sensitive", "GET / http/1.1\r\nHost: h\r\n\r\n", 400, nil},
	{"2.3", "a version without a minor digit", "GET / HTTP/1\r\nHost: h\r\n\r\n", 400, nil},
	{"2.3", "a version with a non-digit", "GET / HTTP/a.1\r\nHost: h\r\n\r\n", 400, nil},

	// Field syntax.
	{"5.1", "OWS around the value is not part of it", "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t b c \t\r\n\r\n", ok, kv("hdr:X-A", "b c")},
	{"5.1", "an empty value", "GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n\r\n", ok, kv("hdr:X-A", "")},
	{"5.1", "field names are case-insensitive (canonicalised); repeated lines keep their order", "GET / HTTP/1.1\r\nHost: h\r\nx-test: a\r\nX-TEST: b\r\n\r\n", ok, kv("hdr:X-Test", "a|b")},
	{"5.1", "a server MUST reject whitespace between a field name and the colon with 400", "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 400, nil},
	{"5.1", "HTAB between a field name and the colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\t: b\r\n\r\n", 400, nil},
	{"5.1", "a field line without a colon", "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 400, nil},
	{"5.1", "an empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", 400, nil},
	{"5.1", "a field name with a non-token character", "GET / HTTP/1.1\r\nHost: h\r\nX(A: b\r\n\r\n", 400, nil},
	{"5.1", "NUL in a field name", "GET / HTTP/1.1\r\nHost: h\r\nX\x00A: b\r\n\r\n", 400, nil},
	{"5.2", "obs-fold: a server MUST reject it with 400 or replace it (we reject)", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n", 400, nil},
	{"5.2", "whitespace before the first field line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, nil},
	{"5.5", "RFC 9110 5.5: HTAB and obs-text in a value are valid", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\tb\x80\xff\r\n\r\n", ok, kv("hdr:X-A", "a\tb\x80\xff")},
	{"5.5", "RFC 9110 5.5: NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x00c\r\n\r\n", 400, nil},
	{"5.5", "RFC 9110 5.5: a control byte in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x01c\r\n\r\n", 400, nil},
	{"5.5", "RFC 9110 5.5: DEL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x7fc\r\n\r\n", 400, nil},
	{"5", "fields over the server's limit are answered 494 (Kong's answer for RFC 6585's 431)", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", confMaxHeaderBytes) + "\r\n\r\n", 494, nil},

	// Host.
	{"3.2", "a server MUST respond 400 to an HTTP/1.1 request without Host", "GET / HTTP/1.1\r\n\r\n", 400, nil},
	{"3.2", "a server MUST respond 400 to more than one Host field line", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, nil},
	{"3.2", "a server MUST respond 400 to an invalid Host value", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400, nil},
	{"3.2", "Host with a port and an IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", ok, kv("host", "[::1]:8080")},
	{"3.2", "an empty Host (RFC 9110 7.2: no authority)", "GET / HTTP/1.1\r\nHost:\r\n\r\n", ok, kv("host", "")},
	{"3.2", "HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", ok, kv("host", "")},
	{"3.2", "Host is no ordinary header field of the request", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("hdr:Host", "")},

	// Content-Length.
	{"6.2", "Content-Length frames the body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", ok, kv("cl", "5", "body", "hello", "hdr:Content-Length", "5")},
	{"6.2", "Content-Length: 0", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", ok, kv("cl", "0", "body", "")},
	{"6.2", "leading zeros are digits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0003\r\n\r\nabc", ok, kv("cl", "3", "body", "abc")},
	{"6.2", "many leading zeros", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0000000000000000000003\r\n\r\nabc", ok, kv("cl", "3", "body", "abc")},
	{"6.2", "RFC 9110 8.6: repeated identical values MAY be accepted as one", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", ok, kv("cl", "3", "body", "abc")},
	{"6.3", "different Content-Length values: the length cannot be determined, 400", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, nil},
	{"6.3", "a Content-Length list (RFC 9110 8.6 allows refusing it)", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", 400, nil},
	{"6.3", "a sign is no digit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", 400, nil},
	{"6.3", "a negative length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, nil},
	{"6.3", "a non-digit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3a\r\n\r\nabc", 400, nil},
	{"6.3", "an empty value", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400, nil},
	{"6.3", "a length beyond int64", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, nil},
	{"6.3", "a body shorter than its Content-Length is incomplete", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", badBody, nil},
	{"6.3", "no Content-Length and no Transfer-Encoding: no body", "POST / HTTP/1.1\r\nHost: h\r\n\r\nabc", ok, kv("cl", "0", "body", "")},

	// Transfer-Encoding.
	{"6.1", "chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", ok, kv("cl", "-1", "te", "chunked", "body", "abc", "hdr:Transfer-Encoding", "")},
	{"6.1", "transfer-coding names are case-insensitive", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", ok, kv("te", "chunked")},
	{"6.1", "RFC 9110 5.6.1: empty list elements are ignored", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked ,\r\n\r\n0\r\n\r\n", ok, kv("te", "chunked")},
	{"6.3", "chunked not the final coding: the server MUST respond 400", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400, nil},
	{"6.3", "chunked before another coding: 400", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, nil},
	{"6.1", "an unknown coding before chunked: 501", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, nil},
	{"6.1", "chunked applied twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, nil},
	{"6.1", "Transfer-Encoding on two field lines", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil},
	{"6.1", "an empty Transfer-Encoding has no final chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400, nil},
	{"6.3", "Transfer-Encoding and Content-Length together ought to be handled as an error: 400", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, nil},
	{"6.1", "Transfer-Encoding in HTTP/1.0: the framing MUST be treated as faulty", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, nil},

	// Chunked coding.
	{"7.1", "several chunks, hex sizes of either case", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", ok, kv("body", "0123456789abcdefghijk")},
	{"7.1", "chunk-size with leading zeros", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n000\r\n\r\n", ok, kv("body", "abc")},
	{"7.1", "chunk-size with 20 leading zeros", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000003\r\nabc\r\n0\r\n\r\n", ok, kv("body", "abc")},
	{"7.1", "a chunk-size that is not hex", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", badBody, nil},
	{"7.1", "an empty chunk-size line", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "a signed chunk-size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "a 0x prefix", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "a chunk-size beyond int64", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "whitespace after the chunk-size is tolerated (as net/http)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \t\r\nabc\r\n0\r\n\r\n", ok, kv("body", "abc")},
	{"7.1", "the chunk-size line MUST end with CRLF, not a bare LF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "the chunk data MUST end with CRLF, not a bare LF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", badBody, nil},
	{"7.1", "chunk data longer than its size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "the last-chunk line MUST end with CRLF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\n\r\n", badBody, nil},
	{"7.1", "the chunked body's final CRLF, not a bare LF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n", badBody, nil},
	{"7.1", "a bare CR in a chunk-size line", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1", "a truncated chunked body", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", badBody, nil},
	{"7.1", "a chunked body without its last-chunk", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", badBody, nil},
	{"7.1.1", "chunk extensions are ignored: name, name=token, name=quoted-string, BWS", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a\r\nabc\r\n3 ; b = c ;d=\"q \\\" ;\"\r\ndef\r\n0;e=f\r\n\r\n", ok, kv("body", "abcdef")},
	{"7.1.1", "an extension without a name", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;=v\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1.1", "an extension value that is neither token nor quoted-string", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b c\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1.1", "an unterminated quoted-string", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"b\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1.1", "NUL in an extension", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x00\r\nabc\r\n0\r\n\r\n", badBody, nil},
	{"7.1.2", "trailer fields are read and dropped", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", ok, kv("body", "abc", "hdr:X-T", "")},
	{"7.1.2", "a trailer line MUST end with CRLF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\n\r\n", badBody, nil},
	{"7.1.2", "a trailer line without a colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nnocolon\r\n\r\n", badBody, nil},
	{"7.1.2", "obs-fold in a trailer", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", badBody, nil},
	{"7.1.2", "a control byte in a trailer value", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: \x01\r\n\r\n", badBody, nil},
	{"7.1.2", "whitespace before a trailer field's colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T : 1\r\n\r\n", badBody, nil},

	// Expect (RFC 9110 10.1.1).
	{"RFC 9110 10.1.1", "100-continue is handled by the server and not passed on", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\na", ok, kv("body", "a", "hdr:Expect", "")},
	{"RFC 9110 10.1.1", "any other expectation MAY be answered 417", "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", 417, nil},
	{"RFC 9110 10.1.1", "a list with another expectation", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, teapot\r\nContent-Length: 1\r\n\r\na", 417, nil},
	{"RFC 9110 10.1.1", "another expectation on a second field line", "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na", 417, nil},
	{"RFC 9110 5.6.1", "an Expect of empty list elements expects nothing (net/http answers 417)", "POST / HTTP/1.1\r\nHost: h\r\nExpect: , ,\r\nContent-Length: 1\r\n\r\na", ok, kv("body", "a", "hdr:Expect", "")},
	{"RFC 9110 10.1.1", "a 100-continue expectation in HTTP/1.0 MUST be ignored", "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na", ok, kv("body", "a")},

	// Connection management.
	{"9.3", "HTTP/1.1 persists by default", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", ok, kv("close", "false")},
	{"9.6", "close in Connection ends the connection", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n", ok, kv("close", "true")},
	{"9.3", "HTTP/1.0 persists only with keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", ok, kv("close", "false")},
}

func TestConformance(t *testing.T) {
	srv, err := New(Options{Handler: http.NotFoundHandler(), MaxHeaderBytes: confMaxHeaderBytes})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range conformanceRows {
		t.Run(row.sec+" "+row.rule, func(t *testing.T) {
			p := parseFirst(srv, []byte(row.raw))
			switch {
			case row.want > 0:
				if p.status != row.want {
					t.Errorf("RFC 9112 %s: %s\n%q\ngot status %d (accepted: %v), want %d", row.sec, row.rule, row.raw, p.status, p.req != nil, row.want)
				}
				return
			case p.req == nil:
				t.Fatalf("RFC 9112 %s: %s\n%q\nrefused with %d, want it accepted", row.sec, row.rule, row.raw, p.status)
			case row.want == badBody:
				if p.bodyErr == nil {
					t.Errorf("RFC 9112 %s: %s\n%q\nbody %q read without error", row.sec, row.rule, row.raw, p.body)
				}
				return
			case p.bodyErr != nil:
				t.Errorf("RFC 9112 %s: %s\n%q\nbody error %v", row.sec, row.rule, row.raw, p.bodyErr)
			}
			got := fields(p)
			for k, v := range row.fields {
				if got[k] != v {
					t.Errorf("RFC 9112 %s: %s\n%q\n%s = %q, want %q", row.sec, row.rule, row.raw, k, got[k], v)
				}
			}
		})
	}
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite FuzzDifferential's seed corpus from the conformance table")

// TestConformanceSeeds checks that every conformance row is a seed of
// FuzzDifferential (go test's corpus file format); -update-seeds writes
// them.
func TestConformanceSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDifferential")
	if *updateSeeds {
		old, _ := filepath.Glob(filepath.Join(dir, "conformance-*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, row := range conformanceRows {
		name := filepath.Join(dir, fmt.Sprintf("conformance-%03d", i))
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(row.raw) + ")\n"
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != want {
			t.Errorf("%s does not hold row %d (%s %s); run go test -run TestConformanceSeeds -update-seeds", name, i, row.sec, row.rule)
		}
	}
}
