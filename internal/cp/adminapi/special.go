package adminapi

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
)

// maxScanPages bounds loops that page through a whole entity type inside one request
// (enabled plugins, a consumer group's plugins): 100 pages of 1000.
const maxScanPages = 100

// all pages through every entity of e (optionally the children of one parent).
func all(tx *entitystore.Tx, e *schema.Entity, q entitystore.ListQuery) ([]Doc, error) {
	q.Limit = maxPageSize
	var out []Doc
	for range maxScanPages {
		docs, more, err := tx.List(e, q)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
		if !more || len(docs) == 0 {
			return out, nil
		}
		q.After, _ = docs[len(docs)-1]["id"].(string)
	}
	return out, nil
}

// root answers GET / as Kong does: version, the bundled plugins with their versions and
// priorities, the plugins this group uses, and the configuration essentials clients read.
func (c *call) root() error {
	available := map[string]any{}
	for _, p := range schema.Plugins() {
		available[p.Name] = map[string]any{"version": p.Version, "priority": p.Priority}
	}
	enabled := []string{}
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		pe, _ := schema.Lookup("plugins")
		docs, err := all(tx, pe, entitystore.ListQuery{})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, d := range docs {
			if n, ok := d["name"].(string); ok && !seen[n] {
				seen[n] = true
				enabled = append(enabled, n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(enabled)
	bundled := make([]string, 0, len(available))
	for n := range available {
		bundled = append(bundled, n)
	}
	sort.Strings(bundled)
	return c.reply(http.StatusOK, map[string]any{
		"tagline":     "Welcome to kong",
		"version":     schema.KongVersion,
		"edition":     "community",
		"hostname":    c.h.hostname,
		"node_id":     c.h.nodeID,
		"lua_version": "LuaJIT 2.1.0-20231117",
		"timers":      map[string]any{"running": 0, "pending": 0},
		"plugins": map[string]any{
			"available_on_server": available,
			"enabled_in_cluster":  enabled,
			"disabled_on_server":  map[string]any{},
		},
		"configuration": map[string]any{
			"database":      "postgres",
			"role":          "control_plane",
			"router_flavor": "traditional_compatible",
			"plugins":       []string{"bundled"},
			"loaded_plugins": func() map[string]bool {
				m := map[string]bool{}
				for _, n := range bundled {
					m[n] = true
				}
				return m
			}(),
			"portal": false,
			"rbac":   "off",
		},
		"pids": map[string]any{"master": os.Getpid(), "workers": []int{}},
	})
}

// enabledPlugins answers GET /plugins/enabled: the plugins this server can run.
func (c *call) enabledPlugins() error {
	names := []string{}
	for _, p := range schema.Plugins() {
		names = append(names, p.Name)
	}
	return c.reply(http.StatusOK, map[string]any{"enabled_plugins": names})
}

func (c *call) entitySchema(name string) error {
	e, ok := schema.Lookup(name)
	if !ok {
		return &httpError{http.StatusNotFound, fmt.Sprintf("No entity named '%s'", name)}
	}
	return c.reply(http.StatusOK, e.KongSchema())
}

func (c *call) pluginSchema(name string) error {
	p, ok := schema.LookupPlugin(name)
	if !ok {
		return &httpError{http.StatusNotFound, fmt.Sprintf("No plugin named '%s'", name)}
	}
	return c.reply(http.StatusOK, p.KongSchema())
}

// vaultSchema answers GET /schemas/vaults/{name} as kong/api/routes/kong.lua does: the vault
// entity's schema with that vault type's config, or 404 "No vault named '…'".
func (c *call) vaultSchema(name string) error {
	if !slices.Contains(schema.VaultTypes, name) {
		return &httpError{http.StatusNotFound, fmt.Sprintf("No vault named '%s'", name)}
	}
	e, _ := schema.Lookup("vaults")
	return c.reply(http.StatusOK, e.KongSchema())
}

// validate answers POST /schemas/{entity}/validate and /schemas/plugins/validate: the entity is
// checked as a create would check it, and nothing is stored.
func (c *call) validate(name string) error {
	e, ok := schema.Lookup(name)
	if !ok {
		return &httpError{http.StatusNotFound, fmt.Sprintf("No entity named '%s'", name)}
	}
	input, form, err := c.body()
	if err != nil {
		return err
	}
	if form {
		coerceForm(schemaFor(e, input, nil), input)
	}
	if verr := e.Validate(input); verr != nil {
		return verr
	}
	return c.reply(http.StatusOK, map[string]any{"message": "schema validation successful"})
}

// entityJSONSchema answers Konnect's GET /v1/schemas/json/{entity}, where entity is singular
// ("service", "route", "upstream", "target").
func (c *call) entityJSONSchema(name string) error {
	for _, n := range []string{name, name + "s"} {
		if e, ok := schema.Lookup(n); ok {
			return c.reply(http.StatusOK, e.JSONSchema())
		}
	}
	return errNotFound
}

func (c *call) pluginJSONSchema(name string) error {
	p, ok := schema.LookupPlugin(name)
	if !ok {
		return errNotFound
	}
	return c.reply(http.StatusOK, p.JSONSchema())
}

func consumerGroups() *schema.Entity { e, _ := schema.Lookup("consumer_groups"); return e }
func consumers() *schema.Entity      { e, _ := schema.Lookup("consumers"); return e }

// emptyIfNil keeps JSON arrays from becoming null.
func emptyIfNil(docs []Doc) []Doc {
	if docs == nil {
		return []Doc{}
	}
	return docs
}

// getConsumerGroup answers GET /consumer_groups/{id|name} as Kong Enterprise does: the group, its
// consumers (unless list_consumers=false) and its plugins. decK reads membership only from here.
func (c *call) getConsumerGroup(key string) error {
	var body map[string]any
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		g, err := find(tx, consumerGroups(), key, nil)
		if err != nil {
			return err
		}
		id := g["id"].(string)
		body = map[string]any{"consumer_group": g}
		if c.r.URL.Query().Get("list_consumers") != "false" {
			members, err := tx.Members(id)
			if err != nil {
				return err
			}
			body["consumers"] = emptyIfNil(members)
		}
		pe, _ := schema.Lookup("plugins")
		plugins, err := all(tx, pe, entitystore.ListQuery{Parent: "consumer_group", ParentID: id})
		if err != nil {
			return err
		}
		body["plugins"] = emptyIfNil(plugins)
		return nil
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, body)
}

// keysOf reads a membership body field: one key or a list of keys (ids or endpoint keys).
func keysOf(input map[string]any, field string) ([]string, error) {
	var keys []string
	switch v := input[field].(type) {
	case string:
		keys = []string{v}
	case []any:
		for _, k := range v {
			s, ok := k.(string)
			if !ok {
				return nil, badRequest(fmt.Sprintf("%s must be a string or an array of strings", field))
			}
			keys = append(keys, s)
		}
	case map[string]any:
		if id, ok := v["id"].(string); ok {
			keys = []string{id}
		}
	}
	if len(keys) == 0 {
		return nil, badRequest("must provide " + field)
	}
	return keys, nil
}

// side is one end of consumer group membership as a URL addresses it: /consumer_groups/{g}/consumers
// lists a group's consumers, /consumers/{c}/consumer_groups a consumer's groups. The handlers
// below serve both paths through it, so the two stay the mirror image Kong answers with.
type side struct {
	// self is the entity the path names, other the entity on the far end of the membership.
	self, other func() *schema.Entity
	// one is self's field in answers ("consumer_group"), many other's list field ("consumers").
	one, many string
	// field is the body field of a POST naming other entities ("consumer", "group"), and
	// absent Kong's message, with one %s for the key, when one of them does not exist.
	field, absent string
	// related reads the other entities self is a member of (or has as members), ordered by id.
	related func(tx *entitystore.Tx, id string) ([]Doc, error)
	// pair orders the ids of self and other as (consumer group id, consumer id).
	pair func(self, other string) (string, string)
}

var (
	groupSide = &side{
		self: consumerGroups, other: consumers,
		one: "consumer_group", many: "consumers",
		field: "consumer", absent: "Consumer '%s' not found",
		related: (*entitystore.Tx).Members,
		pair:    func(g, c string) (string, string) { return g, c },
	}
	consumerSide = &side{
		self: consumers, other: consumerGroups,
		one: "consumer", many: "consumer_groups",
		field: "group", absent: "Consumer group '%s' not found",
		related: (*entitystore.Tx).GroupsOf,
		pair:    func(c, g string) (string, string) { return g, c },
	}
)

// listRelated answers GET on the membership list of the entity key addresses.
func (c *call) listRelated(s *side, key string) error {
	var related []Doc
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		d, err := find(tx, s.self(), key, nil)
		if err != nil {
			return err
		}
		related, err = s.related(tx, d["id"].(string))
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"data": emptyIfNil(related), "next": nil})
}

// relate answers POST on a membership list with {s.field: key or [keys]}: every key named joins,
// in one transaction, and the first absent one is a 404 with Kong's message.
func (c *call) relate(s *side, key string) error {
	input, _, err := c.body()
	if err != nil {
		return err
	}
	keys, err := keysOf(input, s.field)
	if err != nil {
		return err
	}
	var body map[string]any
	_, err = c.h.es.Write(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		d, err := find(tx, s.self(), key, nil)
		if err != nil {
			return err
		}
		var added []Doc
		for _, k := range keys {
			o, err := find(tx, s.other(), k, nil)
			if isNotFound(err) {
				return &httpError{http.StatusNotFound, fmt.Sprintf(s.absent, k)}
			}
			if err != nil {
				return err
			}
			if err := tx.AddMember(s.pair(d["id"].(string), o["id"].(string))); err != nil {
				return err
			}
			added = append(added, o)
		}
		body = map[string]any{s.one: d, s.many: added}
		return nil
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, body)
}

// unrelateAll answers DELETE on a membership list: every membership of the entity ends.
func (c *call) unrelateAll(s *side, key string) error {
	_, err := c.h.es.Write(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		d, err := find(tx, s.self(), key, nil)
		if err != nil {
			return err
		}
		related, err := s.related(tx, d["id"].(string))
		if err != nil {
			return err
		}
		for _, o := range related {
			if _, err := tx.RemoveMember(s.pair(d["id"].(string), o["id"].(string))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.noContent()
}

// membership resolves a consumer group and a consumer, both by id or endpoint key.
func membership(tx *entitystore.Tx, group, consumer string) (Doc, Doc, error) {
	g, err := find(tx, consumerGroups(), group, nil)
	if err != nil {
		return nil, nil, err
	}
	cons, err := find(tx, consumers(), consumer, nil)
	if err != nil {
		return nil, nil, err
	}
	return g, cons, nil
}

// member resolves a consumer group and a consumer that belongs to it; Kong's bare 404 when
// either is absent or they are not related.
func member(tx *entitystore.Tx, group, consumer string) (Doc, Doc, error) {
	g, cons, err := membership(tx, group, consumer)
	if err != nil {
		return nil, nil, err
	}
	members, err := tx.Members(g["id"].(string))
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if m["id"] == cons["id"] {
			return g, cons, nil
		}
	}
	return nil, nil, errAbsent
}

func (c *call) getMember(group, consumer string) error {
	var cons Doc
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) (err error) {
		_, cons, err = member(tx, group, consumer)
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"consumer": cons})
}

func (c *call) getGroupOf(consumer, group string) error {
	var grp Doc
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) (err error) {
		grp, _, err = member(tx, group, consumer)
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"consumer_group": grp})
}

func (c *call) removeMember(group, consumer string) error {
	_, err := c.h.es.Write(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		g, cons, err := membership(tx, group, consumer)
		if err != nil {
			return err
		}
		_, err = tx.RemoveMember(g["id"].(string), cons["id"].(string))
		return err
	})
	if err != nil {
		return err
	}
	return c.noContent()
}
