package iprestriction_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/iprestriction"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func TestIPRestriction(t *testing.T) {
	status, msg := 401, "go away"
	tests := []struct {
		name   string
		cfg    iprestriction.Config
		ip     string
		status int
		body   string
	}{
		{"allowed by cidr", iprestriction.Config{Allow: []string{"10.0.0.0/8"}}, "10.1.2.3", 200, ""},
		{"not in allow", iprestriction.Config{Allow: []string{"10.0.0.0/8"}}, "192.168.0.1", 403, "IP address not allowed: 192.168.0.1"},
		{"denied ip", iprestriction.Config{Deny: []string{"192.168.0.1"}}, "192.168.0.1", 403, "IP address not allowed: 192.168.0.1"},
		{"deny wins over allow", iprestriction.Config{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.0.0.5"}}, "10.0.0.5", 403, "IP address not allowed: 10.0.0.5"},
		{"not denied", iprestriction.Config{Deny: []string{"192.168.0.0/16"}}, "10.0.0.1", 200, ""},
		{"ipv6", iprestriction.Config{Deny: []string{"2001:db8::/32"}}, "[2001:db8::1]", 403, "IP address not allowed: 2001:db8::1"},
		{"custom status and message", iprestriction.Config{Deny: []string{"10.0.0.1"}, Status: &status, Message: &msg}, "10.0.0.1", 401, "go away"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "ip-restriction", Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.ip + ":5555"
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.body != "" && !strings.HasPrefix(res.Body, plugintest.ErrorBody(tt.body)) {
				t.Errorf("body %q", res.Body)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []iprestriction.Config{{}, {Allow: []string{"10.0.0.0/33"}}, {Deny: []string{"nope"}}} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "ip-restriction", Config: plugintest.Config(cfg)}}}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
