package compile

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// A config_table arrives decoded from JSON (numbers as float64) or from YAML
// (numbers as int), with Kong's nulls for unset fields. These helpers read
// one field leniently: an absent or null field is the zero value, and a
// field of the wrong type is an error naming the field, so a malformed
// entity is reported rather than silently defaulted.

// doc is one entity document of the config_table.
type doc map[string]any

// str returns a string field; "" when absent or null.
func (d doc) str(name string) (string, error) {
	switch v := d[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%s: expected a string", name)
	}
}

// integer returns an integer field, or def when absent or null.
func (d doc) integer(name string, def int) (int, error) {
	switch v := d[name].(type) {
	case nil:
		return def, nil
	case float64:
		if v != math.Trunc(v) || v > math.MaxInt32*2 || v < -math.MaxInt32*2 {
			return 0, fmt.Errorf("%s: expected an integer", name)
		}
		return int(v), nil
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case json.Number:
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return 0, fmt.Errorf("%s: expected an integer", name)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%s: expected an integer", name)
	}
}

// number returns a numeric field, or def when absent or null.
func (d doc) number(name string, def float64) (float64, error) {
	switch v := d[name].(type) {
	case nil:
		return def, nil
	case float64:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return 0, fmt.Errorf("%s: expected a number", name)
		}
		return f, nil
	default:
		return 0, fmt.Errorf("%s: expected a number", name)
	}
}

// boolean returns a boolean field, or def when absent or null.
func (d doc) boolean(name string, def bool) (bool, error) {
	switch v := d[name].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	default:
		return false, fmt.Errorf("%s: expected a boolean", name)
	}
}

// strings returns an array-of-strings field; nil when absent or null.
func (d doc) strings(name string) ([]string, error) {
	switch v := d[name].(type) {
	case nil:
		return nil, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s: expected an array of strings", name)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: expected an array of strings", name)
	}
}

// ints returns an array-of-integers field; nil when absent or null.
func (d doc) ints(name string) ([]int, error) {
	v, ok := d[name].([]any)
	if !ok {
		if d[name] == nil {
			return nil, nil
		}
		if iv, ok := d[name].([]int); ok {
			return iv, nil
		}
		return nil, fmt.Errorf("%s: expected an array of integers", name)
	}
	out := make([]int, len(v))
	for i := range v {
		n, err := doc{"v": v[i]}.integer("v", 0)
		if err != nil {
			return nil, fmt.Errorf("%s: expected an array of integers", name)
		}
		out[i] = n
	}
	return out, nil
}

// record returns a nested record; nil when absent or null.
func (d doc) record(name string) (doc, error) {
	switch v := d[name].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return doc(v), nil
	default:
		return nil, fmt.Errorf("%s: expected a record", name)
	}
}

// fk returns a foreign key: the id string as the control plane flattens it,
// or the "id" of a {"id": ...} record as declarative files nest it.
func (d doc) fk(name string) (string, error) {
	switch v := d[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case map[string]any:
		id, _ := v["id"].(string)
		if id == "" {
			return "", fmt.Errorf("%s: expected a reference with an id", name)
		}
		return id, nil
	default:
		return "", fmt.Errorf("%s: expected a reference", name)
	}
}

// headerMap reads a routes.headers map of name to values.
func (d doc) headerMap(name string) (map[string][]string, error) {
	switch v := d[name].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		out := make(map[string][]string, len(v))
		for k, vals := range v {
			ss, err := doc{k: vals}.strings(k)
			if err != nil {
				return nil, fmt.Errorf("%s.%w", name, err)
			}
			out[k] = ss
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: expected a map", name)
	}
}

// entities returns the documents of one collection of the config_table.
func entities(cfg map[string]any, collection string) ([]doc, error) {
	switch v := cfg[collection].(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]doc, 0, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: expected an object", collection, i)
			}
			out = append(out, doc(m))
		}
		return out, nil
	case []map[string]any:
		out := make([]doc, len(v))
		for i := range v {
			out[i] = doc(v[i])
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: expected an array", collection)
	}
}
