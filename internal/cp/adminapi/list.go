package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
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

// tagFilterSep reports how a ?tags= value joins its tags, with Kong's syntax (kong/api/
// endpoints.lua TAGS_AND_REGEX and TAGS_OR_REGEX, which match bytes): tags of the bytes 0x20-0x7E
// except ',' and '/', or 0x80-0xF4, joined by ',' (AND) or '/' (OR) but not both, each tag
// non-empty (one trailing separator is allowed). It answers the separator, or 0 when the value
// is not a filter Kong accepts. It is a byte scan rather than a regexp so that bytes 0xF5-0xFF,
// which Go's regexp would read as U+FFFD, are refused as Kong refuses them.
func tagFilterSep(raw string) byte {
	var sep byte
	run := 0
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		switch {
		case b == ',' || b == '/':
			if run == 0 || (sep != 0 && sep != b) {
				return 0
			}
			sep, run = b, 0
		case (b >= 0x20 && b <= 0x7e) || (b >= 0x80 && b <= 0xf4):
			run++
		default:
			return 0
		}
	}
	if run == 0 && sep == 0 {
		return 0
	}
	if sep == 0 {
		sep = ','
	}
	return sep
}

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
		switch tagFilterSep(raw) {
		case ',':
			p.tags = strings.Split(strings.TrimSuffix(raw, ","), ",")
		case '/':
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
