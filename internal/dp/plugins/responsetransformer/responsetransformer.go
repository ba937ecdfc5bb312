// Package responsetransformer is Kong's response-transformer plugin: it
// edits response headers and JSON bodies.
package responsetransformer

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "response-transformer"
	Priority = 800
)

func init() { plugin.Register(Name, Priority, New) }

// Fields lists header and JSON entries; JSONTypes gives, by position, the
// type of each JSON value: "string" (default), "number" or "boolean".
type Fields struct {
	JSON      []string `json:"json"`
	JSONTypes []string `json:"json_types"`
	Headers   []string `json:"headers"`
}

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	Remove  Fields `json:"remove"`
	Rename  Fields `json:"rename"`
	Replace Fields `json:"replace"`
	Add     Fields `json:"add"`
	Append  Fields `json:"append"`
}

type kv struct {
	name  string
	value any
}

// ResponseTransformer is a built response-transformer instance.
type ResponseTransformer struct {
	cfg                              Config
	hRename, hReplace, hAdd, hAppend []kv
	jRename, jReplace, jAdd, jAppend []kv
	bodySet                          bool
}

var (
	_ plugin.HeaderFilterer = (*ResponseTransformer)(nil)
	_ plugin.BodyFilterer   = (*ResponseTransformer)(nil)
	_ plugin.BodyWanter     = (*ResponseTransformer)(nil)
)

func pairs(field string, in []string, types []string) ([]kv, error) {
	out := make([]kv, 0, len(in))
	for i, s := range in {
		n, v, ok := strings.Cut(s, ":")
		if !ok || n == "" {
			return nil, fmt.Errorf("response-transformer: %s: invalid value %q: expected name:value", field, s)
		}
		var val any = v
		if types != nil && i < len(types) {
			switch types[i] {
			case "string":
			case "number":
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("response-transformer: %s: %q is not a number", field, v)
				}
				val = f
			case "boolean":
				val = v == "true"
			default:
				return nil, fmt.Errorf("response-transformer: %s: invalid json type %q", field, types[i])
			}
		}
		out = append(out, kv{n, val})
	}
	return out, nil
}

// New builds a response-transformer instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("response-transformer: invalid config: %w", err)
	}
	rt := &ResponseTransformer{cfg: cfg}
	var err error
	steps := []struct {
		dst   *[]kv
		field string
		in    []string
		types []string
	}{
		{&rt.hRename, "rename.headers", cfg.Rename.Headers, nil},
		{&rt.hReplace, "replace.headers", cfg.Replace.Headers, nil},
		{&rt.hAdd, "add.headers", cfg.Add.Headers, nil},
		{&rt.hAppend, "append.headers", cfg.Append.Headers, nil},
		{&rt.jRename, "rename.json", cfg.Rename.JSON, nil},
		{&rt.jReplace, "replace.json", cfg.Replace.JSON, cfg.Replace.JSONTypes},
		{&rt.jAdd, "add.json", cfg.Add.JSON, cfg.Add.JSONTypes},
		{&rt.jAppend, "append.json", cfg.Append.JSON, cfg.Append.JSONTypes},
	}
	for _, s := range steps {
		if *s.dst, err = pairs(s.field, s.in, s.types); err != nil {
			return nil, err
		}
	}
	rt.bodySet = len(cfg.Remove.JSON)+len(rt.jRename)+len(rt.jReplace)+len(rt.jAdd)+len(rt.jAppend) > 0
	return rt, nil
}

func isJSON(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return strings.Contains(mt, "application/json")
}

// HeaderFilter implements [plugin.HeaderFilterer]: remove, rename,
// replace, add, append.
func (rt *ResponseTransformer) HeaderFilter(c *plugin.Ctx) error {
	h := c.Response.Header
	for _, n := range rt.cfg.Remove.Headers {
		h.Del(n)
	}
	for _, p := range rt.hRename {
		if vs := h.Values(p.name); len(vs) > 0 {
			h.Del(p.name)
			h[http.CanonicalHeaderKey(p.value.(string))] = vs
		}
	}
	for _, p := range rt.hReplace {
		if len(h.Values(p.name)) > 0 {
			h.Set(p.name, p.value.(string))
		}
	}
	for _, p := range rt.hAdd {
		if len(h.Values(p.name)) == 0 {
			h.Set(p.name, p.value.(string))
		}
	}
	for _, p := range rt.hAppend {
		h.Add(p.name, p.value.(string))
	}
	if rt.bodySet && isJSON(h) {
		// The body is about to change.
		h.Del("Content-Length")
	}
	return nil
}

// WantsBody implements [plugin.BodyWanter]: only JSON bodies with body
// transforms configured are buffered.
func (rt *ResponseTransformer) WantsBody(c *plugin.Ctx) bool {
	return rt.bodySet && isJSON(c.Response.Header)
}

// BodyFilter implements [plugin.BodyFilterer]. Bodies that are not JSON
// objects are left alone.
func (rt *ResponseTransformer) BodyFilter(c *plugin.Ctx) error {
	var obj map[string]any
	if err := json.Unmarshal(c.Response.Body, &obj); err != nil || obj == nil {
		return nil //nolint:nilerr // a body that is not a JSON object passes unchanged
	}
	for _, n := range rt.cfg.Remove.JSON {
		delete(obj, n)
	}
	for _, p := range rt.jRename {
		if v, ok := obj[p.name]; ok {
			delete(obj, p.name)
			obj[p.value.(string)] = v
		}
	}
	for _, p := range rt.jReplace {
		if _, ok := obj[p.name]; ok {
			obj[p.name] = p.value
		}
	}
	for _, p := range rt.jAdd {
		if _, ok := obj[p.name]; !ok {
			obj[p.name] = p.value
		}
	}
	for _, p := range rt.jAppend {
		switch cur := obj[p.name].(type) {
		case nil:
			obj[p.name] = []any{p.value}
		case []any:
			obj[p.name] = append(cur, p.value)
		default:
			obj[p.name] = []any{cur, p.value}
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encoding transformed body: %w", err)
	}
	c.Response.Body = b
	return nil
}
