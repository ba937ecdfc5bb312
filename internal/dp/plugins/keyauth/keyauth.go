// Package keyauth is Kong's key-auth plugin: API keys from headers, the
// query string or the body, looked up among key-auth credentials.
package keyauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "key-auth"
	Priority = 1250
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	KeyNames        []string `json:"key_names"`
	HideCredentials bool     `json:"hide_credentials"`
	Anonymous       *string  `json:"anonymous"`
	KeyInHeader     bool     `json:"key_in_header"`
	KeyInQuery      bool     `json:"key_in_query"`
	KeyInBody       bool     `json:"key_in_body"`
	RunOnPreflight  bool     `json:"run_on_preflight"`
	Realm           *string  `json:"realm"`
}

// KeyAuth is a built key-auth instance.
type KeyAuth struct {
	cfg       Config
	anonymous string
	// headerKeys are key_names in canonical header form, index-aligned.
	headerKeys []string
	store      plugin.Store
	// Failures are prebuilt so rejecting a request allocates only the body.
	noKey, duplicate, invalid *plugin.AuthFailure
	now                       func() time.Time
}

var _ plugin.Accesser = (*KeyAuth)(nil)

// New builds a key-auth instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("key-auth: invalid config: %w", err)
	}
	if len(cfg.KeyNames) == 0 {
		return nil, fmt.Errorf("key-auth: key_names must not be empty")
	}
	k := &KeyAuth{cfg: cfg, store: env, now: time.Now}
	if cfg.Anonymous != nil {
		k.anonymous = *cfg.Anonymous
	}
	for _, n := range cfg.KeyNames {
		if n == "" {
			return nil, fmt.Errorf("key-auth: empty key name")
		}
		k.headerKeys = append(k.headerKeys, textproto.CanonicalMIMEHeaderKey(n))
	}
	www := "Key"
	if cfg.Realm != nil && *cfg.Realm != "" {
		www = `Key realm="` + *cfg.Realm + `"`
	}
	hdr := http.Header{"Www-Authenticate": {www}}
	k.noKey = &plugin.AuthFailure{Status: 401, Message: "No API key found in request", Header: hdr}
	k.duplicate = &plugin.AuthFailure{Status: 401, Message: "Duplicate API key found", Header: hdr}
	k.invalid = &plugin.AuthFailure{Status: 401, Message: "Unauthorized", Header: hdr}
	return k, nil
}

// Access implements [plugin.Accesser].
func (k *KeyAuth) Access(c *plugin.Ctx) error {
	if !k.cfg.RunOnPreflight && c.Request.Method == http.MethodOptions {
		return nil
	}
	plugin.Authenticate(c, k.store, k.anonymous, k.authenticate)
	return nil
}

func (k *KeyAuth) authenticate(c *plugin.Ctx) *plugin.AuthFailure {
	r := c.Request
	var key string
	found := false
	var form url.Values
	for i, name := range k.cfg.KeyNames {
		if k.cfg.KeyInHeader {
			if vs := r.Header[k.headerKeys[i]]; len(vs) > 1 {
				return k.duplicate
			} else if len(vs) == 1 {
				key, found = vs[0], true
				if k.cfg.HideCredentials {
					delete(r.Header, k.headerKeys[i])
				}
				break
			}
		}
		if k.cfg.KeyInQuery {
			v, n := queryValue(r.URL.RawQuery, name)
			if n > 1 {
				return k.duplicate
			}
			if n == 1 {
				key, found = v, true
				if k.cfg.HideCredentials {
					q := r.URL.Query()
					q.Del(name)
					r.URL.RawQuery = q.Encode()
				}
				break
			}
		}
		if k.cfg.KeyInBody {
			if form == nil {
				form = readBody(r)
			}
			if vs := form[name]; len(vs) > 1 {
				return k.duplicate
			} else if len(vs) == 1 {
				key, found = vs[0], true
				if k.cfg.HideCredentials {
					form.Del(name)
					writeBody(r, form)
				}
				break
			}
		}
	}
	if !found || key == "" {
		return k.noKey
	}
	cred := k.store.KeyAuthByKey(key)
	if cred == nil || (!cred.ExpiresAt.IsZero() && !k.now().Before(cred.ExpiresAt)) {
		return k.invalid
	}
	consumer := k.store.ConsumerByID(cred.ConsumerID)
	if consumer == nil {
		return k.invalid
	}
	plugin.SetConsumer(c, consumer, &plugin.Credential{ID: cred.ID, ConsumerID: cred.ConsumerID, Identifier: cred.ID})
	return nil
}

// queryValue returns the value of name in a raw query and how many times it
// occurs. It allocates only when the value is escaped.
func queryValue(raw, name string) (string, int) {
	var val string
	n := 0
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			if strings.ContainsAny(k, "%+") {
				if uk, err := url.QueryUnescape(k); err != nil || uk != name {
					continue
				}
			} else {
				continue
			}
		}
		n++
		if strings.ContainsAny(v, "%+") {
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
		}
		val = v
	}
	return val, n
}

const maxBody = 8 << 20

// readBody parses a url-encoded or JSON object body (string values only),
// leaving r.Body readable again.
func readBody(r *http.Request) url.Values {
	form := url.Values{}
	if r.Body == nil || r.Body == http.NoBody {
		return form
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return form
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		if f, err := url.ParseQuery(string(b)); err == nil {
			form = f
		}
	case "application/json":
		var obj map[string]any
		if json.Unmarshal(b, &obj) == nil {
			for k, v := range obj {
				if s, ok := v.(string); ok {
					form.Set(k, s)
				}
			}
		}
	}
	return form
}

// writeBody re-encodes a url-encoded or JSON body after removing a key.
func writeBody(r *http.Request, form url.Values) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var b []byte
	switch mt {
	case "application/x-www-form-urlencoded":
		b = []byte(form.Encode())
	case "application/json":
		old, _ := io.ReadAll(r.Body)
		var obj map[string]any
		if json.Unmarshal(old, &obj) != nil {
			r.Body = io.NopCloser(bytes.NewReader(old))
			return
		}
		for k := range obj {
			if _, ok := form[k]; !ok {
				if _, isStr := obj[k].(string); isStr {
					delete(obj, k)
				}
			}
		}
		b, _ = json.Marshal(obj)
	default:
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", fmt.Sprint(len(b)))
}
