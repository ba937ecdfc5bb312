package requesttermination_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func TestRequestTermination(t *testing.T) {
	tests := []struct {
		name   string
		cfg    map[string]any
		target string
		header map[string]string
		status int
		body   string
		ctype  string
	}{
		{"default 503", map[string]any{"status_code": 503}, "/", nil, 503, `{"message":"Service unavailable"}`, plugin.ContentTypeJSON},
		{"404 default message", map[string]any{"status_code": 404}, "/", nil, 404, `{"message":"Not found"}`, plugin.ContentTypeJSON},
		{"custom message", map[string]any{"status_code": 403, "message": "So long"}, "/", nil, 403, `{"message":"So long"}`, plugin.ContentTypeJSON},
		{"no default for 418", map[string]any{"status_code": 418}, "/", nil, 418, ``, ""},
		{"raw body", map[string]any{"status_code": 200, "body": "<h1>bye</h1>", "content_type": "text/html"}, "/", nil, 200, `<h1>bye</h1>`, "text/html"},
		{"trigger absent passes", map[string]any{"status_code": 503, "trigger": "x-stop"}, "/", nil, 200, "", ""},
		{"trigger header", map[string]any{"status_code": 503, "trigger": "x-stop"}, "/", map[string]string{"X-Stop": "1"}, 503, `{"message":"Service unavailable"}`, plugin.ContentTypeJSON},
		{"trigger query", map[string]any{"status_code": 503, "trigger": "x-stop"}, "/?x-stop", nil, 503, `{"message":"Service unavailable"}`, plugin.ContentTypeJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "request-termination", Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", tt.target, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.status == 200 && tt.body == "" {
				if _, ok := res.Seen(); !ok {
					t.Error("not proxied")
				}
				return
			}
			if res.Body != tt.body || res.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("got %q (%q), want %q (%q)", res.Body, res.Header.Get("Content-Type"), tt.body, tt.ctype)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	s := plugintest.New(t, plugintest.Options{
		Plugins: []plugin.PluginEntity{{Name: "request-termination", RouteID: "r1", Config: plugintest.Config(map[string]any{"status_code": 404, "echo": true})}},
		Routes:  []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}}, RouteID: "r1",
	})
	r := httptest.NewRequest("GET", "http://example.test:8000/a/b?q=1", nil)
	r.Header.Set("X-Hello", "world")
	res := s.Do(r)
	var got struct {
		Message string `json:"message"`
		Request struct {
			Host    string            `json:"host"`
			Port    int               `json:"port"`
			Path    string            `json:"path"`
			Method  string            `json:"method"`
			Headers map[string]string `json:"headers"`
			Query   map[string]string `json:"query"`
		} `json:"request"`
		Route   struct{ ID string } `json:"matched_route"`
		Service struct{ ID string } `json:"matched_service"`
	}
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatal(err, res.Body)
	}
	if res.Status != 404 || got.Message != "Not found" || got.Request.Host != "example.test" || got.Request.Port != 8000 || got.Request.Path != "/a/b" ||
		got.Request.Headers["x-hello"] != "world" || got.Request.Query["q"] != "1" || got.Route.ID != "r1" || got.Service.ID != "s1" {
		t.Errorf("echo %d %s", res.Status, res.Body)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []map[string]any{
		{"status_code": 99},
		{"status_code": 200, "message": "x", "body": "y"},
		{"status_code": 200, "echo": true, "body": "y"},
	} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "request-termination", Config: plugintest.Config(cfg)}}}); err == nil {
			t.Errorf("%v accepted", cfg)
		}
	}
}
