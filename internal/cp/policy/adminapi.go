package policy

import (
	"net/http"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// AdminAPI classifies a request of a group's Kong Admin API: the action it needs and, for
// writes, the entity type it writes. segs are the path's segments below /core-entities/.
//
// Safe methods read. Unsafe methods write the entity type the path addresses: the last
// collection of a nested path (/services/{s}/routes writes routes), the referenced entity of a
// parent path (/routes/{r}/service writes services), credentials under /consumers/{c}/, consumer
// group membership, the whole configuration (/config), and nothing for validation endpoints
// (/schemas/…/validate reads). A path the classifier does not know is a write of TypeConfig,
// which only Admin holds, so that an unknown endpoint fails closed.
func AdminAPI(method string, segs []string) (Action, string) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return Read, ""
	}
	if len(segs) == 0 {
		return Write, TypeConfig
	}
	switch segs[0] {
	case "schemas":
		// POST /schemas/{entity}/validate and /schemas/plugins/validate write nothing.
		if segs[len(segs)-1] == "validate" {
			return Read, ""
		}
		return Write, TypeConfig
	case "config":
		return Write, TypeConfig
	case "consumer_groups":
		if len(segs) >= 3 && segs[2] == "consumers" {
			return Write, "consumer_group_consumers"
		}
	case "consumers":
		if len(segs) >= 3 {
			if segs[2] == "consumer_groups" {
				return Write, "consumer_group_consumers"
			}
			if e, ok := schema.LookupNested(segs[2]); ok {
				return Write, e.Name
			}
		}
	}
	parent, ok := schema.Lookup(segs[0])
	if !ok {
		return Write, TypeConfig
	}
	if len(segs) <= 2 {
		return Write, parent.Name
	}
	if child, ok := schema.Lookup(segs[2]); ok {
		return Write, child.Name
	}
	// /routes/{r}/service, /plugins/{p}/consumer, /snis/{s}/certificate: the parent's
	// reference, which Kong lets clients update through its parent.
	if f := parent.Field(segs[2]); f != nil && f.Type == schema.TypeForeign {
		if ref, ok := schema.Lookup(f.Reference); ok {
			return Write, ref.Name
		}
	}
	return Write, TypeConfig
}
