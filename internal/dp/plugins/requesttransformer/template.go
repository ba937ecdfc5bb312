package requesttransformer

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// tmpl is a compiled value: literal text and expressions, in order.
type tmpl struct {
	parts []tmplPart
}

// tmplPart is literal text (alts nil) or one $(...) expression.
type tmplPart struct {
	lit  string
	alts []operand
}

// operand is one side of an "or".
type operand struct {
	// src is 'l' (a literal: key), 'h' headers, 'q' query_params,
	// 'u' uri_captures or 's' shared.
	src byte
	key string
	// group is the numbered uri_captures group; -1 for a named one.
	group int
}

// compileValue compiles v; it returns nil when v holds no template.
func compileValue(v string) (*tmpl, error) {
	if !strings.Contains(v, "$(") {
		return nil, nil
	}
	t := &tmpl{}
	rest := v
	for {
		i := strings.Index(rest, "$(")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, tmplPart{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		end := closingParen(rest, i+1)
		if end < 0 {
			return nil, fmt.Errorf("template %q: unbalanced parentheses", v)
		}
		alts, err := parseExpr(rest[i+2 : end])
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", v, err)
		}
		t.parts = append(t.parts, tmplPart{alts: alts})
		rest = rest[end+1:]
	}
}

// closingParen returns the index of the parenthesis closing the one at
// open, counting nesting as Lua's %b() does; -1 when there is none.
func closingParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

var roots = map[string]byte{"headers": 'h', "query_params": 'q', "uri_captures": 'u', "shared": 's'}

// parseExpr parses operand { "or" operand }.
func parseExpr(src string) ([]operand, error) {
	p := &exprParser{s: src}
	var alts []operand
	for {
		op, err := p.operand()
		if err != nil {
			return nil, err
		}
		alts = append(alts, op)
		p.space()
		if p.done() {
			return alts, nil
		}
		if w := p.ident(); w != "or" {
			return nil, fmt.Errorf("unsupported expression %q: expected \"or\" at offset %d", src, p.i)
		}
	}
}

type exprParser struct {
	s string
	i int
}

func (p *exprParser) done() bool { return p.i >= len(p.s) }

func (p *exprParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *exprParser) ident() string {
	p.space()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || p.i > start && c >= '0' && c <= '9' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

// str parses a quoted literal without escapes.
func (p *exprParser) str() (string, bool) {
	p.space()
	if p.done() || p.s[p.i] != '"' && p.s[p.i] != '\'' {
		return "", false
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, true
}

func (p *exprParser) operand() (operand, error) {
	if v, ok := p.str(); ok {
		return operand{src: 'l', key: v, group: -1}, nil
	}
	root := p.ident()
	src, ok := roots[root]
	if !ok {
		return operand{}, fmt.Errorf("unsupported expression %q: operands are headers, query_params, uri_captures, shared or a quoted string", p.s)
	}
	op := operand{src: src, group: -1}
	p.space()
	switch {
	case p.i < len(p.s) && p.s[p.i] == '.':
		p.i++
		if op.key = p.ident(); op.key == "" {
			return operand{}, fmt.Errorf("unsupported expression %q: expected a name after %s.", p.s, root) //nolint:revive,staticcheck // the dot is the syntax: "after headers."
		}
	case p.i < len(p.s) && p.s[p.i] == '[':
		p.i++
		if v, ok := p.str(); ok {
			op.key = v
		} else {
			p.space()
			start := p.i
			for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
				p.i++
			}
			n, err := strconv.Atoi(p.s[start:p.i])
			if err != nil || src != 'u' {
				return operand{}, fmt.Errorf("unsupported expression %q: expected a quoted name in %s[...]", p.s, root)
			}
			op.group = n
		}
		p.space()
		if p.done() || p.s[p.i] != ']' {
			return operand{}, fmt.Errorf("unsupported expression %q: missing ]", p.s)
		}
		p.i++
	default:
		return operand{}, fmt.Errorf("unsupported expression %q: expected %s.name or %s[\"name\"]", p.s, root, root)
	}
	return op, nil
}

// tmplEnv is what templates read for one request: the request as it
// reached the plugin.
type tmplEnv struct {
	header   http.Header
	rawQuery string
	captures plugin.URICaptures
	c        *plugin.Ctx
}

func (e *tmplEnv) lookup(op operand) (string, bool) {
	switch op.src {
	case 'l':
		return op.key, true
	case 'h':
		if vs := e.header.Values(op.key); len(vs) > 0 {
			return vs[0], true
		}
		if k := strings.ReplaceAll(op.key, "_", "-"); k != op.key {
			if vs := e.header.Values(k); len(vs) > 0 {
				return vs[0], true
			}
		}
	case 'q':
		return queryArg(e.rawQuery, op.key)
	case 'u':
		if e.captures == nil {
			return "", false
		}
		if op.group >= 0 {
			return e.captures.Group(op.group)
		}
		return e.captures.Named(op.key)
	case 's':
		if v, ok := e.c.Shared(op.key).(string); ok {
			return v, true
		}
	}
	return "", false
}

// queryArg returns the first value of name in a raw query, decoded; an
// argument without "=" is Lua's true, rendered "true".
func queryArg(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, hasValue := strings.Cut(pair, "=")
		if dk, err := urlUnescape(k); err != nil || dk != name {
			continue
		}
		if !hasValue {
			return "true", true
		}
		dv, err := urlUnescape(v)
		if err != nil {
			return v, true
		}
		return dv, true
	}
	return "", false
}

var errBadEscape = errors.New("bad escape")

// urlUnescape decodes %XX and + as query strings encode them.
func urlUnescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) {
				return "", errBadEscape
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errBadEscape
			}
			b.WriteByte(byte(n))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// render evaluates t in env.
func (t *tmpl) render(env *tmplEnv) string {
	if len(t.parts) == 1 && t.parts[0].alts == nil {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.alts == nil {
			b.WriteString(p.lit)
			continue
		}
		for _, op := range p.alts {
			if v, ok := env.lookup(op); ok {
				b.WriteString(v)
				break
			}
		}
	}
	return b.String()
}
