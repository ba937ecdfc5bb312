package proxy

import (
	"bufio"
	"net/http"
	"slices"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/h1"
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
	// underscores passes header names with an underscore upstream
	// (Config.AllowUnderscoreHeaders).
	underscores bool
}

// writeRequestHead writes the upstream request line and headers into bw,
// Kong's way: hop-by-hop headers (and those the client's Connection header
// names) are dropped, X-Forwarded-* are set with incoming values honoured
// only from trusted clients, X-Real-IP, Via and the request id are added,
// and framing is re-declared for the body that follows.
//
// Every field line goes through h1's field writer, whoever produced it (the
// client, a plugin template): a name that is not a token is dropped, CR, LF
// and NUL in values are neutralised. Names with an underscore are dropped
// unless fi allows them, as nginx's underscores_in_headers off does, so
// that X_Consumer_Username cannot pass for the X-Consumer-Username a plugin
// sets. The request's own headers go out sorted by name, so that the head
// is the same whatever the map's order; hdrs is the scratch slice for
// that, returned for reuse.
func writeRequestHead(bw *bufio.Writer, r *http.Request, m *Match, fi *fwdInfo, chunked bool, hdrs []header) []header {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if m.Path != "" {
		bw.WriteString(m.Path)
		// A target ending in a bare '?' keeps it upstream, as Kong's runloop does
		// (kong/runloop/handler.lua appends "?" when $request_uri ends with one).
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			bw.WriteByte('?')
			bw.WriteString(r.URL.RawQuery)
		}
	} else {
		bw.WriteString(h1.OriginTarget(r)) // absolute-form or HTTP/2 without RequestURI: the parsed URL's.
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	h1.WriteFieldValue(bw, fi.host)

	bw.WriteString("\r\n")

	conn := r.Header["Connection"]
	hdrs = hdrs[:0]
	for k, vv := range r.Header {
		switch k {
		case "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
			"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Content-Length", "Expect", "Via", "X-Real-Ip",
			"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
			"X-Forwarded-Path", "X-Forwarded-Prefix":
			continue
		}
		if k == fi.reqIDName || (!fi.underscores && strings.IndexByte(k, '_') >= 0) {
			continue
		}
		if len(conn) > 0 && h1.HasTokenAny(conn, k) {
			continue
		}
		hdrs = append(hdrs, header{sortKey(k), k, vv})
	}
	sortHeaders(hdrs)
	for _, h := range hdrs {
		for _, v := range h.values {
			h1.WriteField(bw, h.name, v)
		}
	}

	// X-Forwarded-For is appended to whoever sent it, as Kong does; the
	// other X-Forwarded-* are taken from the client only when trusted.
	// Values the proxy produced itself (the client's address, the scheme
	// and port, the request path as received, the request id) cannot break
	// a line and are written as they are; all others go through h1's value
	// writer.
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range r.Header["X-Forwarded-For"] {
		h1.WriteFieldValue(bw, v)
		bw.WriteString(", ")
	}
	bw.WriteString(fi.clientIP)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	writeFwd(bw, r, fi, "X-Forwarded-Proto", fi.scheme)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	if !writeFwd(bw, r, fi, "X-Forwarded-Host", "") {
		h1.WriteFieldValue(bw, hostOnly(r.Host)) // Plugins may have set r.Host.
	}
	bw.WriteString("\r\nX-Forwarded-Port: ")
	writeFwd(bw, r, fi, "X-Forwarded-Port", fi.port)
	bw.WriteString("\r\nX-Forwarded-Path: ")
	if !writeFwd(bw, r, fi, "X-Forwarded-Path", "") {
		bw.WriteString(requestPath(r))
	}
	if v := fwd(r, fi, "X-Forwarded-Prefix", ""); v != "" {
		bw.WriteString("\r\nX-Forwarded-Prefix: ")
		h1.WriteFieldValue(bw, v)
	} else if m.Prefix != "" && m.Prefix != "/" {
		bw.WriteString("\r\nX-Forwarded-Prefix: ")
		h1.WriteFieldValue(bw, m.Prefix)
	}
	bw.WriteString("\r\nX-Real-IP: ")
	bw.WriteString(fi.clientIP)
	bw.WriteString("\r\n")
	if fi.via {
		bw.WriteString("Via: ")
		for _, v := range r.Header["Via"] {
			h1.WriteFieldValue(bw, v)
			bw.WriteString(", ")
		}
		bw.WriteString(viaValue + "\r\n")
	}
	if fi.reqID != "" {
		bw.WriteString(fi.reqIDName)
		bw.WriteString(": ")
		bw.WriteString(fi.reqID)
		bw.WriteString("\r\n")
	}
	if fi.upgrade {
		bw.WriteString("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n")
	} else {
		bw.WriteString("Connection: keep-alive\r\n")
	}
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		var b [20]byte
		bw.Write(h1.AppendInt(b[:0], r.ContentLength))
		bw.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		// An empty body on a method that normally has one is declared,
		// so the upstream does not wait for one.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	return hdrs
}

// header is one request header as writeRequestHead sorts them.
type header struct {
	key    uint64 // sortKey(name)
	name   string
	values []string
}

// less orders headers by name.
func (a *header) less(b *header) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.name < b.name
}

// sortKey packs the first eight bytes of name, big-endian and zero-padded,
// so that most comparisons of two names are one integer comparison and
// still give the names' order: equal keys fall back to the whole names.
func sortKey(name string) uint64 {
	if len(name) >= 8 {
		// One load and a byte swap once compiled.
		return uint64(name[0])<<56 | uint64(name[1])<<48 | uint64(name[2])<<40 | uint64(name[3])<<32 |
			uint64(name[4])<<24 | uint64(name[5])<<16 | uint64(name[6])<<8 | uint64(name[7])
	}
	var k uint64
	for i := 0; i < len(name); i++ {
		k |= uint64(name[i]) << (56 - 8*i)
	}
	return k
}

// sortHeaders sorts hs by name: by insertion for the handful of headers
// most requests carry, which costs a few comparisons, else with slices.
func sortHeaders(hs []header) {
	if len(hs) > 12 {
		slices.SortFunc(hs, func(a, b header) int {
			if a.less(&b) {
				return -1
			}
			if b.less(&a) {
				return 1
			}
			return 0
		})
		return
	}
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && hs[j].less(&hs[j-1]); j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

// viaValue is the pseudonym this proxy adds to Via (RFC 9110 7.6.3).
const viaValue = "1.1 gantry"

// writeFwd writes the value of an X-Forwarded-* header: the trusted
// client's through h1's value writer, else def as it is. It reports
// whether it wrote anything.
func writeFwd(bw *bufio.Writer, r *http.Request, fi *fwdInfo, name, def string) bool {
	if fi.trusted {
		if v := r.Header[name]; len(v) > 0 && v[0] != "" {
			h1.WriteFieldValue(bw, v[0])
			return true
		}
	}
	bw.WriteString(def)
	return def != ""
}

func fwd(r *http.Request, fi *fwdInfo, name, def string) string {
	if fi.trusted {
		if v := r.Header[name]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return def
}

// hostOnly returns host without its port, lower-cased, as nginx's $host
// (what Kong sends as X-Forwarded-Host). It allocates only when host has
// upper-case letters.
func hostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
