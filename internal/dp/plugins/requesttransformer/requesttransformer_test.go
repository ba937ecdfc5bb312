package requesttransformer_test

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	rtx "github.com/gantry-gw/gantry/internal/dp/plugins/requesttransformer"
)

func str(s string) *string { return &s }

func TestRequestTransformer(t *testing.T) {
	tests := []struct {
		name  string
		cfg   rtx.Config
		req   func() *http.Request
		check func(t *testing.T, s plugintest.Seen)
	}{
		{"headers in order", rtx.Config{
			Remove:  rtx.Fields{Headers: []string{"x-remove"}},
			Rename:  rtx.Fields{Headers: []string{"x-old:x-new"}},
			Replace: rtx.ReplaceFields{Fields: rtx.Fields{Headers: []string{"x-rep:replaced", "x-absent:no"}}},
			Add:     rtx.Fields{Headers: []string{"x-add:added", "x-exists:no"}},
			Append:  rtx.Fields{Headers: []string{"x-app:two"}},
		}, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Remove", "1")
			r.Header.Set("X-Old", "moved")
			r.Header.Set("X-Rep", "orig")
			r.Header.Set("X-Exists", "yes")
			r.Header.Set("X-App", "one")
			return r
		}, func(t *testing.T, s plugintest.Seen) {
			h := http.Header(s.Header)
			want := map[string][]string{"X-Remove": nil, "X-Old": nil, "X-New": {"moved"}, "X-Rep": {"replaced"}, "X-Absent": nil, "X-Add": {"added"}, "X-Exists": {"yes"}, "X-App": {"one", "two"}}
			for k, v := range want {
				if got := h.Values(k); !reflect.DeepEqual(got, v) && !(len(got) == 0 && v == nil) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
		}},
		{"query", rtx.Config{
			Remove:  rtx.Fields{Querystring: []string{"drop"}},
			Rename:  rtx.Fields{Querystring: []string{"old:new"}},
			Replace: rtx.ReplaceFields{Fields: rtx.Fields{Querystring: []string{"rep:2", "nope:x"}}},
			Add:     rtx.Fields{Querystring: []string{"add:y", "rep:z"}},
			Append:  rtx.Fields{Querystring: []string{"multi:b"}},
		}, func() *http.Request { return httptest.NewRequest("GET", "/?drop=1&old=o&rep=1&multi=a", nil) },
			func(t *testing.T, s plugintest.Seen) {
				if s.Query != "add=y&multi=a&multi=b&new=o&rep=2" {
					t.Errorf("query %q", s.Query)
				}
			}},
		{"uri and method", rtx.Config{HTTPMethod: str("post"), Replace: rtx.ReplaceFields{URI: str("/new/path")}},
			func() *http.Request { return httptest.NewRequest("GET", "/old?a=1", nil) },
			func(t *testing.T, s plugintest.Seen) {
				if s.Method != "POST" || s.Path != "/new/path" || s.Query != "a=1" {
					t.Errorf("got %s %s?%s", s.Method, s.Path, s.Query)
				}
			}},
		{"json body", rtx.Config{
			Remove:  rtx.Fields{Body: []string{"secret"}},
			Rename:  rtx.Fields{Body: []string{"a:b"}},
			Replace: rtx.ReplaceFields{Fields: rtx.Fields{Body: []string{"r:new"}}},
			Add:     rtx.Fields{Body: []string{"added:v", "r:no"}},
			Append:  rtx.Fields{Body: []string{"list:x"}},
		}, func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader(`{"secret":1,"a":2,"r":"old","list":"w"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, func(t *testing.T, s plugintest.Seen) {
			if s.Body != `{"added":"v","b":2,"list":["w","x"],"r":"new"}` {
				t.Errorf("body %s", s.Body)
			}
			if http.Header(s.Header).Get("Content-Length") != strconv.Itoa(len(s.Body)) {
				t.Errorf("content-length %q", http.Header(s.Header).Get("Content-Length"))
			}
		}},
		{"form body", rtx.Config{Remove: rtx.Fields{Body: []string{"x"}}, Add: rtx.Fields{Body: []string{"y:1"}}},
			func() *http.Request {
				r := httptest.NewRequest("POST", "/", strings.NewReader("x=1&z=2"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}, func(t *testing.T, s plugintest.Seen) {
				if s.Body != "y=1&z=2" {
					t.Errorf("body %q", s.Body)
				}
			}},
		{"form body, every operation", rtx.Config{
			Remove:  rtx.Fields{Body: []string{"drop"}},
			Rename:  rtx.Fields{Body: []string{"old:new"}},
			Replace: rtx.ReplaceFields{Fields: rtx.Fields{Body: []string{"rep:2", "nope:x"}}},
			Add:     rtx.Fields{Body: []string{"add:y", "rep:z"}},
			Append:  rtx.Fields{Body: []string{"multi:b"}},
		}, func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("drop=1&old=o&rep=1&multi=a"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, func(t *testing.T, s plugintest.Seen) {
			if s.Body != "add=y&multi=a&multi=b&new=o&rep=2" {
				t.Errorf("body %q", s.Body)
			}
		}},
		{"body without content type untouched", rtx.Config{Add: rtx.Fields{Body: []string{"y:1"}}},
			func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("raw")) },
			func(t *testing.T, s plugintest.Seen) {
				if s.Body != "raw" {
					t.Errorf("body %q", s.Body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "request-transformer", Config: plugintest.Config(tt.cfg)}}})
			res := s.Do(tt.req())
			seen, ok := res.Seen()
			if !ok {
				t.Fatalf("not proxied: %d %s", res.Status, res.Body)
			}
			tt.check(t, seen)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cfg := rtx.Config{Add: rtx.Fields{Headers: []string{"no-colon"}}}
	if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "request-transformer", Config: plugintest.Config(cfg)}}}); err == nil || !strings.Contains(err.Error(), "expected name:value") {
		t.Errorf("err %v", err)
	}
}
