package requestsizelimiting_test

import (
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

type unknownLength struct{ io.Reader }

func TestRequestSizeLimiting(t *testing.T) {
	cfg := func(size int, unit string, require bool) map[string]any {
		return map[string]any{"allowed_payload_size": size, "size_unit": unit, "require_content_length": require}
	}
	tests := []struct {
		name    string
		cfg     map[string]any
		body    string
		chunked bool
		expect  bool
		status  int
		msg     string
	}{
		{"under limit", cfg(10, "bytes", false), "0123456789", false, false, 200, ""},
		{"over limit", cfg(10, "bytes", false), "0123456789A", false, false, 413, "Request size limit exceeded"},
		{"over limit expect", cfg(10, "bytes", false), "0123456789A", false, true, 417, "Request size limit exceeded"},
		{"kilobytes", cfg(1, "kilobytes", false), strings.Repeat("x", 1025), false, false, 413, "Request size limit exceeded"},
		{"megabytes default unit ok", cfg(1, "megabytes", false), strings.Repeat("x", 2048), false, false, 200, ""},
		{"chunked over", cfg(10, "bytes", false), "0123456789AB", true, false, 413, "Request size limit exceeded"},
		{"chunked under keeps body", cfg(10, "bytes", false), "0123", true, false, 200, ""},
		{"length required", cfg(10, "bytes", true), "0123", true, false, 411, "A valid Content-Length header is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "request-size-limiting", Config: plugintest.Config(tt.cfg)}}})
			var r = httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.chunked {
				r = httptest.NewRequest("POST", "/", unknownLength{strings.NewReader(tt.body)})
				r.ContentLength = -1
			} else {
				r.Header.Set("Content-Length", itoa(len(tt.body)))
			}
			if tt.expect {
				r.Header.Set("Expect", "100-continue")
			}
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.msg != "" && !strings.HasPrefix(res.Body, plugintest.ErrorBody(tt.msg)) {
				t.Errorf("body %q", res.Body)
			}
			if tt.status == 200 {
				if seen, _ := res.Seen(); seen.Body != tt.body {
					t.Errorf("upstream body %q", seen.Body)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
