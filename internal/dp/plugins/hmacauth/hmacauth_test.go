package hmacauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func sign(secret, s string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestHMACAuth(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := nowFunc
	nowFunc = func() time.Time { return now }
	defer func() { nowFunc = old }()
	env := plugin.MemEnvOptions{
		Consumers: []plugin.Consumer{{ID: "c1", Username: "u1"}},
		HMACAuths: []plugin.HMACAuthCredential{{ID: "h1", ConsumerID: "c1", Username: "alice", Secret: "s3cret"}},
	}
	date := now.Format(http.TimeFormat)
	good := func(r *http.Request) {
		r.Header.Set("Date", date)
		sig := sign("s3cret", "date: "+date+"\nGET /p?q=1 HTTP/1.1")
		r.Header.Set("Authorization", `hmac username="alice", algorithm="hmac-sha256", headers="date request-line", signature="`+sig+`"`)
	}
	tests := []struct {
		name   string
		cfg    Config
		setup  func(r *http.Request)
		status int
		msg    string
	}{
		{"no header", Config{}, func(*http.Request) {}, 401, "Unauthorized"},
		{"no date", Config{}, func(r *http.Request) { r.Header.Set("Authorization", "hmac x") }, 401, msgClockSkew},
		{"date too old", Config{}, func(r *http.Request) {
			good(r)
			r.Header.Set("Date", now.Add(-10*time.Minute).Format(http.TimeFormat))
		}, 401, msgClockSkew},
		{"malformed", Config{}, func(r *http.Request) { r.Header.Set("Date", date); r.Header.Set("Authorization", "hmac nonsense") }, 401, msgNotValid},
		{"good", Config{}, good, 200, ""},
		{"good via proxy-authorization, hidden", Config{HideCredentials: true}, func(r *http.Request) {
			good(r)
			r.Header.Set("Proxy-Authorization", r.Header.Get("Authorization"))
			r.Header.Del("Authorization")
		}, 200, ""},
		{"wrong signature", Config{}, func(r *http.Request) {
			good(r)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), `signature="`, `signature="AAAA`, 1))
		}, 401, msgNotSame},
		{"algorithm not allowed", Config{Algorithms: []string{"hmac-sha512"}}, good, 401, msgNotValid},
		{"enforced header missing", Config{EnforceHeaders: []string{"x-custom"}}, good, 401, msgNotValid},
		{"unknown user", Config{}, func(r *http.Request) {
			good(r)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "alice", "bob", 1))
		}, 401, msgNotValid},
		{"body digest required", Config{ValidateRequestBody: true}, func(r *http.Request) {
			good(r)
			r.Body = http.NoBody
			r.Header.Set("Digest", "SHA-256=wrong")
		}, 401, msgNotSame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.ClockSkew == 0 {
				tt.cfg.ClockSkew = 300
			}
			s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/p?q=1", nil)
			tt.setup(r)
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.status, res.Body)
			}
			if tt.msg != "" && !strings.HasPrefix(res.Body, plugintest.ErrorBody(tt.msg)) {
				t.Errorf("body %q, want %q", res.Body, tt.msg)
			}
			if tt.status == 200 {
				seen, _ := res.Seen()
				h := http.Header(seen.Header)
				if h.Get("X-Consumer-Id") != "c1" || h.Get("X-Credential-Identifier") != "alice" {
					t.Errorf("headers %v", seen.Header)
				}
				if tt.cfg.HideCredentials && h.Get("Proxy-Authorization") != "" {
					t.Error("credentials not hidden")
				}
			}
		})
	}
}
