package declarative

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrUnsupportedMedia is returned for a body that is neither JSON nor YAML.
var ErrUnsupportedMedia = errors.New("declarative configuration must be application/json, application/yaml or text/yaml")

// ParseError is a body that does not parse as a declarative file.
type ParseError struct{ Err error }

// Error implements error.
func (e *ParseError) Error() string {
	return "failed parsing declarative configuration: " + e.Err.Error()
}

// Unwrap returns the parser's error.
func (e *ParseError) Unwrap() error { return e.Err }

// Parse decodes a declarative file by its media type (application/json; application/yaml,
// text/yaml or application/x-yaml; an empty type is told by the first character) into the value
// shapes the schemas work with: objects as map[string]any, integers as int64, other numbers as
// float64.
func Parse(mediaType string, body []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(body)
	if mediaType == "" {
		mediaType = "application/yaml"
		if len(trimmed) > 0 && trimmed[0] == '{' {
			mediaType = "application/json"
		}
	}
	var v any
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, &ParseError{err}
		}
		if dec.More() {
			return nil, &ParseError{errors.New("data after the JSON value")}
		}
	case mediaType == "application/yaml" || mediaType == "text/yaml" || mediaType == "application/x-yaml":
		if err := yaml.Unmarshal(body, &v); err != nil {
			return nil, &ParseError{err}
		}
	default:
		return nil, ErrUnsupportedMedia
	}
	v, err := normalize(v)
	if err != nil {
		return nil, &ParseError{err}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &ParseError{errors.New("expected an object at the top level")}
	}
	return m, nil
}

func normalize(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = n
		}
		return out, nil
	case []any:
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if i, err := x.Int64(); err == nil {
				return i, nil
			}
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, err)
		}
		return f, nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return float64(x), nil
		}
		return int64(x), nil
	}
	return v, nil
}
