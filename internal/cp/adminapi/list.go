package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
)

// Page sizes, as Kong's Admin API bounds them.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxQueryTags    = 5
)

// Kong's tag filter syntax (kong/api/endpoints.lua): printable ASCII except ',' and '/', or
// non-ASCII bytes, joined by ',' (AND) or '/' (OR) but not both.
var (
	tagsAndRe = regexp.MustCompile(`^(?:[\x20-\x2B\x2D\x2E\x30-\x7E\x{80}-\x{10FFFF}]+(?:,|$))+$`)
	tagsOrRe  = regexp.MustCompile(`^(?:[\x20-\x2B\x2D\x2E\x30-\x7E\x{80}-\x{10FFFF}]+(?:/|$))+$`)
)

// pageParams are the parsed paging options of a list request.
type pageParams struct {
	size    int
	after   string
	tags    []string
	tagsAny bool
	// rawSize and rawTags are echoed into the next link as the client gave them.
	rawSize, rawTags string
}

// parsePage reads size, offset and tags with Kong's validation and messages.
func parsePage(q url.Values, tagged bool) (pageParams, error) {
	p := pageParams{size: defaultPageSize}
	if q.Has("size") {
		raw := q.Get("size")
		n, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return p, schema.InvalidSize("size must be a number")
		}
		if n != float64(int(n)) || n < 1 || n > maxPageSize {
			return p, schema.InvalidSize("size must be an integer between 1 and 1000")
		}
		p.size, p.rawSize = int(n), raw
	}
	if q.Has("offset") {
		raw := q.Get("offset")
		id, err := decodeOffset(raw)
		if err != nil {
			return p, err
		}
		p.after = id
	}
	if q.Has("tags") && tagged {
		raw := q.Get("tags")
		p.rawTags = raw
		switch {
		case tagsAndRe.MatchString(raw):
			p.tags = strings.Split(strings.TrimSuffix(raw, ","), ",")
		case tagsOrRe.MatchString(raw):
			p.tags = strings.Split(strings.TrimSuffix(raw, "/"), "/")
			p.tagsAny = true
		default:
			return p, schema.InvalidOptions(map[string]any{"tags": "invalid filter syntax"})
		}
		if len(p.tags) > maxQueryTags {
			return p, schema.InvalidOptions(map[string]any{"tags": "cannot query more than 5 tags"})
		}
	}
	return p, nil
}

func (p pageParams) query() entitystore.ListQuery {
	return entitystore.ListQuery{Tags: p.tags, TagsAny: p.tagsAny, After: p.after, Limit: p.size}
}

// encodeOffset makes Kong's opaque offset: base64 without padding of a JSON array of the last
// row's primary key.
func encodeOffset(id string) string {
	raw, _ := json.Marshal([]string{id})
	return base64.RawStdEncoding.EncodeToString(raw)
}

func decodeOffset(s string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return "", schema.InvalidOffset(s, "bad base64 encoding")
	}
	var key []string
	if err := json.Unmarshal(raw, &key); err != nil || len(key) != 1 || key[0] == "" {
		return "", schema.InvalidOffset(s, "bad json encoding")
	}
	return key[0], nil
}

// pageBody builds Kong's list answer. data is never null; offset is present only when another
// page follows, and next is then the path of that page (with size and tags carried over), else
// null.
func pageBody(data []map[string]any, more bool, path string, p pageParams) map[string]any {
	if data == nil {
		data = []map[string]any{}
	}
	body := map[string]any{"data": data, "next": nil}
	if more && len(data) > 0 {
		id, _ := data[len(data)-1]["id"].(string)
		off := encodeOffset(id)
		next := path + "?offset=" + url.QueryEscape(off)
		if p.rawTags != "" {
			next += "&tags=" + url.QueryEscape(p.rawTags)
		}
		if p.rawSize != "" {
			next += "&size=" + url.QueryEscape(p.rawSize)
		}
		body["offset"] = off
		body["next"] = next
	}
	return body
}
