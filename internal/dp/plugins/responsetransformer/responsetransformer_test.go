package responsetransformer_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	rtx "github.com/gantry-gw/gantry/internal/dp/plugins/responsetransformer"
)

func upstream(ct, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("X-Remove", "1")
		w.Header().Set("X-Old", "moved")
		w.Header().Set("X-Rep", "orig")
		w.Header().Set("X-App", "one")
		_, _ = io.WriteString(w, body)
	})
}

func TestResponseTransformer(t *testing.T) {
	full := rtx.Config{
		Remove:  rtx.Fields{Headers: []string{"x-remove"}, JSON: []string{"secret"}},
		Rename:  rtx.Fields{Headers: []string{"x-old:x-new"}, JSON: []string{"a:b"}},
		Replace: rtx.Fields{Headers: []string{"x-rep:new", "x-absent:no"}, JSON: []string{"n:42", "missing:x"}, JSONTypes: []string{"number", "string"}},
		Add:     rtx.Fields{Headers: []string{"x-add:added", "x-rep:no"}, JSON: []string{"flag:true", "b:no"}, JSONTypes: []string{"boolean"}},
		Append:  rtx.Fields{Headers: []string{"x-app:two"}, JSON: []string{"list:c"}},
	}
	tests := []struct {
		name   string
		ct     string
		body   string
		want   string
		header map[string][]string
	}{
		{"json", "application/json; charset=utf-8", `{"secret":"s","a":1,"n":"x","list":["a","b"]}`, `{"b":1,"flag":true,"list":["a","b","c"],"n":42}`,
			map[string][]string{"X-Remove": nil, "X-Old": nil, "X-New": {"moved"}, "X-Rep": {"new"}, "X-Absent": nil, "X-Add": {"added"}, "X-App": {"one", "two"}}},
		{"not json untouched", "text/plain", `{"secret":"s"}`, `{"secret":"s"}`, map[string][]string{"X-Add": {"added"}}},
		{"json array untouched", "application/json", `[1,2]`, `[1,2]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "response-transformer", Config: plugintest.Config(full)}}, Upstream: upstream(tt.ct, tt.body)})
			res := s.Do(httptest.NewRequest("GET", "/", nil))
			if res.Body != tt.want {
				t.Errorf("body %s, want %s", res.Body, tt.want)
			}
			if res.Header.Get("Content-Length") != strconv.Itoa(len(tt.want)) {
				t.Errorf("content-length %q for %d bytes", res.Header.Get("Content-Length"), len(tt.want))
			}
			for k, v := range tt.header {
				if got := res.Header.Values(k); !reflect.DeepEqual(got, v) && !(len(got) == 0 && v == nil) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []rtx.Config{
		{Add: rtx.Fields{Headers: []string{"nocolon"}}},
		{Add: rtx.Fields{JSON: []string{"a:x"}, JSONTypes: []string{"number"}}},
		{Add: rtx.Fields{JSON: []string{"a:x"}, JSONTypes: []string{"object"}}},
	} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "response-transformer", Config: plugintest.Config(cfg)}}}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
