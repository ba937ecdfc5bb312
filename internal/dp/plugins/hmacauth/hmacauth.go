// Package hmacauth is Kong's hmac-auth plugin.
package hmacauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // hmac-sha1 is one of the algorithms Kong's hmac-auth accepts
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "hmac-auth"
	Priority = 1030
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
// ClockSkew is in seconds.
type Config struct {
	HideCredentials     bool     `json:"hide_credentials"`
	ClockSkew           float64  `json:"clock_skew"`
	Anonymous           *string  `json:"anonymous"`
	ValidateRequestBody bool     `json:"validate_request_body"`
	EnforceHeaders      []string `json:"enforce_headers"`
	Algorithms          []string `json:"algorithms"`
	Realm               *string  `json:"realm"`
}

var hashes = map[string]func() hash.Hash{
	"hmac-sha1":   sha1.New,
	"hmac-sha256": sha256.New,
	"hmac-sha384": sha512.New384,
	"hmac-sha512": sha512.New,
}

// Messages are Kong's.
const (
	msgNotValid  = "HMAC signature cannot be verified"
	msgNotSame   = "HMAC signature does not match"
	msgClockSkew = "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication"
)

// HMACAuth is a built hmac-auth instance.
type HMACAuth struct {
	cfg       Config
	anonymous string
	algs      map[string]bool
	store     plugin.Store
	www       http.Header
}

var _ plugin.Accesser = (*HMACAuth)(nil)

// nowFunc is the clock; tests replace it.
var nowFunc = time.Now

// New builds an hmac-auth instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{ClockSkew: 300}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("hmac-auth: invalid config: %w", err)
	}
	if cfg.ClockSkew <= 0 {
		return nil, fmt.Errorf("hmac-auth: clock_skew must be greater than 0")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"}
	}
	h := &HMACAuth{cfg: cfg, algs: map[string]bool{}, store: env}
	for _, a := range cfg.Algorithms {
		if hashes[a] == nil {
			return nil, fmt.Errorf("hmac-auth: unsupported algorithm %q", a)
		}
		h.algs[a] = true
	}
	if cfg.Anonymous != nil {
		h.anonymous = *cfg.Anonymous
	}
	www := "hmac"
	if cfg.Realm != nil && *cfg.Realm != "" {
		www = `hmac realm="` + *cfg.Realm + `"`
	}
	h.www = http.Header{"Www-Authenticate": {www}}
	return h, nil
}

// Access implements [plugin.Accesser].
func (h *HMACAuth) Access(c *plugin.Ctx) error {
	plugin.Authenticate(c, h.store, h.anonymous, h.authenticate)
	return nil
}

var fieldsRe = regexp.MustCompile(`^\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"`)

type params struct {
	username, algorithm, signature string
	headers                        []string
}

func parseFields(v string) (params, bool) {
	m := fieldsRe.FindStringSubmatch(v)
	if m == nil {
		return params{}, false
	}
	return params{username: m[1], algorithm: m[2], headers: strings.Fields(m[3]), signature: m[4]}, true
}

func (h *HMACAuth) clockOK(r *http.Request, name string) bool {
	v := r.Header.Get(name)
	if v == "" {
		return false
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return false
	}
	d := nowFunc().Sub(t).Seconds()
	if d < 0 {
		d = -d
	}
	return d <= h.cfg.ClockSkew
}

func fail(msg string) *plugin.AuthFailure { return &plugin.AuthFailure{Status: 401, Message: msg} }

// signingString is Kong's: each listed header as "name: value" (or the
// request line / @request-target), joined by newlines.
func signingString(r *http.Request, headers []string) string {
	var b strings.Builder
	uri := r.URL.RequestURI()
	for i, name := range headers {
		v := r.Header.Get(name)
		switch {
		case v != "":
			b.WriteString(name + ": " + v)
		case strings.EqualFold(name, "host") && r.Host != "":
			b.WriteString(name + ": " + r.Host)
		case name == "@request-target":
			b.WriteString(name + ": " + strings.ToLower(r.Method) + " " + uri)
		case name == "request-line":
			fmt.Fprintf(&b, "%s %s HTTP/%d.%d", r.Method, uri, r.ProtoMajor, r.ProtoMinor)
		default:
			b.WriteString(name + ":")
		}
		if i < len(headers)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (h *HMACAuth) authenticate(c *plugin.Ctx) *plugin.AuthFailure {
	r := c.Request
	authz, proxyAuthz := r.Header.Get("Authorization"), r.Header.Get("Proxy-Authorization")
	if authz == "" && proxyAuthz == "" {
		return &plugin.AuthFailure{Status: 401, Message: "Unauthorized", Header: h.www}
	}
	if !h.clockOK(r, "X-Date") && !h.clockOK(r, "Date") {
		return fail(msgClockSkew)
	}
	p, ok := parseFields(proxyAuthz)
	used := "Proxy-Authorization"
	if !ok {
		p, ok = parseFields(authz)
		used = "Authorization"
	}
	if !ok || p.username == "" || p.signature == "" || !h.algs[p.algorithm] {
		return fail(msgNotValid)
	}
	for _, e := range h.cfg.EnforceHeaders {
		found := false
		for _, hd := range p.headers {
			if strings.EqualFold(hd, e) {
				found = true
				break
			}
		}
		if !found {
			return fail(msgNotValid)
		}
	}
	cred := h.store.HMACAuthByUsername(p.username)
	if cred == nil {
		return fail(msgNotValid)
	}
	m := hmac.New(hashes[p.algorithm], []byte(cred.Secret))
	m.Write([]byte(signingString(r, p.headers)))
	got, err := base64.StdEncoding.DecodeString(p.signature)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return fail(msgNotSame)
	}
	if h.cfg.ValidateRequestBody && !validBody(r) {
		return fail(msgNotSame)
	}
	consumer := h.store.ConsumerByID(cred.ConsumerID)
	if consumer == nil {
		return fail(msgNotValid)
	}
	if h.cfg.HideCredentials {
		c.ClearUpstreamHeader(used)
	}
	plugin.SetConsumer(c, consumer, &plugin.Credential{ID: cred.ID, ConsumerID: cred.ConsumerID, Identifier: cred.Username})
	return nil
}

// validBody checks the Digest header (SHA-256=<base64>) against the body;
// a request without body and without Digest passes.
func validBody(r *http.Request) bool {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			return false
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b))
		body = b
	}
	digest := r.Header.Get("Digest")
	if digest == "" {
		return len(body) == 0
	}
	sum := sha256.Sum256(body)
	want := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(digest), []byte(want)) == 1
}
