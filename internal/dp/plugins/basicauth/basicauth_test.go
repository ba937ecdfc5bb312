package basicauth_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/basicauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

var env = plugin.MemEnvOptions{
	Consumers:  []plugin.Consumer{{ID: "c-bob", Username: "bob"}, {ID: "c-anon", Username: "anon"}},
	BasicAuths: []plugin.BasicAuthCredential{{ID: "b1", ConsumerID: "c-bob", Username: "bob", Password: plugin.HashBasicAuthPassword("p:ss", "c-bob")}},
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBasicAuth(t *testing.T) {
	anon := "anon"
	tests := []struct {
		name     string
		cfg      basicauth.Config
		headers  map[string]string
		status   int
		consumer string
		check    func(t *testing.T, h http.Header)
	}{
		{name: "no header", status: 401},
		{name: "wrong password", headers: map[string]string{"Authorization": basic("bob", "nope")}, status: 401},
		{name: "unknown user", headers: map[string]string{"Authorization": basic("eve", "p:ss")}, status: 401},
		{name: "not basic", headers: map[string]string{"Authorization": "Bearer x"}, status: 401},
		{name: "bad base64", headers: map[string]string{"Authorization": "Basic !!!"}, status: 401},
		{name: "ok, password with colon", headers: map[string]string{"Authorization": basic("bob", "p:ss")}, status: 200, consumer: "c-bob",
			check: func(t *testing.T, h http.Header) {
				if h.Get("X-Credential-Identifier") != "bob" || h.Get("Authorization") == "" {
					t.Errorf("headers %v", h)
				}
			}},
		{name: "lowercase scheme", headers: map[string]string{"Authorization": "basic " + base64.StdEncoding.EncodeToString([]byte("bob:p:ss"))}, status: 200, consumer: "c-bob"},
		{name: "proxy-authorization first", headers: map[string]string{"Proxy-Authorization": basic("bob", "p:ss"), "Authorization": "Bearer other"}, status: 200, consumer: "c-bob"},
		{name: "falls back to authorization", headers: map[string]string{"Proxy-Authorization": basic("bob", "bad"), "Authorization": basic("bob", "p:ss")}, status: 200, consumer: "c-bob"},
		{name: "hide credentials", cfg: basicauth.Config{HideCredentials: true}, headers: map[string]string{"Authorization": basic("bob", "p:ss")}, status: 200, consumer: "c-bob",
			check: func(t *testing.T, h http.Header) {
				if h.Get("Authorization") != "" {
					t.Error("credentials not hidden")
				}
			}},
		{name: "anonymous", cfg: basicauth.Config{Anonymous: &anon}, headers: map[string]string{"Authorization": basic("bob", "bad")}, status: 200, consumer: "c-anon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Realm == "" {
				tt.cfg.Realm = "service"
			}
			s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{{Name: "basic-auth", Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.status == 401 {
				if !strings.HasPrefix(res.Body, plugintest.ErrorBody("Unauthorized")) || res.Header.Get("WWW-Authenticate") != `Basic realm="service"` {
					t.Errorf("got %q %v", res.Body, res.Header)
				}
				return
			}
			seen, _ := res.Seen()
			h := http.Header(seen.Header)
			if h.Get("X-Consumer-Id") != tt.consumer {
				t.Errorf("consumer %q, want %q", h.Get("X-Consumer-Id"), tt.consumer)
			}
			if tt.check != nil {
				tt.check(t, h)
			}
		})
	}
}
