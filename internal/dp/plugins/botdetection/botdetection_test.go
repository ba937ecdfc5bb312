package botdetection_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/botdetection"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func TestBotDetection(t *testing.T) {
	browser := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
	tests := []struct {
		name   string
		cfg    botdetection.Config
		uas    []string
		status int
		msg    string
	}{
		{"browser", botdetection.Config{}, []string{browser}, 200, ""},
		{"no user agent", botdetection.Config{}, nil, 200, ""},
		{"googlebot", botdetection.Config{}, []string{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, 403, "Forbidden"},
		{"curl", botdetection.Config{}, []string{"curl/8.5.0"}, 403, "Forbidden"},
		{"allow wins", botdetection.Config{Allow: []string{"^curl/"}}, []string{"curl/8.5.0"}, 200, ""},
		{"deny rule", botdetection.Config{Deny: []string{"Chrome/120"}}, []string{browser}, 403, "Forbidden"},
		{"two user agents", botdetection.Config{}, []string{browser, browser}, 400, "Only one User-Agent header allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "bot-detection", Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/", nil)
			for _, ua := range tt.uas {
				r.Header.Add("User-Agent", ua)
			}
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.msg != "" && !strings.HasPrefix(res.Body, plugintest.ErrorBody(tt.msg)) {
				t.Errorf("body %q", res.Body)
			}
		})
	}
}

func TestInvalidRegex(t *testing.T) {
	if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "bot-detection", Config: plugintest.Config(botdetection.Config{Deny: []string{"("}})}}}); err == nil {
		t.Error("accepted")
	}
}
