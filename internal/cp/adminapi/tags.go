package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
)

// tagRow is one row of GET /tags and /tags/{tag} (Kong's tags entity, kong/db/schema/entities/
// tags.lua): an entity carrying a tag. ord is the tag's 1-based position in the entity's tags,
// the second half of Kong's /tags cursor; it is not part of the answer.
type tagRow struct {
	entityID, entityName, tag string
	ord                       int
}

// tagCursor is the position after which a /tags page resumes: an entity id and, for /tags, the
// position of the last tag of that entity already listed (0 for /tags/{tag}, whose rows are one
// per entity).
type tagCursor struct {
	id  string
	ord int
}

// kongTableName is the entity_name Kong's tags rows carry: the table the row lives in (the tags
// table is filled by triggers with TG_TABLE_NAME), which is the DAO name for every entity but
// vaults, stored in sm_vaults (kong/db/schema/entities/vaults.lua table_name).
func kongTableName(e *schema.Entity) string {
	if e.Name == "vaults" {
		return "sm_vaults"
	}
	return e.Name
}

// taggedEntities are the entity types with a tags field, the ones /tags lists.
func taggedEntities() []*schema.Entity {
	var out []*schema.Entity
	for _, e := range schema.Entities() {
		if e.Field("tags") != nil {
			out = append(out, e)
		}
	}
	return out
}

// listTags answers GET /tags (tag == "") and GET /tags/{tag} as Kong does: rows ordered by entity
// id (then by the tag's position within the entity), paged with size and an opaque offset, and
// the ?tags= filter ignored (spec/02-integration/04-admin_api/14-tags_spec.lua). A {tag} that is
// not a valid tag is Kong's code 10 (kong/db/dao/tags.lua page_by_tag).
func (c *call) listTags(tag string, byTag bool) error {
	q := c.r.URL.Query()
	if byTag {
		if msg := schema.CheckTag(tag); msg != "" {
			return schema.InvalidUnique("tag", msg)
		}
	}
	var cur *tagCursor
	if q.Has("offset") {
		var err error
		if cur, err = decodeTagOffset(q.Get("offset")); err != nil {
			return err
		}
	}
	// Size is checked as every list checks it; tags and offset are this endpoint's own.
	sizeOnly := url.Values{}
	if q.Has("size") {
		sizeOnly.Set("size", q.Get("size"))
	}
	p, err := parsePage(sizeOnly, false)
	if err != nil {
		return err
	}
	var rows []tagRow
	err = c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		for _, e := range taggedEntities() {
			got, err := tagRowsOf(tx, e, tag, byTag, cur, p.size+1)
			if err != nil {
				return err
			}
			rows = append(rows, got...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].entityID != rows[j].entityID {
			return rows[i].entityID < rows[j].entityID
		}
		return rows[i].ord < rows[j].ord
	})
	more := len(rows) > p.size
	if more {
		rows = rows[:p.size]
	}
	data := make([]map[string]any, len(rows))
	for i, r := range rows {
		data[i] = map[string]any{"entity_id": r.entityID, "entity_name": r.entityName, "tag": r.tag}
	}
	body := map[string]any{"data": data, "next": nil}
	if more && len(rows) > 0 {
		last := rows[len(rows)-1]
		off := encodeTagOffset(last, byTag)
		next := c.relPath("tags") + "?offset=" + url.QueryEscape(off)
		if byTag {
			next = c.relPath("tags", url.PathEscape(tag)) + "?offset=" + url.QueryEscape(off)
		} else if p.rawSize != "" {
			next += "&size=" + url.QueryEscape(p.rawSize)
		}
		body["offset"] = off
		body["next"] = next
	}
	return c.reply(http.StatusOK, body)
}

// tagRowsOf returns up to limit rows of entity type e that come after cur: every tag of every
// entity (byTag false) or the entities carrying tag.
func tagRowsOf(tx *entitystore.Tx, e *schema.Entity, tag string, byTag bool, cur *tagCursor, limit int) ([]tagRow, error) {
	var out []tagRow
	add := func(d Doc, minOrd int) {
		id, _ := d["id"].(string)
		tags, _ := d["tags"].([]any)
		for i, t := range tags {
			s, _ := t.(string)
			switch {
			case byTag && s == tag:
				out = append(out, tagRow{entityID: id, entityName: kongTableName(e), tag: s})
				return
			case !byTag && i+1 > minOrd:
				out = append(out, tagRow{entityID: id, entityName: kongTableName(e), tag: s, ord: i + 1})
			}
		}
	}
	lq := entitystore.ListQuery{Limit: maxPageSize}
	if byTag {
		lq.Tags = []string{tag}
	}
	if cur != nil {
		lq.After = cur.id
		if !byTag {
			// The cursor's own entity may have tags left to list.
			d, err := tx.Get(e, cur.id)
			switch {
			case err == nil:
				add(d, cur.ord)
			case !isNotFound(err):
				return nil, err
			}
		}
	}
	for range maxScanPages {
		docs, more, err := tx.List(e, lq)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			add(d, 0)
		}
		if !more || len(docs) == 0 || len(out) >= limit {
			break
		}
		lq.After, _ = docs[len(docs)-1]["id"].(string)
	}
	return out, nil
}

// encodeTagOffset makes Kong's /tags cursor (kong/db/strategies/postgres/tags.lua): base64
// without padding of the JSON array [entity_id, ordinality], or [entity_id] for /tags/{tag}.
func encodeTagOffset(r tagRow, byTag bool) string {
	v := []any{r.entityID}
	if !byTag {
		v = append(v, r.ord)
	}
	raw, _ := json.Marshal(v)
	return base64.RawStdEncoding.EncodeToString(raw)
}

func decodeTagOffset(s string) (*tagCursor, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, schema.InvalidOffset(s, "bad base64 encoding")
	}
	var v []any
	if err := json.Unmarshal(raw, &v); err != nil || len(v) == 0 || len(v) > 2 {
		return nil, schema.InvalidOffset(s, "bad json encoding")
	}
	id, ok := v[0].(string)
	if !ok || id == "" {
		return nil, schema.InvalidOffset(s, "bad json encoding")
	}
	cur := &tagCursor{id: id}
	if len(v) == 2 {
		n, ok := v[1].(float64)
		if !ok || n < 0 || n != float64(int(n)) {
			return nil, schema.InvalidOffset(s, "bad json encoding")
		}
		cur.ord = int(n)
	}
	return cur, nil
}
