package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/google/uuid"
)

// HashOn names a consistent-hashing input, spelled as Kong's upstream
// `hash_on` / `hash_fallback` fields.
type HashOn string

// The hash inputs of Kong's upstream schema.
const (
	HashNone       HashOn = "none"
	HashConsumer   HashOn = "consumer"
	HashIP         HashOn = "ip"
	HashHeader     HashOn = "header"
	HashCookie     HashOn = "cookie"
	HashPath       HashOn = "path"
	HashQueryArg   HashOn = "query_arg"
	HashURICapture HashOn = "uri_capture"
)

// HashOptions mirrors the hashing fields of Kong's upstream entity.
type HashOptions struct {
	// On and Fallback are `hash_on` and `hash_fallback`; empty means none.
	// Fallback is used only when the primary input is absent or empty.
	On, Fallback HashOn
	// OnHeader and FallbackHeader name the headers for HashHeader.
	OnHeader, FallbackHeader string
	// OnCookie names the cookie for HashCookie (primary only, as in Kong);
	// OnCookiePath is the Path of the cookie set when it is absent ("/" if
	// empty).
	OnCookie, OnCookiePath string
	// OnQueryArg and FallbackQueryArg name the query arguments.
	OnQueryArg, FallbackQueryArg string
	// OnURICapture and FallbackURICapture name the route's regex captures.
	OnURICapture, FallbackURICapture string
}

// hashSource is one resolved hash input.
type hashSource struct {
	kind HashOn
	// name is the canonical header name, cookie name, query argument or
	// capture name, depending on kind.
	name string
}

type hashConfig struct {
	primary, fallback hashSource
	cookiePath        string
}

func newHashConfig(o HashOptions) (hashConfig, error) {
	var hc hashConfig
	var err error
	if hc.primary, err = resolveSource(o.On, o.OnHeader, o.OnCookie, o.OnQueryArg, o.OnURICapture); err != nil {
		return hc, fmt.Errorf("hash_on: %w", err)
	}
	fb := o.Fallback
	if fb == HashCookie {
		return hc, errors.New("hash_fallback: cookie is not allowed as a fallback")
	}
	if hc.primary.kind == HashNone || hc.primary.kind == HashCookie {
		// Kong forces hash_fallback to none for these primaries.
		fb = HashNone
	}
	if hc.fallback, err = resolveSource(fb, o.FallbackHeader, "", o.FallbackQueryArg, o.FallbackURICapture); err != nil {
		return hc, fmt.Errorf("hash_fallback: %w", err)
	}
	hc.cookiePath = o.OnCookiePath
	if hc.cookiePath == "" {
		hc.cookiePath = "/"
	}
	return hc, nil
}

func resolveSource(kind HashOn, header, cookie, queryArg, capture string) (hashSource, error) {
	if kind == "" {
		kind = HashNone
	}
	s := hashSource{kind: kind}
	var need string
	switch kind {
	case HashNone, HashConsumer, HashIP, HashPath:
		return s, nil
	case HashHeader:
		s.name, need = canonicalHeader(header), header
	case HashCookie:
		s.name, need = cookie, cookie
	case HashQueryArg:
		s.name, need = queryArg, queryArg
	case HashURICapture:
		s.name, need = capture, capture
	default:
		return s, fmt.Errorf("unknown hash input %q", kind)
	}
	if need == "" {
		return s, fmt.Errorf("%s requires a name", kind)
	}
	return s, nil
}

// HashInput carries the request values the hash inputs read. The proxy fills
// it once per request; only the fields the upstream hashes on are read.
type HashInput struct {
	// ConsumerID is the authenticated consumer's id; CredentialID, the
	// authenticated credential's id, is used when there is no consumer.
	ConsumerID, CredentialID string
	// ClientIP is the client address after trusted-proxy processing.
	ClientIP string
	// Header is the request header (canonical keys, as net/http gives them).
	Header http.Header
	// Path is the normalized request path.
	Path string
	// RawQuery is the request's undecoded query string.
	RawQuery string
	// URICaptures are the named captures of the matched route's regex path.
	URICaptures map[string]string
}

// HashKey computes the consistent-hashing key of a request: the primary
// input, or the fallback when the primary is absent or empty. When the
// primary input is a cookie the request does not carry, HashKey mints a new
// value (a UUID, as Kong does) and returns the Set-Cookie header value the
// proxy must add to the response so the client sticks to its target.
//
// An empty key is valid: like Kong, requests without any hash input all hash
// the empty string and so share one target. HashKey returns "" for
// balancers that do not hash. It allocates only to join multi-valued inputs
// or to mint a cookie.
func (b *Balancer) HashKey(in *HashInput) (key, setCookie string) {
	if b.algorithm != AlgorithmConsistentHashing || in == nil {
		return "", ""
	}
	if key = b.hash.primary.value(in); key != "" {
		return key, ""
	}
	if b.hash.primary.kind == HashCookie {
		key = uuid.NewString()
		return key, b.hash.primary.name + "=" + key + "; Path=" + b.hash.cookiePath + "; Same-Site=Lax; HttpOnly"
	}
	return b.hash.fallback.value(in), ""
}

// value reads the source's input from the request; "" when absent.
func (s hashSource) value(in *HashInput) string {
	switch s.kind {
	case HashConsumer:
		if in.ConsumerID != "" {
			return in.ConsumerID
		}
		return in.CredentialID
	case HashIP:
		return in.ClientIP
	case HashHeader:
		vs := in.Header[s.name]
		switch len(vs) {
		case 0:
			return ""
		case 1:
			return vs[0]
		}
		// Repeated headers are combined as nginx's $http_ variables do.
		return strings.Join(vs, ", ")
	case HashCookie:
		return cookieValue(in.Header, s.name)
	case HashPath:
		return in.Path
	case HashQueryArg:
		return queryArg(in.RawQuery, s.name)
	case HashURICapture:
		return in.URICaptures[s.name]
	}
	return ""
}

// cookieValue returns the first value of the named cookie in the request's
// Cookie headers, without allocating.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if ok && k == name {
				return v
			}
		}
	}
	return ""
}

// queryArg returns the decoded value of the named query argument. Like
// Kong, an argument without "=" reads as "true" and repeated arguments are
// sorted and joined with ",". It allocates only when the argument repeats or
// is percent-encoded.
func queryArg(raw, name string) string {
	var first string
	var many []string
	found := 0
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		if k != name {
			// Names are compared decoded; only decode when it could differ.
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			dk, err := url.QueryUnescape(k)
			if err != nil || dk != name {
				continue
			}
		}
		if !hasEq {
			v = "true"
		} else if strings.ContainsAny(v, "%+") {
			if dv, err := url.QueryUnescape(v); err == nil {
				v = dv
			}
		}
		found++
		switch found {
		case 1:
			first = v
		case 2:
			many = append(many, first, v)
		default:
			many = append(many, v)
		}
	}
	if found <= 1 {
		return first
	}
	sort.Strings(many)
	return strings.Join(many, ",")
}
