package adminapi

import (
	"net/http"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// parentSel names the parent of a nested path (/services/{key}/routes): the parent's entity type,
// its key as given in the URL, and the child's foreign field that must reference it.
type parentSel struct {
	e     *schema.Entity
	key   string
	field string
}

// route finds the endpoint serving a path below /core-entities, or nil (404).
func (h *Handler) route(segs []string) endpoint {
	switch {
	case len(segs) == 0:
		return endpoint{http.MethodGet: (*call).root}
	case segs[0] == "schemas":
		return schemaRoute(segs[1:])
	case segs[0] == "v1":
		if len(segs) >= 4 && segs[1] == "schemas" && segs[2] == "json" {
			return jsonSchemaRoute(segs[3:])
		}
		return nil
	case segs[0] == "tags" && len(segs) <= 2:
		tag := ""
		if len(segs) == 2 {
			tag = segs[1]
		}
		return endpoint{http.MethodGet: func(c *call) error { return c.listTags(tag, len(segs) == 2) }}
	case len(segs) == 2 && segs[0] == "plugins" && segs[1] == "enabled":
		return endpoint{http.MethodGet: (*call).enabledPlugins}
	case segs[0] == "consumer_groups" && len(segs) == 2:
		ep := genericRoute(segs)
		ep[http.MethodGet] = func(c *call) error { return c.getConsumerGroup(segs[1]) }
		return ep
	case segs[0] == "consumer_groups" && len(segs) >= 3 && segs[2] == "consumers":
		return membersRoute(segs[1], segs[3:])
	case segs[0] == "consumers" && len(segs) >= 3 && segs[2] == "consumer_groups":
		return groupsOfRoute(segs[1], segs[3:])
	case segs[0] == "targets":
		// Kong serves targets only under their upstream: /targets and /targets/{t} are disabled
		// (kong/api/endpoints.lua "disable").
		return nil
	case segs[0] == "upstreams" && len(segs) == 4 && segs[2] == "targets":
		return targetRoute(segs[1], segs[3])
	}
	return genericRoute(segs)
}

// targetRoute serves /upstreams/{u}/targets/{t} as kong/api/routes/upstreams.lua does: "all" lists
// every target of the upstream; a target (by id or host:port) that is absent is a bare 404 for
// every method, and PUT updates the target it finds, like PATCH, rather than creating one.
func targetRoute(upstream, key string) endpoint {
	ups, _ := schema.Lookup("upstreams")
	targets, _ := schema.Lookup("targets")
	ps := &parentSel{e: ups, key: upstream, field: "upstream"}
	if key == "all" {
		return endpoint{http.MethodGet: func(c *call) error { return c.list(targets, ps) }}
	}
	ep := entityEndpoint(targets, key, ps)
	ep[http.MethodGet] = func(c *call) error { return c.getTarget(targets, key, ps) }
	ep[http.MethodPut] = func(c *call) error { return c.updateTarget(targets, key, ps) }
	ep[http.MethodPatch] = ep[http.MethodPut]
	return ep
}

// genericRoute serves every entity type from its schema: the collection, one entity, the
// collections nested under it through each foreign key, and its foreign entities.
func genericRoute(segs []string) endpoint {
	e, ok := schema.Lookup(segs[0])
	if !ok || e.AdminPath != segs[0] {
		return nil
	}
	switch len(segs) {
	case 1:
		return endpoint{
			http.MethodGet:  func(c *call) error { return c.list(e, nil) },
			http.MethodPost: func(c *call) error { return c.create(e, nil) },
		}
	case 2:
		return entityEndpoint(e, segs[1], nil)
	case 3, 4:
		if child, field := childOf(e, segs[2]); child != nil {
			ps := &parentSel{e: e, key: segs[1], field: field}
			if len(segs) == 3 {
				return endpoint{
					http.MethodGet:  func(c *call) error { return c.list(child, ps) },
					http.MethodPost: func(c *call) error { return c.create(child, ps) },
				}
			}
			return entityEndpoint(child, segs[3], ps)
		}
		if len(segs) == 3 {
			// Kong disables /snis/{sni}/certificate; every other foreign key has its endpoint.
			if ref := refOf(e, segs[2]); ref != nil && e.Name != "snis" {
				key := segs[1]
				return endpoint{
					http.MethodGet:    func(c *call) error { return c.getForeign(e, key, ref) },
					http.MethodPatch:  func(c *call) error { return c.patchForeign(e, key, ref) },
					http.MethodPut:    func(c *call) error { return c.putForeign(e, key, ref) },
					http.MethodDelete: func(c *call) error { return c.deleteForeign(e, key, ref) },
				}
			}
		}
	}
	return nil
}

func entityEndpoint(e *schema.Entity, key string, ps *parentSel) endpoint {
	return endpoint{
		http.MethodGet:    func(c *call) error { return c.get(e, key, ps) },
		http.MethodPut:    func(c *call) error { return c.put(e, key, ps) },
		http.MethodPatch:  func(c *call) error { return c.patch(e, key, ps) },
		http.MethodDelete: func(c *call) error { return c.delete(e, key, ps) },
	}
}

// childOf finds the entity served at /{parent}/{key}/{sub} and its foreign field referencing the
// parent. Credentials under consumers use their nested names (/consumers/{c}/key-auth).
func childOf(parent *schema.Entity, sub string) (*schema.Entity, string) {
	for _, child := range schema.Entities() {
		name := child.AdminPath
		if parent.Name == "consumers" && child.NestedPath != "" {
			name = child.NestedPath
		}
		if name != sub {
			continue
		}
		for _, r := range child.Refs {
			if r.Entity == parent.Name {
				return child, r.Field
			}
		}
	}
	return nil, ""
}

// refOf returns e's foreign key named field, or nil.
func refOf(e *schema.Entity, field string) *schema.Ref {
	for i := range e.Refs {
		if e.Refs[i].Field == field {
			return &e.Refs[i]
		}
	}
	return nil
}

func schemaRoute(segs []string) endpoint {
	switch {
	case len(segs) == 2 && segs[0] == "plugins" && segs[1] == "validate":
		return endpoint{http.MethodPost: func(c *call) error { return c.validate("plugins") }}
	case len(segs) == 2 && segs[0] == "plugins":
		return endpoint{http.MethodGet: func(c *call) error { return c.pluginSchema(segs[1]) }}
	case len(segs) == 2 && segs[0] == "vaults" && segs[1] != "validate":
		return endpoint{http.MethodGet: func(c *call) error { return c.vaultSchema(segs[1]) }}
	case len(segs) == 2 && segs[1] == "validate":
		return endpoint{http.MethodPost: func(c *call) error { return c.validate(segs[0]) }}
	case len(segs) == 1:
		return endpoint{http.MethodGet: func(c *call) error { return c.entitySchema(segs[0]) }}
	}
	return nil
}

func jsonSchemaRoute(segs []string) endpoint {
	switch {
	case len(segs) == 2 && segs[0] == "plugins":
		return endpoint{http.MethodGet: func(c *call) error { return c.pluginJSONSchema(segs[1]) }}
	case len(segs) == 1:
		return endpoint{http.MethodGet: func(c *call) error { return c.entityJSONSchema(segs[0]) }}
	}
	return nil
}

func membersRoute(group string, rest []string) endpoint {
	switch len(rest) {
	case 0:
		return endpoint{
			http.MethodGet:    func(c *call) error { return c.listRelated(groupSide, group) },
			http.MethodPost:   func(c *call) error { return c.relate(groupSide, group) },
			http.MethodDelete: func(c *call) error { return c.unrelateAll(groupSide, group) },
		}
	case 1:
		return endpoint{
			http.MethodGet:    func(c *call) error { return c.getMember(group, rest[0]) },
			http.MethodDelete: func(c *call) error { return c.removeMember(group, rest[0]) },
		}
	}
	return nil
}

func groupsOfRoute(consumer string, rest []string) endpoint {
	switch len(rest) {
	case 0:
		return endpoint{
			http.MethodGet:    func(c *call) error { return c.listRelated(consumerSide, consumer) },
			http.MethodPost:   func(c *call) error { return c.relate(consumerSide, consumer) },
			http.MethodDelete: func(c *call) error { return c.unrelateAll(consumerSide, consumer) },
		}
	case 1:
		return endpoint{
			http.MethodGet:    func(c *call) error { return c.getGroupOf(consumer, rest[0]) },
			http.MethodDelete: func(c *call) error { return c.removeMember(rest[0], consumer) },
		}
	}
	return nil
}
