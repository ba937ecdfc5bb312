package kongcompat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gantry-gw/gantry/internal/wire"
)

// Result is a configuration downgraded for one version class.
type Result struct {
	// Config is what the data plane must receive. When Changed is false it is the input itself;
	// otherwise it shares no map or slice with the input.
	Config map[string]any
	// Changed reports whether anything was removed or rewritten.
	Changed bool
	// Issues are the compatibility warnings: one per entry whose change alters how the gateway
	// behaves (a removed field that was set to something other than its default, a replaced
	// value, a removed entity type), in table order, with the entities involved. Nil when none.
	Issues []wire.CompatibilityIssue
}

// Class returns the version class of a Kong data plane version: every version of one class gets
// the same downgraded configuration, so a control plane computes it once per class and revision.
// The class is the VersionNum of the oldest Before in [Table] that is newer than the version, or 0
// when the version lacks nothing the table knows (it is at least the newest Before). A version
// that cannot be parsed is class 0 too: the control plane refuses such data planes before sending
// them anything.
func Class(dpVersion string) int64 {
	n, ok := VersionNum(dpVersion)
	if !ok {
		return 0
	}
	for _, c := range classes {
		if c > n {
			return c
		}
	}
	return 0
}

// Downgrade returns config as data planes of the version class (see [Class]) must receive it:
// every entry of [Table] whose Before is at least class is applied, in table order. config is not
// modified. Class 0 returns config unchanged.
func Downgrade(config map[string]any, class int64) Result {
	if class == 0 {
		return Result{Config: config}
	}
	out, _ := deepCopy(config).(map[string]any)
	changed := false
	var issues []wire.CompatibilityIssue
	for _, e := range Table {
		if e.before < class {
			continue
		}
		hit, affected := e.apply(out)
		changed = changed || hit
		if len(affected) > 0 {
			issues = append(issues, e.issue(affected))
		}
	}
	if !changed {
		return Result{Config: config}
	}
	return Result{Config: out, Changed: true, Issues: issues}
}

// apply changes config (a private copy) and reports whether it changed anything, and the ids of
// the entities whose behaviour the change alters.
func (e *Entry) apply(config map[string]any) (changed bool, affected []string) {
	switch e.Kind {
	case KindEntityType:
		rows, ok := config[e.Entity].([]any)
		if !ok {
			return false, nil
		}
		delete(config, e.Entity)
		for _, r := range rows {
			affected = append(affected, rowID(r))
		}
		return true, affected
	case KindPluginField, KindPluginReshape:
		for _, r := range rowsOf(config, "plugins") {
			if r["name"] != e.Plugin {
				continue
			}
			cfg, ok := r["config"].(map[string]any)
			if !ok {
				continue
			}
			if e.Kind == KindPluginReshape {
				changed = reshapeRedis(cfg) || changed
				continue
			}
			v, present := removePath(cfg, e.Field)
			if !present {
				continue
			}
			changed = true
			if !isDefault(v, e.def) {
				affected = append(affected, rowID(r))
			}
		}
		return changed, affected
	case KindEntityField:
		for _, r := range rowsOf(config, e.Entity) {
			v, present := r[e.Field]
			if !present || (e.When != nil && !e.When(r)) {
				continue
			}
			delete(r, e.Field)
			changed = true
			if !e.Metadata && !isDefault(v, e.def) {
				affected = append(affected, rowID(r))
			}
		}
		return changed, affected
	case KindEntityValue:
		for _, r := range rowsOf(config, e.Entity) {
			if r[e.Field] == e.Value {
				r[e.Field] = e.Replacement
				changed = true
				affected = append(affected, rowID(r))
			}
		}
		return changed, affected
	}
	return false, nil
}

// reshapeRedis turns rate-limiting's config.redis record into the flat redis_* fields; it reports
// whether cfg had a redis key.
func reshapeRedis(cfg map[string]any) bool {
	v, ok := cfg["redis"]
	if !ok {
		return false
	}
	delete(cfg, "redis")
	if rec, ok := v.(map[string]any); ok {
		for _, m := range redisFields {
			if fv, ok := rec[m[0]]; ok {
				cfg[m[1]] = fv
			}
		}
	}
	return true
}

// issue describes the entry's change for the node catalogue.
func (e *Entry) issue(ids []string) wire.CompatibilityIssue {
	typ := strings.TrimSuffix(e.Entity, "s")
	if e.Kind == KindPluginField {
		typ = "plugin"
	}
	res := make([]wire.AffectedResource, len(ids))
	for i, id := range ids {
		res[i] = wire.AffectedResource{ID: id, Type: typ}
	}
	is := wire.CompatibilityIssue{Severity: wire.SeverityWarning, AffectedResources: res,
		Resolution: fmt.Sprintf("Upgrade the data plane to Kong Gateway %s or later", e.Before)}
	switch e.Kind {
	case KindPluginField:
		is.Code = wire.IssueFieldRemoved
		is.Description = fmt.Sprintf("Plugin %q sets config.%s, which Kong Gateway before %s does not know: the field is left out "+
			"of the configuration this data plane receives, so what it sets does not take effect there.", e.Plugin, e.Field, e.Before)
		is.Resolution += fmt.Sprintf(", or set config.%s back to its default.", e.Field)
	case KindEntityField:
		is.Code = wire.IssueFieldRemoved
		is.Description = fmt.Sprintf("Some %s set %s, which Kong Gateway before %s does not know: the field is left out "+
			"of the configuration this data plane receives, so what it sets does not take effect there.", e.Entity, e.Field, e.Before)
		is.Resolution += fmt.Sprintf(", or unset %s.", e.Field)
	case KindEntityValue:
		is.Code = wire.IssueValueReplaced
		is.Description = fmt.Sprintf("Some %s use %s %q, which Kong Gateway before %s does not know: this data plane receives %q instead.",
			e.Entity, e.Field, e.Value, e.Before, e.Replacement)
		is.Resolution += fmt.Sprintf(", or use another %s.", e.Field)
	case KindEntityType:
		is.Code = wire.IssueEntityTypeRemoved
		is.Description = fmt.Sprintf("The configuration has %s, an entity type Kong Gateway before %s does not know: "+
			"this data plane receives the configuration without them.", e.Entity, e.Before)
		is.Resolution += "."
	}
	return is
}

// rowsOf returns the rows of a collection that are objects.
func rowsOf(config map[string]any, entity string) []map[string]any {
	list, _ := config[entity].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, r := range list {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func rowID(r any) string {
	m, _ := r.(map[string]any)
	id, _ := m["id"].(string)
	return id
}

// removePath deletes the dotted path from m and returns the removed value; present is false when
// the path did not exist (a missing or non-object parent included).
func removePath(m map[string]any, path string) (v any, present bool) {
	name, rest, nested := strings.Cut(path, ".")
	if !nested {
		v, present = m[name]
		delete(m, name)
		return v, present
	}
	sub, ok := m[name].(map[string]any)
	if !ok {
		return nil, false
	}
	return removePath(sub, rest)
}

// isDefault reports whether v means the same as the default def: unset (null) or equal to it.
// Values are compared by their JSON encoding, so that an integer and the same float compare equal.
func isDefault(v, def any) bool {
	if v == nil {
		return true
	}
	a, err1 := json.Marshal(v)
	b, err2 := json.Marshal(def)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// deepCopy copies the JSON-shaped value v: maps and slices are copied, scalars shared.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}
