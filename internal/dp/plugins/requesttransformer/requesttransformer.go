// Package requesttransformer is Kong's request-transformer plugin: it edits
// the URI, method, headers, body and query string sent upstream.
//
// Templates, as Kong evaluates them in the values of rename, replace, add
// and append entries and in replace.uri: every $(...) in a value (found
// with balanced parentheses) is replaced by the value of the expression
// inside; the rest of the value is literal text. Kong evaluates a Lua
// expression in a sandbox; the runtime accepts the expressions Kong
// documents, and rejects any other when the plugin is built:
//
//	headers.x_custom_name    request header X-Custom-Name (underscores read as
//	headers["X-Custom-Name"] hyphens, names case-insensitive)
//	query_params.name        query argument; an argument without "=" is "true"
//	query_params["name"]
//	uri_captures.name        named group of the route's regex path
//	uri_captures["name"]
//	uri_captures[1]          numbered group (0 is the whole match)
//	shared.name              a string another plugin stored for the request
//	"text" or 'text'         a literal, so $('$(not evaluated)') escapes a template
//	a or b or ...            the first operand that exists (Lua's "or")
//
// An operand that does not exist renders as the empty string. A header or
// argument given several times renders its first value (Kong would render
// the Lua table). Templates read the request as it reached the plugin,
// before any of the plugin's own changes.
//
// The route's captures come from [plugin.Ctx.URICaptures].
package requesttransformer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "request-transformer"
	Priority = 801
)

func init() { plugin.Register(Name, Priority, New) }

// Fields are the body/headers/querystring lists of one operation; entries
// are "name" (remove) or "name:value" (others).
type Fields struct {
	Body        []string `json:"body"`
	Headers     []string `json:"headers"`
	Querystring []string `json:"querystring"`
}

// ReplaceFields adds the URI to [Fields].
type ReplaceFields struct {
	Fields
	URI *string `json:"uri"`
}

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	HTTPMethod *string       `json:"http_method"`
	Remove     Fields        `json:"remove"`
	Rename     Fields        `json:"rename"`
	Replace    ReplaceFields `json:"replace"`
	Add        Fields        `json:"add"`
	Append     Fields        `json:"append"`
}

// kv is one name:value entry; tmpl is the compiled value when it holds a
// template.
type kv struct {
	name, value string
	tmpl        *tmpl
}

// val returns the entry's value for this request.
func (p *kv) val(env *tmplEnv) string {
	if p.tmpl == nil {
		return p.value
	}
	return p.tmpl.render(env)
}

type ops struct {
	remove                       []string
	rename, replace, add, append []kv
}

func (o *ops) empty() bool {
	return len(o.remove)+len(o.rename)+len(o.replace)+len(o.add)+len(o.append) == 0
}

// applyValues edits a query string or a form body in place: remove, rename, replace, add, append.
func (o *ops) applyValues(v url.Values, env *tmplEnv) {
	for _, n := range o.remove {
		v.Del(n)
	}
	for _, p := range o.rename {
		if vs, ok := v[p.name]; ok {
			v.Del(p.name)
			v[p.val(env)] = vs
		}
	}
	for _, p := range o.replace {
		if v.Has(p.name) {
			v.Set(p.name, p.val(env))
		}
	}
	for _, p := range o.add {
		if !v.Has(p.name) {
			v.Set(p.name, p.val(env))
		}
	}
	for _, p := range o.append {
		v.Add(p.name, p.val(env))
	}
}

// RequestTransformer is a built request-transformer instance.
type RequestTransformer struct {
	method               string
	uri                  *kv // value only; nil when replace.uri is unset
	headers, query, body ops
	// templates is set when some value holds a template, so requests
	// snapshot what templates read.
	templates bool
}

var _ plugin.Accesser = (*RequestTransformer)(nil)

func pairs(field string, in []string) ([]kv, error) {
	out := make([]kv, 0, len(in))
	for _, s := range in {
		n, v, ok := strings.Cut(s, ":")
		if !ok || n == "" {
			return nil, fmt.Errorf("request-transformer: %s: invalid value %q: expected name:value", field, s)
		}
		t, err := compileValue(v)
		if err != nil {
			return nil, fmt.Errorf("request-transformer: %s: %w", field, err)
		}
		out = append(out, kv{name: n, value: v, tmpl: t})
	}
	return out, nil
}

func build(kind string, cfg *Config, pick func(*Fields) []string) (ops, error) {
	var o ops
	var err error
	o.remove = pick(&cfg.Remove)
	if o.rename, err = pairs("rename."+kind, pick(&cfg.Rename)); err != nil {
		return o, err
	}
	if o.replace, err = pairs("replace."+kind, pick(&cfg.Replace.Fields)); err != nil {
		return o, err
	}
	if o.add, err = pairs("add."+kind, pick(&cfg.Add)); err != nil {
		return o, err
	}
	if o.append, err = pairs("append."+kind, pick(&cfg.Append)); err != nil {
		return o, err
	}
	return o, nil
}

// New builds a request-transformer instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("request-transformer: invalid config: %w", err)
	}
	rt := &RequestTransformer{}
	if u := cfg.Replace.URI; u != nil {
		t, err := compileValue(*u)
		if err != nil {
			return nil, fmt.Errorf("request-transformer: replace.uri: %w", err)
		}
		rt.uri = &kv{value: *u, tmpl: t}
	}
	if cfg.HTTPMethod != nil {
		rt.method = strings.ToUpper(*cfg.HTTPMethod)
	}
	var err error
	if rt.headers, err = build("headers", &cfg, func(f *Fields) []string { return f.Headers }); err != nil {
		return nil, err
	}
	if rt.query, err = build("querystring", &cfg, func(f *Fields) []string { return f.Querystring }); err != nil {
		return nil, err
	}
	if rt.body, err = build("body", &cfg, func(f *Fields) []string { return f.Body }); err != nil {
		return nil, err
	}
	rt.templates = rt.uri != nil && rt.uri.tmpl != nil
	for _, o := range []*ops{&rt.headers, &rt.query, &rt.body} {
		for _, l := range [][]kv{o.rename, o.replace, o.add, o.append} {
			for i := range l {
				rt.templates = rt.templates || l[i].tmpl != nil
			}
		}
	}
	return rt, nil
}

// Access implements [plugin.Accesser]: uri, method, headers, body, then
// query string, each with remove, rename, replace, add, append.
func (rt *RequestTransformer) Access(c *plugin.Ctx) error {
	r := c.Request
	var env *tmplEnv
	if rt.templates {
		// Templates read the request as it reached the plugin.
		env = &tmplEnv{header: r.Header.Clone(), rawQuery: r.URL.RawQuery, captures: c.URICaptures, c: c}
	}
	if rt.uri != nil {
		r.URL.Path, r.URL.RawPath = rt.uri.val(env), ""
	}
	if rt.method != "" {
		r.Method = rt.method
	}
	rt.transformHeaders(r, env)
	if !rt.body.empty() {
		if err := rt.transformBody(r, env); err != nil {
			return err
		}
	}
	if !rt.query.empty() {
		q := r.URL.Query()
		rt.query.applyValues(q, env)
		r.URL.RawQuery = q.Encode()
	}
	return nil
}

func (rt *RequestTransformer) transformHeaders(r *http.Request, env *tmplEnv) {
	o := &rt.headers
	h := r.Header
	for _, n := range o.remove {
		h.Del(n)
		if strings.EqualFold(n, "host") {
			r.Host = ""
		}
	}
	for _, p := range o.rename {
		if vs := h.Values(p.name); len(vs) > 0 {
			h.Del(p.name)
			h[http.CanonicalHeaderKey(p.val(env))] = vs
		}
	}
	set := func(name, value string) {
		if strings.EqualFold(name, "host") {
			r.Host = value
		}
		h.Set(name, value)
	}
	for _, p := range o.replace {
		if h.Get(p.name) != "" || (strings.EqualFold(p.name, "host") && r.Host != "") {
			set(p.name, p.val(env))
		}
	}
	for _, p := range o.add {
		if _, ok := h[http.CanonicalHeaderKey(p.name)]; !ok {
			set(p.name, p.val(env))
		}
	}
	for _, p := range o.append {
		h.Add(p.name, p.val(env))
	}
}

const maxBody = 8 << 20

func (rt *RequestTransformer) transformBody(r *http.Request, env *tmplEnv) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "application/x-www-form-urlencoded" {
		// Kong leaves bodies without a content type alone; multipart bodies
		// are not transformed here yet.
		return nil
	}
	var raw []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(r.Body, maxBody)); err != nil {
			return fmt.Errorf("reading request body: %w", err)
		}
		_ = r.Body.Close()
	}
	out := raw
	o := &rt.body
	switch mt {
	case "application/json":
		obj := map[string]any{}
		if len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, &obj); err != nil {
				// Not an object: leave the body alone, as Kong does.
				break
			}
		}
		for _, n := range o.remove {
			delete(obj, n)
		}
		for _, p := range o.rename {
			if v, ok := obj[p.name]; ok {
				delete(obj, p.name)
				obj[p.val(env)] = v
			}
		}
		for _, p := range o.replace {
			if _, ok := obj[p.name]; ok {
				obj[p.name] = p.val(env)
			}
		}
		for _, p := range o.add {
			if _, ok := obj[p.name]; !ok {
				obj[p.name] = p.val(env)
			}
		}
		for _, p := range o.append {
			switch cur := obj[p.name].(type) {
			case nil:
				obj[p.name] = p.val(env)
			case []any:
				obj[p.name] = append(cur, p.val(env))
			default:
				obj[p.name] = []any{cur, p.val(env)}
			}
		}
		out, _ = json.Marshal(obj)
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			break
		}
		o.applyValues(form, env)
		out = []byte(form.Encode())
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	if r.Header.Get("Content-Length") != "" || len(out) > 0 {
		r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	}
	return nil
}
