// Package basicauth is Kong's basic-auth plugin.
package basicauth

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "basic-auth"
	Priority = 1100
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	Anonymous       *string `json:"anonymous"`
	HideCredentials bool    `json:"hide_credentials"`
	Realm           string  `json:"realm"`
}

// BasicAuth is a built basic-auth instance.
type BasicAuth struct {
	cfg       Config
	anonymous string
	store     plugin.Store
	fail      *plugin.AuthFailure
}

var _ plugin.Accesser = (*BasicAuth)(nil)

// New builds a basic-auth instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("basic-auth: invalid config: %w", err)
	}
	if cfg.Realm == "" {
		cfg.Realm = "service"
	}
	b := &BasicAuth{cfg: cfg, store: env}
	if cfg.Anonymous != nil {
		b.anonymous = *cfg.Anonymous
	}
	b.fail = &plugin.AuthFailure{Status: 401, Message: "Unauthorized",
		Header: http.Header{"Www-Authenticate": {`Basic realm="` + cfg.Realm + `"`}}}
	return b, nil
}

// Access implements [plugin.Accesser].
func (b *BasicAuth) Access(c *plugin.Ctx) error {
	plugin.Authenticate(c, b.store, b.anonymous, b.authenticate)
	return nil
}

// parse extracts user and password from a Basic authorization value.
func parse(v string) (user, pass string, ok bool) {
	v = strings.TrimLeft(v, " \t")
	if len(v) < 5 || (v[0] != 'B' && v[0] != 'b') || v[1:5] != "asic" {
		return "", "", false
	}
	enc := strings.TrimSpace(v[5:])
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, pass, true
}

func (b *BasicAuth) authenticate(c *plugin.Ctx) *plugin.AuthFailure {
	h := c.Request.Header
	var cred *plugin.BasicAuthCredential
	used := ""
	for _, name := range []string{"Proxy-Authorization", "Authorization"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		user, pass, ok := parse(v)
		if !ok {
			continue
		}
		cr := b.store.BasicAuthByUsername(user)
		if cr == nil {
			continue
		}
		want := plugin.HashBasicAuthPassword(pass, cr.ConsumerID)
		if subtle.ConstantTimeCompare([]byte(want), []byte(cr.Password)) == 1 {
			cred, used = cr, name
			break
		}
	}
	if cred == nil {
		return b.fail
	}
	consumer := b.store.ConsumerByID(cred.ConsumerID)
	if consumer == nil {
		return b.fail
	}
	if b.cfg.HideCredentials {
		c.ClearUpstreamHeader(used)
	}
	plugin.SetConsumer(c, consumer, &plugin.Credential{ID: cred.ID, ConsumerID: cred.ConsumerID, Identifier: cred.Username})
	return nil
}
