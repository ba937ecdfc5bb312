package schema

// kongField renders a field's attributes as Kong's /schemas output does.
func kongField(f *Field) map[string]any {
	m := map[string]any{"type": f.Type}
	if f.Required {
		m["required"] = true
	}
	if f.Default != nil {
		m["default"] = f.Default
	}
	if f.Auto {
		m["auto"] = true
	}
	if f.Unique {
		m["unique"] = true
	}
	if f.UUID {
		m["uuid"] = true
	}
	if f.Timestamp {
		m["timestamp"] = true
	}
	if f.Referenceable {
		m["referenceable"] = true
	}
	if f.Encrypted {
		m["encrypted"] = true
	}
	if f.EqNull {
		m["eq"] = nil
	}
	if len(f.OneOf) > 0 {
		m["one_of"] = f.OneOf
	}
	if f.Between != nil {
		m["between"] = []any{numValue(f.Between[0]), numValue(f.Between[1])}
	}
	if f.Gt != nil {
		m["gt"] = numValue(*f.Gt)
	}
	if f.LenMin > 0 {
		m["len_min"] = f.LenMin
	}
	if f.LenMax > 0 {
		m["len_max"] = f.LenMax
	}
	if f.StartsWith != "" {
		m["starts_with"] = f.StartsWith
	}
	if f.Elements != nil {
		m["elements"] = kongField(f.Elements)
	}
	if f.Keys != nil {
		m["keys"] = kongField(f.Keys)
	}
	if f.Values != nil {
		m["values"] = kongField(f.Values)
	}
	if f.Type == TypeRecord {
		m["fields"] = kongFields(f.Fields)
		if len(f.RecordChecks) > 0 {
			m["entity_checks"] = kongChecks(f.RecordChecks)
		}
	}
	if f.Reference != "" {
		m["reference"] = f.Reference
	}
	if f.Type == TypeForeign && f.OnDelete != "" {
		m["on_delete"] = f.OnDelete
	}
	if f.Description != "" {
		m["description"] = f.Description
	}
	return m
}

func numValue(f float64) any {
	if i, ok := toInt(f); ok {
		return i
	}
	return f
}

func kongFields(fields []*Field) []any {
	out := make([]any, len(fields))
	for i, f := range fields {
		out[i] = map[string]any{f.Name: kongField(f)}
	}
	return out
}

func kongMatch(m *Match) map[string]any {
	out := map[string]any{}
	if m.Required {
		out["required"] = true
	}
	if m.EqNull {
		out["eq"] = nil
	}
	if m.Eq != nil {
		out["eq"] = m.Eq
	}
	if len(m.OneOf) > 0 {
		out["one_of"] = m.OneOf
	}
	if len(m.NotOneOf) > 0 {
		out["not_one_of"] = m.NotOneOf
	}
	if m.GtSet {
		out["gt"] = numValue(m.Gt)
	}
	if m.Contains != nil {
		out["contains"] = m.Contains
	}
	return out
}

func kongChecks(checks []Check) []any {
	out := make([]any, 0, len(checks))
	for _, c := range checks {
		switch c.Kind {
		case "conditional":
			out = append(out, map[string]any{"conditional": map[string]any{
				"if_field": c.IfField, "if_match": kongMatch(c.IfMatch),
				"then_field": c.ThenField, "then_match": kongMatch(c.ThenMatch),
			}})
		case "custom_entity_check":
			out = append(out, map[string]any{"custom_entity_check": map[string]any{"field_sources": c.Fields}})
		default:
			out = append(out, map[string]any{c.Kind: c.Fields})
		}
	}
	return out
}

// KongSchema renders GET /schemas/{entity}: {"fields":[{"name":{…}}…],
// "entity_checks":[…]}. The defaults are those Process fills in.
func (e *Entity) KongSchema() map[string]any {
	out := map[string]any{"fields": kongFields(e.Fields)}
	checks := kongChecks(e.Checks)
	if e.Name == "routes" {
		checks = append(checks, map[string]any{"custom_entity_check": map[string]any{"field_sources": []string{"protocols"}}})
	}
	out["entity_checks"] = checks
	if e.EndpointKey != "" {
		out["endpoint_key"] = e.EndpointKey
	}
	return out
}

// KongSchema renders GET /schemas/plugins/{name}: the plugin entity schema
// with this plugin's config record.
func (p *Plugin) KongSchema() map[string]any {
	return p.entity.KongSchema()
}

// JSONSchema renders the Konnect GET /v1/schemas/json/{entity} document:
// a JSON Schema object whose properties carry the same defaults Process
// fills in (records carry the record of their defaults).
func (e *Entity) JSONSchema() map[string]any {
	out := jsonObject(e.Fields)
	out["additionalProperties"] = false
	return out
}

// JSONSchema renders the plugin entity as JSON Schema.
func (p *Plugin) JSONSchema() map[string]any {
	return p.entity.JSONSchema()
}

func jsonObject(fields []*Field) map[string]any {
	props := map[string]any{}
	var required []any
	for _, f := range fields {
		props[f.Name] = jsonField(f)
		if f.Required && f.Default == nil && f.Type != TypeRecord {
			required = append(required, f.Name)
		}
	}
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

var uuidPattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

func jsonField(f *Field) map[string]any {
	var m map[string]any
	switch f.Type {
	case TypeRecord:
		m = jsonObject(f.Fields)
		if d := f.defaultValue(); d != nil {
			m["default"] = d
		}
		return m
	case TypeForeign:
		return map[string]any{
			"type": "object", "description": "foreign", "additionalProperties": false,
			"properties": map[string]any{"id": map[string]any{"type": "string", "pattern": uuidPattern, "description": "must be a valid UUID"}},
			"required":   []any{"id"},
		}
	case TypeArray, TypeSet:
		m = map[string]any{"type": "array"}
		if f.Elements != nil {
			m["items"] = jsonField(f.Elements)
		}
		if f.Type == TypeSet {
			m["uniqueItems"] = true
		}
		if f.LenMin > 0 {
			m["minItems"] = f.LenMin
		}
	case TypeMap:
		m = map[string]any{"type": "object"}
		if f.Values != nil {
			m["additionalProperties"] = jsonField(f.Values)
		} else {
			m["additionalProperties"] = true
		}
	case TypeJSON:
		m = map[string]any{}
	default:
		m = map[string]any{"type": f.Type}
	}
	if f.Default != nil {
		m["default"] = f.Default
	}
	if len(f.OneOf) > 0 {
		m["enum"] = f.OneOf
	}
	if f.Between != nil {
		m["minimum"] = numValue(f.Between[0])
		m["maximum"] = numValue(f.Between[1])
	}
	if f.Gt != nil {
		m["exclusiveMinimum"] = numValue(*f.Gt)
	}
	if f.Type == TypeString {
		if f.LenMin > 0 {
			m["minLength"] = f.LenMin
		}
		if f.LenMax > 0 {
			m["maxLength"] = f.LenMax
		}
		if f.UUID {
			m["pattern"] = uuidPattern
			m["description"] = "must be a valid UUID"
		} else if f.StartsWith != "" {
			m["pattern"] = "^" + f.StartsWith + ".*"
		}
	}
	if f.Timestamp {
		m["minimum"] = 1
	}
	if f.Description != "" {
		m["description"] = f.Description
	}
	return m
}
