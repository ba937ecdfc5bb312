package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// readBody decodes a request body the ways Kong's Admin API accepts it: JSON, URL-encoded forms
// and multipart forms (form keys use Kong's syntax: "a.b", "a[1]", "a[]"). An empty body without a
// Content-Type is an empty object; with a JSON Content-Type it is Kong's "Cannot parse JSON body". Form values are strings; coerceForm later converts them by the schema.
// The second result reports whether the body was a form (and so needs coercion).
func (h *Handler) readBody(r *http.Request) (map[string]any, bool, error) {
	if len(r.Header.Values("Content-Type")) > 1 {
		return nil, false, badRequest("Multiple Content-Type headers")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, h.maxBody)
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		raw, err := readAll(r.Body)
		if err != nil {
			return nil, false, err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return map[string]any{}, false, nil
		}
		return nil, false, errUnsupportedMedia
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, false, errUnsupportedMedia
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		raw, err := readAll(r.Body)
		if err != nil {
			return nil, false, err
		}
		// A JSON Content-Type promises a JSON body: an empty one does not parse
		// (kong/api/api_helpers.lua parse_params).
		m, err := decodeJSONObject(raw)
		return m, false, err
	case mt == "application/x-www-form-urlencoded":
		raw, err := readAll(r.Body)
		if err != nil {
			return nil, false, err
		}
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, false, badRequest("Cannot parse form body")
		}
		return formTree(vals), true, nil
	case mt == "multipart/form-data":
		if params["boundary"] == "" {
			return nil, false, badRequest("Cannot parse multipart body")
		}
		if err := r.ParseMultipartForm(h.maxBody); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, false, errBodyTooLarge
			}
			return nil, false, badRequest("Cannot parse multipart body")
		}
		vals := url.Values{}
		for k, vs := range r.MultipartForm.Value {
			vals[k] = append(vals[k], vs...)
		}
		// Kong reads uploaded files as their content (e.g. a certificate's PEM).
		for k, fhs := range r.MultipartForm.File {
			for _, fh := range fhs {
				f, err := fh.Open()
				if err != nil {
					return nil, false, badRequest("Cannot parse multipart body")
				}
				b, err := io.ReadAll(f)
				_ = f.Close()
				if err != nil {
					return nil, false, badRequest("Cannot parse multipart body")
				}
				vals[k] = append(vals[k], string(b))
			}
		}
		return formTree(vals), true, nil
	}
	return nil, false, errUnsupportedMedia
}

func readAll(rd io.Reader) ([]byte, error) {
	b, err := io.ReadAll(rd)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, badRequest("Cannot read request body")
	}
	return b, nil
}

// decodeJSONObject decodes a JSON object with integers as int64 and other numbers as float64,
// the value types schema.Process expects.
func decodeJSONObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errBadJSON
	}
	if dec.More() {
		return nil, errBadJSON
	}
	m, ok := normalizeNumbers(v).(map[string]any)
	if !ok {
		return nil, errBadJSON
	}
	return m, nil
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if i, err := x.Int64(); err == nil {
				return i
			}
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// formNode is one key of a form while it is assembled: a leaf holds the raw values, inner nodes
// hold named children ("a.b", "a[b]") or positional ones ("a[1]", "a[]").
type formNode struct {
	values  []string
	named   map[string]*formNode
	indexed map[int]*formNode
	// appended keeps "a[]" values in the order they came.
	appended []*formNode
}

// formTree builds the nested object a form describes.
func formTree(vals url.Values) map[string]any {
	root := &formNode{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := splitFormKey(k)
		if len(path) == 0 {
			continue
		}
		for _, v := range vals[k] {
			n := root
			for i, p := range path {
				n = n.child(p, i == len(path)-1)
			}
			n.values = append(n.values, v)
		}
	}
	m, _ := root.value().(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// formPart is one step of a form key: a name, an index (1-based) or an append ("[]").
type formPart struct {
	name   string
	index  int
	append bool
}

// splitFormKey splits "config.key_names[1]" into config, key_names, [1].
func splitFormKey(k string) []formPart {
	var parts []formPart
	for _, dotted := range strings.Split(k, ".") {
		name, rest, _ := strings.Cut(dotted, "[")
		if name != "" {
			parts = append(parts, formPart{name: name})
		}
		for rest != "" {
			inner, after, ok := strings.Cut(rest, "]")
			if !ok {
				break
			}
			switch n, err := strconv.Atoi(inner); {
			case inner == "":
				parts = append(parts, formPart{append: true})
			case err == nil && n > 0:
				parts = append(parts, formPart{index: n})
			default:
				parts = append(parts, formPart{name: inner})
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return parts
}

func (n *formNode) child(p formPart, last bool) *formNode {
	switch {
	case p.append:
		c := &formNode{}
		n.appended = append(n.appended, c)
		return c
	case p.index > 0:
		if n.indexed == nil {
			n.indexed = map[int]*formNode{}
		}
		c := n.indexed[p.index]
		if c == nil {
			c = &formNode{}
			n.indexed[p.index] = c
		}
		return c
	}
	if n.named == nil {
		n.named = map[string]*formNode{}
	}
	c := n.named[p.name]
	if c == nil {
		c = &formNode{}
		n.named[p.name] = c
	}
	return c
}

func (n *formNode) value() any {
	if len(n.named) > 0 {
		m := make(map[string]any, len(n.named))
		for k, c := range n.named {
			m[k] = c.value()
		}
		return m
	}
	if len(n.indexed) > 0 || len(n.appended) > 0 {
		idx := make([]int, 0, len(n.indexed))
		for i := range n.indexed {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		out := make([]any, 0, len(idx)+len(n.appended))
		for _, i := range idx {
			out = append(out, n.indexed[i].value())
		}
		for _, c := range n.appended {
			out = append(out, c.value())
		}
		return out
	}
	switch len(n.values) {
	case 0:
		return nil
	case 1:
		return n.values[0]
	}
	out := make([]any, len(n.values))
	for i, v := range n.values {
		out[i] = v
	}
	return out
}

// coerceForm converts the string values of a form body to the types the entity's fields declare,
// as Kong infers them: numbers, booleans, a single value for an array field as a one-element
// array, and an empty value of a non-string field as null.
func coerceForm(e *schema.Entity, in map[string]any) {
	if e.Name == "plugins" {
		if name, ok := in["name"].(string); ok {
			if p, ok := schema.LookupPlugin(name); ok {
				e = p.Entity()
			}
		}
	}
	coerceFields(e.Fields, in)
	// ttl is accepted beside the fields of ttl-enabled entities.
	if s, ok := in["ttl"].(string); ok && e.TTL {
		in["ttl"] = coerceScalar(schema.TypeInteger, s)
	}
}

func coerceFields(fields []*schema.Field, m map[string]any) {
	for _, f := range fields {
		if v, ok := m[f.Name]; ok {
			m[f.Name] = coerceValue(f, v)
		}
	}
}

func coerceValue(f *schema.Field, v any) any {
	switch f.Type {
	case schema.TypeArray, schema.TypeSet:
		var list []any
		switch x := v.(type) {
		case []any:
			list = x
		case string:
			if x == "" {
				return []any{}
			}
			list = []any{x}
		case map[string]any:
			return v
		default:
			return v
		}
		if f.Elements != nil {
			for i, e := range list {
				list[i] = coerceValue(f.Elements, e)
			}
		}
		return list
	case schema.TypeRecord:
		if m, ok := v.(map[string]any); ok {
			coerceFields(f.Fields, m)
			return m
		}
		if s, ok := v.(string); ok && s == "" {
			return nil
		}
	case schema.TypeMap:
		if m, ok := v.(map[string]any); ok && f.Values != nil {
			for k, e := range m {
				m[k] = coerceValue(f.Values, e)
			}
			return m
		}
		if s, ok := v.(string); ok && s == "" {
			return nil
		}
	case schema.TypeForeign:
		if s, ok := v.(string); ok && s == "" {
			return nil
		}
	case schema.TypeInteger, schema.TypeNumber, schema.TypeBoolean:
		if s, ok := v.(string); ok {
			return coerceScalar(f.Type, s)
		}
	}
	return v
}

// coerceScalar converts one form string; values that do not parse stay strings so that the
// schema reports its usual type error.
func coerceScalar(typ, s string) any {
	if s == "" {
		return nil
	}
	switch typ {
	case schema.TypeInteger:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case schema.TypeNumber:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case schema.TypeBoolean:
		switch s {
		case "true":
			return true
		case "false":
			return false
		}
	}
	return s
}
