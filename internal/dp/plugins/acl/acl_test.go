package acl_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/acl"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

var env = plugin.MemEnvOptions{
	Consumers: []plugin.Consumer{{ID: "c-admin", Username: "admin"}, {ID: "c-user", Username: "user"}, {ID: "c-none", Username: "none"}, {ID: "c-anon", Username: "anon"}},
	KeyAuths: []plugin.KeyAuthCredential{
		{ID: "k1", ConsumerID: "c-admin", Key: "admin"}, {ID: "k2", ConsumerID: "c-user", Key: "user"}, {ID: "k3", ConsumerID: "c-none", Key: "none"},
	},
	ACLs: []plugin.ACLGroup{{ID: "a1", ConsumerID: "c-admin", Group: "admin"}, {ID: "a2", ConsumerID: "c-admin", Group: "ops"}, {ID: "a3", ConsumerID: "c-user", Group: "users"}},
}

func TestACL(t *testing.T) {
	ka := func(anon string) plugin.PluginEntity {
		cfg := map[string]any{"key_names": []string{"apikey"}, "key_in_header": true, "run_on_preflight": true}
		if anon != "" {
			cfg["anonymous"] = anon
		}
		return plugin.PluginEntity{Name: "key-auth", Config: plugintest.Config(cfg)}
	}
	tests := []struct {
		name    string
		auth    plugin.PluginEntity
		cfg     acl.Config
		key     string
		status  int
		body    string
		groups  string
		noGroup bool
	}{
		{name: "allowed", auth: ka(""), cfg: acl.Config{Allow: []string{"admin"}}, key: "admin", status: 200, groups: "admin, ops"},
		{name: "not in allow", auth: ka(""), cfg: acl.Config{Allow: []string{"admin"}}, key: "user", status: 403, body: "You cannot consume this service"},
		{name: "denied", auth: ka(""), cfg: acl.Config{Deny: []string{"ops"}}, key: "admin", status: 403, body: "You cannot consume this service"},
		{name: "not denied", auth: ka(""), cfg: acl.Config{Deny: []string{"ops"}}, key: "user", status: 200, groups: "users"},
		{name: "consumer without groups", auth: ka(""), cfg: acl.Config{Allow: []string{"admin"}}, key: "none", status: 403, body: "You cannot consume this service"},
		{name: "anonymous without groups", auth: ka("anon"), cfg: acl.Config{Deny: []string{"x"}}, status: 403, body: "You cannot consume this service"},
		{name: "hidden header", auth: ka(""), cfg: acl.Config{Allow: []string{"admin"}, HideGroupsHeader: true}, key: "admin", status: 200, noGroup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{tt.auth, {Name: "acl", Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/", nil)
			if tt.key != "" {
				r.Header.Set("apikey", tt.key)
			}
			r.Header.Set("X-Consumer-Groups", "spoofed")
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.status, res.Body)
			}
			if tt.body != "" && !strings.HasPrefix(res.Body, plugintest.ErrorBody(tt.body)) {
				t.Errorf("body %q", res.Body)
			}
			if tt.status != 200 {
				return
			}
			seen, _ := res.Seen()
			got := http.Header(seen.Header).Get("X-Consumer-Groups")
			if tt.noGroup {
				if got != "spoofed" {
					t.Errorf("groups header %q, want untouched", got)
				}
			} else if got != tt.groups {
				t.Errorf("groups %q, want %q", got, tt.groups)
			}
		})
	}
}

func TestNoConsumer(t *testing.T) {
	s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{{Name: "acl", Config: plugintest.Config(acl.Config{Allow: []string{"a"}})}}})
	res := s.Do(httptest.NewRequest("GET", "/", nil))
	if res.Status != 401 || !strings.HasPrefix(res.Body, plugintest.ErrorBody("Unauthorized")) {
		t.Errorf("got %d %q", res.Status, res.Body)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []acl.Config{{}, {Allow: []string{"a"}, Deny: []string{"b"}}} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "acl", Config: plugintest.Config(cfg)}}}); err == nil || !strings.Contains(err.Error(), "exactly one of") {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}
}
