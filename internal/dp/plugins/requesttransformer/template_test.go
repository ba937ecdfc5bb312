package requesttransformer_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	rtx "github.com/gantry-gw/gantry/internal/dp/plugins/requesttransformer"
)

// captures plays a route's regex path match: groups by number and name.
type captures struct {
	groups []string
	names  map[string]int
}

func (c captures) Group(i int) (string, bool) {
	if i < 0 || i >= len(c.groups) {
		return "", false
	}
	return c.groups[i], true
}

func (c captures) Named(name string) (string, bool) {
	i, ok := c.names[name]
	if !ok {
		return "", false
	}
	return c.Group(i)
}

// sharer stores X-Share in the request's shared context before the
// transformer runs (a higher priority), as a plugin setting kong.ctx.shared.
type sharer struct{}

func (sharer) Access(c *plugin.Ctx) error {
	if v := c.Request.Header.Get("X-Share"); v != "" {
		c.SetShared("tenant", v)
	}
	return nil
}

func init() {
	plugin.Register("test-sharer", 5000, func(json.RawMessage, plugin.Env) (plugin.Instance, error) { return sharer{}, nil })
}

func TestTemplates(t *testing.T) {
	cfg := rtx.Config{
		Rename: rtx.Fields{Headers: []string{"x-source:x-renamed"}, Querystring: []string{"old:$(headers.x_target)"}},
		Replace: rtx.ReplaceFields{URI: str("/users/$(uri_captures.user)/profile"),
			Fields: rtx.Fields{Headers: []string{"x-replace:was $(headers.x_replace)"}}},
		Add: rtx.Fields{
			Headers: []string{
				"x-underscore:$(headers.x_source)",
				`x-bracket:$(headers["X-Source"])`,
				"x-query:id=$(query_params.id)",
				"x-flag:$(query_params.flag)",
				"x-decoded:$(query_params['q s'])",
				"x-missing:<$(headers.nope)>",
				"x-default:$(headers.nope or query_params.nope or 'fallback')",
				"x-first:$(headers.x_multi)",
				"x-escaped:$('$(headers.x_source)')",
				"x-captures:$(uri_captures.user)-$(uri_captures[2])-$(uri_captures[0])",
				"x-no-group:[$(uri_captures.nope)]",
				"x-shared:$(shared.tenant)",
				"x-literal:plain text",
			},
			Querystring: []string{"from_header:$(headers.x_source)"},
			Body:        []string{"from_query:$(query_params.id)"},
		},
		Append: rtx.Fields{Headers: []string{"x-trail:$(headers.x_source)!"}},
	}
	caps := captures{groups: []string{"/u/ann/7", "ann", "7"}, names: map[string]int{"user": 1}}
	s := plugintest.New(t, plugintest.Options{
		Plugins: []plugin.PluginEntity{
			{Name: "test-sharer", Config: json.RawMessage(`{}`)},
			{Name: rtx.Name, Config: plugintest.Config(cfg)},
		},
		URICaptures: func(*http.Request) plugin.URICaptures { return caps },
	})
	r := httptest.NewRequest("POST", "/u/ann/7?id=42&flag&q+s=a%26b&old=v", strings.NewReader(`{"a":1}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Source", "abc")
	r.Header.Set("X-Target", "new")
	r.Header.Set("X-Replace", "before")
	r.Header.Add("X-Multi", "one")
	r.Header.Add("X-Multi", "two")
	r.Header.Set("X-Share", "acme")
	res := s.Do(r)
	seen, ok := res.Seen()
	if !ok {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	h := http.Header(seen.Header)
	for name, want := range map[string]string{
		// Templates read the request as it reached the plugin: X-Source
		// was renamed first, yet still renders.
		"X-Renamed":    "abc",
		"X-Underscore": "abc",
		"X-Bracket":    "abc",
		"X-Query":      "id=42",
		"X-Flag":       "true",
		"X-Decoded":    "a&b",
		"X-Missing":    "<>",
		"X-Default":    "fallback",
		"X-First":      "one",
		"X-Escaped":    "$(headers.x_source)",
		"X-Captures":   "ann-7-/u/ann/7",
		"X-No-Group":   "[]",
		"X-Shared":     "acme",
		"X-Literal":    "plain text",
		"X-Replace":    "was before",
		"X-Trail":      "abc!",
	} {
		t.Run(name, func(t *testing.T) {
			if got := h.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		})
	}
	if seen.Path != "/users/ann/profile" {
		t.Errorf("path %q", seen.Path)
	}
	q, _ := url.ParseQuery(seen.Query)
	if q.Get("new") != "v" || q.Has("old") || q.Get("from_header") != "abc" {
		t.Errorf("query %q", seen.Query)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(seen.Body), &body); err != nil || body["from_query"] != "42" || body["a"] != float64(1) {
		t.Errorf("body %s (%v)", seen.Body, err)
	}
}

func TestTemplatesWithoutCaptures(t *testing.T) {
	// A route without a regex path has no captures: they render empty.
	s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: rtx.Name, Config: plugintest.Config(rtx.Config{
		Add: rtx.Fields{Headers: []string{"x-c:[$(uri_captures.user or 'none')][$(uri_captures[1])]"}},
	})}}})
	res := s.Do(httptest.NewRequest("GET", "/", nil))
	seen, _ := res.Seen()
	if got := http.Header(seen.Header).Get("X-C"); got != "[none][]" {
		t.Errorf("X-C = %q", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"lua call", "x:$(headers.x:upper())", "expected \"or\""},
		{"unknown root", `x:$(os.getenv("HOME"))`, "operands are headers"},
		{"unbalanced", "x:$(headers.x", "unbalanced parentheses"},
		{"numbered header", "x:$(headers[1])", "expected a quoted name"},
		{"bare root", "x:$(headers)", "expected headers.name"},
		{"and", "x:$(headers.a and headers.b)", "expected \"or\""},
		{"unterminated index", `x:$(query_params["a")`, "missing ]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: rtx.Name,
				Config: plugintest.Config(rtx.Config{Add: rtx.Fields{Headers: []string{tt.value}}})}}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	_, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: rtx.Name,
		Config: plugintest.Config(rtx.Config{Replace: rtx.ReplaceFields{URI: str("/$(nope)")}})}}})
	if err == nil || !strings.Contains(err.Error(), "replace.uri") {
		t.Fatalf("replace.uri: err %v", err)
	}
}
