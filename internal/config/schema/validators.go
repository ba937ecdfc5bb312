package schema

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The checks below translate Kong's typedefs.lua custom validators; their
// messages are Kong's.

var (
	nameRe = regexp.MustCompile(`^[\pL\pN.\-_~]+$`)
	hostRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_\-]*[A-Za-z0-9_])?)*\.?$`)
	// pathRe is validate_path's character class: unreserved, '/', '%', ':', '@' and RFC 3986's
	// sub-delims.
	pathRe   = regexp.MustCompile(`^/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*$`)
	pctRe    = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	methodRe = regexp.MustCompile(`^[A-Z]+$`)
	headerRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")
)

// checkName is typedefs.utf8_name: ASCII alphanumerics, ".-_~" and any
// non-ASCII letter.
func checkName(v any) string {
	s := v.(string)
	if !nameRe.MatchString(s) {
		return fmt.Sprintf("invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~", s)
	}
	return ""
}

// checkTag is Kong 3.x's typedefs.tag (kong/db/schema/typedefs.lua validate_tag): valid UTF-8
// first (its message gives the 1-based byte position of the first bad sequence), then printable
// ASCII including the space, except ',' and '/', or non-ASCII characters.
func checkTag(v any) string {
	s := v.(string)
	if s == "" {
		// Kong gives every string field len_min = 1 unless it sets one (validate_field in
		// kong/db/schema/init.lua), checked before custom validators.
		return "length must be at least 1"
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("invalid utf-8 character sequence detected at position %d", i+1)
		}
		i += size
	}
	for _, r := range s {
		if r < 0x80 && (r < 0x20 || r > 0x7e || r == ',' || r == '/') {
			return fmt.Sprintf("invalid tag '%s': expected printable ascii (except `,` and `/`) or valid utf-8 sequences", s)
		}
	}
	return ""
}

// CheckTag validates one tag as Kong's typedefs.tag does: "" when valid, else Kong's message.
func CheckTag(tag string) string { return checkTag(tag) }

// splitHostPort splits "host[:port]" (IPv6 in brackets) and reports a bad
// port as -2, none as -1.
func splitHostPort(s string) (string, int) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return s, -1
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, -1
		}
		if !strings.HasPrefix(rest, ":") {
			return s, -2
		}
		p, err := strconv.Atoi(rest[1:])
		if err != nil || p < 0 || p > 65535 {
			return host, -2
		}
		return host, p
	}
	if strings.Count(s, ":") == 1 {
		i := strings.Index(s, ":")
		p, err := strconv.Atoi(s[i+1:])
		if err != nil || p < 0 || p > 65535 {
			return s[:i], -2
		}
		return s[:i], p
	}
	return s, -1
}

func validHostname(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return len(h) > 0 && len(h) <= 255 && hostRe.MatchString(h)
}

// checkHost is typedefs.host: a name or IP without port.
func checkHost(v any) string {
	s := v.(string)
	h, port := splitHostPort(s)
	if !validHostname(h) {
		return "invalid value: " + s
	}
	if port != -1 {
		return "must not have a port"
	}
	return ""
}

// checkHostWithOptionalPort is typedefs.host_with_optional_port.
func checkHostWithOptionalPort(v any) string {
	s := v.(string)
	h, port := splitHostPort(s)
	if !validHostname(h) || port == -2 {
		return "invalid value: " + s
	}
	return ""
}

// checkUpstreamName is upstreams.lua's validate_name: a hostname, neither an IP address nor with
// a port. The messages quote the name as Kong 3.x does.
func checkUpstreamName(v any) string {
	s := v.(string)
	h, port := splitHostPort(s)
	switch {
	case !validHostname(h) || port == -2:
		return "Invalid name ('" + s + "'); must be a valid hostname"
	case isIP(h):
		return "Invalid name ('" + s + "'); no ip addresses allowed"
	case port != -1:
		return "Invalid name ('" + s + "'); no port allowed"
	}
	return ""
}

func isIP(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

// checkTarget is targets.target: a host or IP with an optional port.
func checkTarget(v any) string {
	s := v.(string)
	h, port := splitHostPort(s)
	if !validHostname(h) || port == -2 {
		return "Invalid target ('" + s + "'); not a valid hostname or ip address"
	}
	return ""
}

// checkSNI is typedefs.sni / wildcard_host used by snis and certificates.
func checkWildcardHost(v any) string {
	s := v.(string)
	if strings.Count(s, "*") > 1 {
		return "only one wildcard must be specified"
	}
	h := s
	if strings.Contains(s, "*") {
		switch {
		case strings.HasPrefix(s, "*."):
			h = "x" + s[1:]
		case strings.HasSuffix(s, ".*"):
			h = s[:len(s)-1] + "x"
		default:
			return "wildcard must be leftmost or rightmost character"
		}
	}
	host, port := splitHostPort(h)
	if !validHostname(host) {
		return "invalid value: " + s
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "must not be an IP"
	}
	if port != -1 {
		return "must not have a port"
	}
	return ""
}

// checkRouteHost is a route hosts entry: wildcard host with optional port.
func checkRouteHost(v any) string {
	s := v.(string)
	if strings.Count(s, "*") > 1 {
		return "only one wildcard must be specified"
	}
	h := s
	if strings.Contains(s, "*") {
		hostPart, _ := splitHostPort(s)
		switch {
		case strings.HasPrefix(hostPart, "*."):
			h = "x" + s[1:]
		case strings.HasSuffix(hostPart, ".*"):
			h = strings.Replace(s, ".*", ".x", 1)
		default:
			return "wildcard must be leftmost or rightmost character"
		}
	}
	host, port := splitHostPort(h)
	if !validHostname(host) || port == -2 {
		return "invalid value: " + s
	}
	return ""
}

// checkPathChars is validate_path: RFC 3986 characters and valid
// percent-encoding.
func checkPathChars(s string) string {
	if !pathRe.MatchString(s) {
		return "invalid path: '" + s + "' (characters outside of the reserved list of RFC 3986 found)"
	}
	return checkPercent(s)
}

// checkPercent is validate_path's percent-encoding rule (its "percent" error).
func checkPercent(s string) string {
	raw := pctRe.ReplaceAllString(s, "___")
	if i := strings.Index(raw, "%"); i >= 0 {
		end := min(i+3, len(raw))
		return "invalid url-encoded value: '" + raw[i:end] + "'"
	}
	return ""
}

// checkServicePath is typedefs.path (after starts_with).
func checkServicePath(v any) string {
	s := v.(string)
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	return checkPathChars(s)
}

// TranslateRegex rewrites a Kong (PCRE) route regex for Go's regexp:
// named groups (?<n>…) become (?P<n>…).
func TranslateRegex(re string) string {
	return strings.ReplaceAll(re, "(?<", "(?P<")
}

// checkRouterPath is typedefs.router_path: "/" prefix paths, normalized, or
// "~" regex paths that compile.
func checkRouterPath(v any) string {
	s := v.(string)
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "~/") {
		return "should start with: / (fixed path) or ~/ (regex path)"
	}
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	if strings.HasPrefix(s, "~") {
		re := TranslateRegex(s[1:])
		// Lookbehind-free PCRE is mostly RE2; the (?P< rewrite keeps named
		// captures working. Anything RE2 refuses is refused here.
		if strings.Contains(re, "(?<=") || strings.Contains(re, "(?<!") {
			return ""
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Sprintf("invalid regex: '%s' (PCRE returned: %s)", s[1:], strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return ""
	}
	// A prefix path is matched literally: characters outside RFC 3986's list are fine (Kong only
	// keeps validate_path's "percent" error for router paths), the path must be normalized.
	if pathRe.MatchString(s) {
		if m := checkPercent(s); m != "" {
			return m
		}
	}
	if n := normalizePath(s); n != s {
		return fmt.Sprintf("non-normalized path, consider use '%s' instead", n)
	}
	return ""
}

// normalizePath decodes unreserved percent-escapes, upper-cases the others
// and removes dot segments, keeping a trailing slash.
func normalizePath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err == nil {
				c := byte(n)
				if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
					b.WriteByte(c)
				} else {
					b.WriteString("%" + strings.ToUpper(s[i+1:i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	if strings.Contains(out, "/.") {
		trailing := strings.HasSuffix(out, "/") || strings.HasSuffix(out, "/.") || strings.HasSuffix(out, "/..")
		out = path.Clean(out)
		if trailing && out != "/" {
			out += "/"
		}
	}
	return out
}

// checkMethod is typedefs.http_method.
func checkMethod(v any) string {
	s := v.(string)
	if !methodRe.MatchString(s) {
		return "invalid value: " + s
	}
	return ""
}

// checkHeaderName is utils.validate_header_name.
func checkHeaderName(v any) string {
	s := v.(string)
	if !headerRe.MatchString(s) {
		return "bad header name '" + s + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
	}
	return ""
}

// checkIPOrCIDR is typedefs.ip_or_cidr.
func checkIPOrCIDR(v any) string {
	s := v.(string)
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if _, _, err := net.ParseCIDR(s); err == nil {
		return ""
	}
	return "invalid ip or cidr range: '" + s + "'"
}

// checkURL is typedefs.url.
func checkURL(v any) string {
	s := v.(string)
	u, err := url.Parse(s)
	if err != nil {
		return "could not parse url. " + err.Error()
	}
	if u.Host == "" {
		return "missing host in url"
	}
	if u.Scheme == "" {
		return "missing scheme in url"
	}
	return ""
}

func parseCerts(s string) ([]*x509.Certificate, string) {
	rest := []byte(s)
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err.Error()
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, "PEM_read_bio_X509_AUX() failed"
	}
	return out, ""
}

// checkCertificate is typedefs.certificate.
func checkCertificate(v any) string {
	if _, msg := parseCerts(v.(string)); msg != "" {
		return "invalid certificate: " + msg
	}
	return ""
}

func parsePrivateKey(s string) (any, string) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, "PEM_read_bio_PrivateKey() failed"
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		return k, ""
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, ""
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, ""
	}
	return nil, "PEM_read_bio_PrivateKey() failed"
}

// checkKey is typedefs.key.
func checkKey(v any) string {
	if _, msg := parsePrivateKey(v.(string)); msg != "" {
		return "invalid key: " + msg
	}
	return ""
}

// checkPublicKey is the jwt plugin's validate_ssl_key: a PEM public key.
func checkPublicKey(v any) string {
	s, _ := v.(string)
	if _, msg := parsePublicKey(s); msg != "" {
		return "invalid key"
	}
	return ""
}

func parsePublicKey(s string) (any, string) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, "PEM_read_bio_PUBKEY() failed"
	}
	if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err == nil {
		return k, ""
	}
	if k, err := x509.ParsePKCS1PublicKey(blk.Bytes); err == nil {
		return k, ""
	}
	return nil, "PEM_read_bio_PUBKEY() failed"
}
