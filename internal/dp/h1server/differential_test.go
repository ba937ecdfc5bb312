package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzDifferential feeds the same bytes to this server's parser and to
// net/http's (http.ReadRequest, the checks net/http's server adds after it,
// and the body read to its end), and compares what each makes of the first
// request: whether it is accepted, and then its method, target, URL, host,
// version, connection persistence, framing, non-framing header fields and
// body.
//
// Where the two differ on purpose, the difference is spelled out below,
// each with the rule behind it, and only that difference is excused; every
// other disagreement fails. The seed corpus (testdata/fuzz/FuzzDifferential)
// holds the conformance table's rows (TestConformanceSeeds) and what
// earlier fuzzing found.
func FuzzDifferential(f *testing.F) {
	srv, err := New(Options{Handler: http.NotFoundHandler(), MaxHeaderBytes: diffMaxHeaderBytes})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ours := parseFirst(srv, data)
		if ours.status == http.StatusRequestURITooLong || ours.status == statusHeaderTooLarge {
			// Size limits are the server's choice (RFC 9112 3 and 5: a
			// server MAY limit; net/http's server allows 1 MiB).
			return
		}
		in := readInput(data)
		theirs, theirBody, theirErr := netHTTPParse(&in)
		ourOK := ours.req != nil && ours.bodyErr == nil
		theirOK := theirErr == nil
		switch {
		case ourOK && theirOK:
			compareRequests(t, data, ours, theirs, theirBody)
		case !ourOK && theirOK:
			if why := in.weRefuse(); why == "" {
				t.Fatalf("we refuse what net/http accepts (status %d, body error %v):\n%q", ours.status, ours.bodyErr, data)
			}
		case ourOK && !theirOK:
			if why := in.netHTTPRefuses(theirErr); why == "" {
				t.Fatalf("we accept what net/http refuses (%v):\n%q", theirErr, data)
			}
		}
	})
}

const diffMaxHeaderBytes = 64 << 10

// netHTTPParse is the reference: http.ReadRequest, then what net/http's
// server checks before calling a handler (its conn.readRequest and
// serverHandler), then the body read to its end. http.ReadRequest drops
// the Host field lines, which the server checks, so those are taken from
// the input.
func netHTTPParse(in *input) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in.forNetHTTP)))
	if err != nil {
		return nil, nil, err
	}
	// HTTP/1 only; net/http hands "PRI * HTTP/2.0" to handlers for h2c.
	if r.ProtoMajor != 1 && !(r.ProtoMajor == 2 && r.ProtoMinor == 0 && r.Method == "PRI" && r.RequestURI == "*") {
		return nil, nil, errors.New("505 unsupported protocol version")
	}
	hosts := in.field("Host")
	if r.ProtoAtLeast(1, 1) && len(hosts) == 0 && r.Method != "CONNECT" {
		return nil, nil, errors.New("400 missing required Host header")
	}
	if len(hosts) == 1 && !refHostValue(strings.Trim(hosts[0], " \t")) {
		return nil, nil, errors.New("400 malformed Host header")
	}
	for k, vv := range r.Header {
		if !refToken(k) {
			return nil, nil, errors.New("400 invalid header name")
		}
		for _, v := range vv {
			if !refFieldValue(v) {
				return nil, nil, errors.New("400 invalid header value")
			}
		}
	}
	delete(r.Header, "Host")
	// Its server answers 417 to an Expect other than 100-continue, judged
	// on the first Expect field line.
	if e := r.Header.Get("Expect"); e != "" && !refHasToken(e, "100-continue") {
		return nil, nil, errors.New("417 expectation failed")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	return r, body, nil
}

// The reference's character rules, written from the RFCs: RFC 9110 5.6.2
// tokens; RFC 9110 5.5 field values (no CTL but HTAB); net/http's lenient
// Host check, which admits the characters of RFC 3986 reg-name, IP-literal
// and port (unreserved, sub-delims, "%", ":", "[", "]").
func refToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func refFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func refHostValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && strings.IndexByte("-._~!$&'()*+,;=%:[]", c) < 0 {
			return false
		}
	}
	return true
}

func refHasToken(v, tok string) bool {
	for _, e := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(e), tok) {
			return true
		}
	}
	return false
}

// input is the fuzz input cut into the parts the known differences look
// at, read leniently and independently of the parser under test.
type input struct {
	forNetHTTP []byte // the input as net/http is given it (see readInput)

	method, target, version string
	head                    []byte   // the head after the request line, up to its empty line
	fields                  []string // its field lines, without line ends
	body                    []byte   // what follows the head
	chunks                  chunkFeatures
}

// readInput splits data. Two differences are taken out of the input given
// to net/http, so that the rest of the request stays comparable:
//
//   - Empty lines before the request line: RFC 9112 2.2 says a server
//     SHOULD ignore at least one; we ignore them, net/http refuses them
//     (except after a POST on the same connection).
//   - A fragment in the request-target: RFC 9112 3.2 has none; we strip it
//     from RequestURI and URL, as nginx does, while net/http's
//     url.ParseRequestURI keeps it in the path or query. net/http is given
//     the target without it (when the target has no control byte, which
//     both refuse).
func readInput(data []byte) input {
	var in input
	rest := data
	for {
		if bytes.HasPrefix(rest, []byte("\n")) {
			rest = rest[1:]
			continue
		}
		if !bytes.HasPrefix(rest, []byte("\r\n")) {
			break
		}
		rest = rest[2:]
	}
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		in.forNetHTTP = rest
		return in
	}
	line := string(bytes.TrimSuffix(rest[:nl], []byte("\r")))
	lineEnd := rest[len(line) : nl+1]
	var ok1, ok2 bool
	var after string
	in.method, after, ok1 = strings.Cut(line, " ")
	in.target, in.version, ok2 = strings.Cut(after, " ")
	if ok1 && ok2 && refFieldValue(in.target) && !strings.Contains(in.target, "\t") {
		// A fragment is cut only from a target of valid bytes: a control
		// byte after the "#" invalidates the request for both.
		if i := strings.IndexByte(in.target, '#'); i >= 0 {
			in.target = in.target[:i]
			line = in.method + " " + in.target + " " + in.version
		}
	}
	in.forNetHTTP = append(append([]byte(line), lineEnd...), rest[nl+1:]...)

	// The head's field lines, up to the first empty line.
	p := rest[nl+1:]
	start := p
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			in.head = start
			return in
		}
		l := bytes.TrimSuffix(p[:i], []byte("\r"))
		p = p[i+1:]
		if len(l) == 0 {
			break
		}
		in.fields = append(in.fields, string(l))
	}
	in.head = start[:len(start)-len(p)]
	in.body = p
	if in.chunked() {
		in.chunks = walkChunks(p)
	}
	return in
}

// field returns the values of every field line named name, untrimmed.
func (in *input) field(name string) []string {
	var vs []string
	for _, l := range in.fields {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			vs = append(vs, v)
		}
	}
	return vs
}

func (in *input) chunked() bool { return len(in.field("Transfer-Encoding")) > 0 }

// chunkFeatures are what a lenient walk of a chunked body saw.
type chunkFeatures struct {
	ext           bool // a chunk-size line has something after the size
	longSize      bool // a chunk-size of more than 16 hex digits
	trailerLF     bool // a trailer line (or the final line) ends with a bare LF
	trailerSyntax bool // a trailer line with obs-fold, whitespace before its colon, or a bare CR
}

// walkChunks reads a chunked body leniently: sizes are the leading hex
// digits of each size line, whatever follows them.
func walkChunks(b []byte) chunkFeatures {
	var f chunkFeatures
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return f
		}
		line := bytes.TrimSuffix(b[:i], []byte("\r"))
		b = b[i+1:]
		n := 0
		var size int64
		for n < len(line) && isHex(line[n]) {
			if size < 1<<40 {
				size = size<<4 | int64(unhex(line[n]))
			}
			n++
		}
		if n > 16 {
			f.longSize = true
		}
		if bytes.IndexByte(line[n:], ';') >= 0 {
			f.ext = true
		}
		if n == 0 {
			return f
		}
		if size == 0 {
			break
		}
		if int64(len(b)) < size+1 {
			return f
		}
		b = b[size:]
		if bytes.HasPrefix(b, []byte("\r\n")) {
			b = b[2:]
		} else {
			return f
		}
	}
	// Trailer section.
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return f
		}
		raw := b[:i]
		b = b[i+1:]
		if !bytes.HasSuffix(raw, []byte("\r")) {
			f.trailerLF = true
		}
		line := bytes.TrimSuffix(raw, []byte("\r"))
		if len(line) == 0 {
			return f
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		if line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(name, " \t") || bytes.IndexByte(line, '\r') >= 0 {
			f.trailerSyntax = true
		}
	}
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// weRefuse names the known difference that explains our refusing a request
// net/http accepts, or returns "".
func (in *input) weRefuse() string {
	switch {
	case bytes.Contains(in.head, []byte("\n ")) || bytes.Contains(in.head, []byte("\n\t")) || (len(in.head) > 0 && (in.head[0] == ' ' || in.head[0] == '\t')):
		// net/http joins obs-fold lines; RFC 9112 5.2 lets a server reject
		// them with 400 instead, which we do.
		return "obs-fold"
	case hasBareCR(in.head) || strings.Contains(in.version, "\r"):
		// RFC 9112 2.2: a bare CR makes the element invalid (or is replaced
		// by SP); net/http strips one at the end of a field line.
		return "bare CR in the head"
	case len(in.field("Transfer-Encoding")) > 0 && len(in.field("Content-Length")) > 0:
		// RFC 9112 6.3 (3), 11.2: both framings at once "ought to be
		// handled as an error"; net/http drops Content-Length.
		return "Transfer-Encoding with Content-Length"
	case len(in.field("Transfer-Encoding")) > 0 && in.version == "HTTP/1.0":
		// RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding MUST be
		// treated as having faulty framing; net/http ignores the field.
		return "Transfer-Encoding in HTTP/1.0"
	case in.method == "CONNECT":
		// The runtime is no forward proxy: CONNECT is answered 405, as
		// nginx (so Kong) does since 1.21.1; net/http hands it on.
		return "CONNECT"
	case in.version == "HTTP/2.0" && in.method == "PRI":
		// No h2c prior knowledge (RFC 9113 3.3) on this listener: 505;
		// net/http hands the preface to handlers.
		return "HTTP/2 preface"
	case !targetFormOK(in.method, in.target):
		return "request-target form"
	case expectOther(in.field("Expect")):
		// RFC 9110 10.1.1: an expectation other than 100-continue MAY be
		// answered 417; we judge every Expect line and member, net/http
		// only whether the first line lists 100-continue.
		return "Expect"
	case in.chunks.ext:
		// RFC 9112 7.1.1: we check the chunk-ext grammar (token names,
		// token or quoted-string values, BWS around ";" and "="); net/http
		// cuts at the first ";" unchecked.
		return "chunk extension"
	case in.chunks.trailerLF:
		// RFC 9112 7.1: the chunked body's lines end with CRLF; net/http
		// reads trailer fields with textproto, which takes a bare LF.
		return "bare LF in the trailer section"
	case in.chunks.trailerSyntax:
		// RFC 9112 5.1, 5.2 and 2.2 apply to trailer fields as to header
		// fields; net/http reads trailers without its server's checks.
		return "trailer field syntax"
	}
	return ""
}

// netHTTPRefuses names the known difference that explains net/http's
// refusing a request we accept, or returns "".
func (in *input) netHTTPRefuses(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "too much non-data"):
		// net/http bounds chunk-extension and framing overhead against
		// abuse (16 KiB beyond twice the data); RFC 9112 7.1 sets none.
		return "chunk overhead"
	case strings.Contains(msg, "suspiciously long trailer"):
		// net/http reads at most one buffer (4 KiB) of trailer fields; we
		// bound them by MaxHeaderBytes.
		return "trailer size"
	case in.chunks.longSize:
		// RFC 9112 7.1: chunk-size = 1*HEXDIG, unbounded; net/http refuses
		// more than 16 digits even when they are leading zeros.
		return "chunk-size digits"
	case in.chunks.ext:
		// RFC 9112 7.1.1: BWS before ";" is allowed; net/http refuses it.
		return "chunk extension"
	case strings.Contains(msg, "417") && !expectOther(in.field("Expect")):
		// RFC 9110 5.6.1: a recipient ignores empty list elements, so an
		// Expect of "," expects nothing; net/http answers 417 to a first
		// Expect line that does not list 100-continue, empty or not.
		return "Expect list"
	}
	if te := in.field("Transfer-Encoding"); len(te) == 1 && !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
		// RFC 9110 5.6.1: empty list elements and OWS around them are no
		// codings; net/http takes only the single value "chunked".
		return "Transfer-Encoding list"
	}
	return ""
}

// targetFormOK is what we accept as a request-target, per RFC 9112 3.2:
// origin-form; asterisk-form for OPTIONS (3.2.4); absolute-form of an http
// or https URI with a host and no userinfo (RFC 9110 4.2.1, 4.2.4).
// Authority-form is CONNECT's, which is refused as a method. net/http's
// url.ParseRequestURI takes any absolute URI and authority-form for every
// method.
func targetFormOK(method, t string) bool {
	if strings.HasPrefix(t, "/") {
		return true
	}
	if t == "*" {
		return method == "OPTIONS"
	}
	lower := strings.ToLower(t)
	var rest string
	switch {
	case strings.HasPrefix(lower, "http://"):
		rest = t[len("http://"):]
	case strings.HasPrefix(lower, "https://"):
		rest = t[len("https://"):]
	default:
		return false
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	// RFC 3986 3.2.2: a host is made of unreserved and sub-delims
	// characters, pct-encoded triplets, and the brackets of an IP-literal;
	// net/url lets other bytes (a DQUOTE, say) through. It also decodes
	// pct-encoded triplets into Request.Host; we refuse a host whose
	// decoded form a Host field could not carry (a non-ASCII byte, say),
	// since Request.Host routes the request and goes upstream.
	if authority == "" || strings.Contains(authority, "@") || !refHostValue(authority) {
		return false
	}
	dec, err := url.PathUnescape(authority)
	return err == nil && refHostValue(dec)
}

// hasBareCR reports whether b has a CR not followed by LF.
func hasBareCR(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}

// expectOther reports whether the Expect lines hold anything but
// 100-continue.
func expectOther(lines []string) bool {
	for _, l := range lines {
		for _, e := range strings.Split(l, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "100-continue") {
				return true
			}
		}
	}
	return false
}

// compareRequests compares two accepted requests field by field.
func compareRequests(t *testing.T, data []byte, ours parsed, theirs *http.Request, theirBody []byte) {
	t.Helper()
	r := ours.req
	var diffs []string
	check := func(what string, got, want any) {
		if !reflect.DeepEqual(got, want) {
			diffs = append(diffs, fmt.Sprintf("%s: ours %#v, net/http %#v", what, got, want))
		}
	}
	check("method", r.Method, theirs.Method)
	check("RequestURI", r.RequestURI, theirs.RequestURI)
	ou, tu := *r.URL, *theirs.URL
	check("URL", ou, tu)
	check("URL.RequestURI", r.URL.RequestURI(), theirs.URL.RequestURI())
	check("Host", r.Host, theirs.Host)
	// RFC 9112 2.3: a higher HTTP/1 minor version is served as HTTP/1.1;
	// net/http reports it as received.
	major, minor, proto := theirs.ProtoMajor, theirs.ProtoMinor, theirs.Proto
	if major == 1 && minor > 1 {
		minor, proto = 1, "HTTP/1.1"
	}
	check("version", [3]any{r.Proto, r.ProtoMajor, r.ProtoMinor}, [3]any{proto, major, minor})
	check("Close", r.Close, theirs.Close)
	check("ContentLength", r.ContentLength, theirs.ContentLength)
	check("TransferEncoding", r.TransferEncoding, theirs.TransferEncoding)
	check("header", headerForCompare(r.Header, nil), headerForCompare(theirs.Header, r.Header))
	check("body", string(ours.body), string(theirBody))
	if len(diffs) > 0 {
		t.Fatalf("parsed differently:\n%q\n%s", data, strings.Join(diffs, "\n"))
	}
}

// headerForCompare returns h without the framing fields each server
// handles itself (Content-Length and Transfer-Encoding are compared as
// ContentLength and TransferEncoding; Trailer is consumed by net/http for
// chunked bodies; Expect is answered by both servers; Host is
// Request.Host). For net/http's header (ours set), the Cache-Control that
// net/http adds for "Pragma: no-cache" (its HTTP/1.0 compatibility) is
// removed when the client sent none.
func headerForCompare(h, ours http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Trailer", "Expect", "Host"} {
		delete(out, k)
	}
	if ours != nil {
		if _, sent := ours["Cache-Control"]; !sent && len(out["Pragma"]) > 0 && out["Pragma"][0] == "no-cache" {
			delete(out, "Cache-Control")
		}
	}
	return out
}
