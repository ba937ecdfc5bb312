package correlationid_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func TestCorrelationID(t *testing.T) {
	uuidRe := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	tests := []struct {
		name     string
		cfg      map[string]any
		incoming string
		pattern  string
		echo     bool
	}{
		{"uuid#counter", map[string]any{"header_name": "Kong-Request-ID", "generator": "uuid#counter"}, "", `^` + uuidRe + `#\d+$`, false},
		{"uuid echoed", map[string]any{"header_name": "X-Corr", "generator": "uuid", "echo_downstream": true}, "", `^` + uuidRe + `$`, true},
		{"existing kept", map[string]any{"header_name": "X-Corr", "generator": "uuid", "echo_downstream": true}, "abc", `^abc$`, true},
		{"tracker", map[string]any{"header_name": "X-Corr", "generator": "tracker"}, "", `^192\.0\.2\.1-[0-9a-f]{32}-\d+\.\d{3}$`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "correlation-id", Config: plugintest.Config(tt.cfg)}}})
			name := tt.cfg["header_name"].(string)
			r := httptest.NewRequest("GET", "/", nil)
			if tt.incoming != "" {
				r.Header.Set(name, tt.incoming)
			}
			res := s.Do(r)
			seen, _ := res.Seen()
			up := http.Header(seen.Header).Get(name)
			if !regexp.MustCompile(tt.pattern).MatchString(up) {
				t.Errorf("upstream %s = %q, want %s", name, up, tt.pattern)
			}
			if down := res.Header.Get(name); tt.echo != (down != "") || (tt.echo && down != up) {
				t.Errorf("downstream %q, upstream %q, echo %v", down, up, tt.echo)
			}
		})
	}
}
