package router

import "strings"

// isReservedByte reports whether b is one of RFC 3986's reserved
// characters as Kong lists them ("!*'();:@&=+$,/?%#[]"). Percent-escapes of
// these bytes change the meaning of a path, so normalization keeps them
// encoded (upper-cased) instead of decoding them.
func isReservedByte(b byte) bool {
	switch b {
	case '!', '*', '\'', '(', ')', ';', ':', '@', '&', '=', '+', '$', ',', '/', '?', '%', '#', '[', ']':
		return true
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// StripQuery returns the path part of a request target: everything before
// the first '?' found at or after the second byte. Kong searches from the
// second byte, so a target that starts with '?' is returned whole.
func StripQuery(target string) string {
	if len(target) > 1 {
		if i := strings.IndexByte(target[1:], '?'); i >= 0 {
			return target[:i+1]
		}
	}
	return target
}

// NormalizePath returns the request path the router matches against, the
// way Kong prepares it (kong/router/utils.strip_uri_args followed by
// kong/tools/uri.normalize with slash merging):
//
//   - the query string is dropped (see StripQuery);
//   - %-escapes (hex digits in either case) of unreserved and "other"
//     bytes are decoded, escapes of reserved bytes are kept and upper-cased;
//   - "." and ".." segments are removed as RFC 3986 section 5.2.4 describes,
//     never climbing above the root;
//   - runs of '/' are merged into one.
//
// A path that needs none of this is returned unchanged without allocating,
// which is the common case on the request path.
func NormalizePath(target string) string {
	p := StripQuery(target)
	if p == "" || p == "/" {
		return p
	}
	if strings.IndexByte(p, '%') >= 0 {
		p = percentNormalize(p)
	}
	if !needsSegmentWork(p) {
		return p
	}
	return removeDotSegments(p)
}

// percentNormalize decodes the escapes of non-reserved bytes and upper-cases
// the escapes of reserved bytes. Malformed escapes are copied as they are.
func percentNormalize(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if ok1 && ok2 {
				v := hi<<4 | lo
				if isReservedByte(v) {
					b.WriteByte('%')
					b.WriteByte(upperHex(p[i+1]))
					b.WriteByte(upperHex(p[i+2]))
				} else {
					b.WriteByte(v)
				}
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// needsSegmentWork reports whether p contains a "//" or a "." / ".."
// segment, i.e. whether removeDotSegments would change it. Dots inside a
// segment name ("/v1/file.json", "/.well-known") do not count.
func needsSegmentWork(p string) bool {
	if strings.Contains(p, "//") {
		return true
	}
	for i := 0; i < len(p); {
		// Find the segment [i, j).
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p)
		} else {
			j += i
		}
		seg := p[i:j]
		if seg == "." || seg == ".." {
			return true
		}
		i = j + 1
	}
	return false
}

// removeDotSegments applies Kong's dot-segment removal and slash merging to
// p. Output segments keep their leading '/', so popping a segment drops
// exactly what the last push added.
func removeDotSegments(uri string) string {
	out := make([]string, 0, 8)
	for len(uri) > 0 {
		switch {
		case uri == "/.":
			uri = "/"
		case uri == "/..":
			uri = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case uri == "." || uri == "..":
			uri = ""
		case strings.HasPrefix(uri, "../"):
			uri = uri[3:]
		case strings.HasPrefix(uri, "./"):
			uri = uri[2:]
		case strings.HasPrefix(uri, "/./"):
			uri = uri[2:]
		case strings.HasPrefix(uri, "/../"):
			uri = uri[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case strings.HasPrefix(uri, "//"):
			uri = uri[1:]
		default:
			if i := strings.IndexByte(uri[1:], '/'); i >= 0 {
				out = append(out, uri[:i+1])
				uri = uri[i+1:]
			} else {
				out = append(out, uri)
				uri = ""
			}
		}
	}
	return strings.Join(out, "")
}

// EscapePath percent-encodes every byte of p outside the set Kong forwards
// as is (kong/tools/uri.escape): letters, digits, "-._~", the reserved
// characters and '%'. NormalizePath decodes "other" bytes such as spaces or
// UTF-8 for matching; EscapePath encodes them again before the path is sent
// upstream. It returns p itself when nothing needs escaping.
func EscapePath(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if !pathSafe(p[i]) {
			n++
		}
	}
	if n == 0 {
		return p
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+2*n)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathSafe(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(b)
}

func pathSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~':
		return true
	}
	// The reserved set includes '%', so existing escapes pass through.
	return isReservedByte(c)
}
