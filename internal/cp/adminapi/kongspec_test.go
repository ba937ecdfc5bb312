package adminapi_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// specCase is one request of a table written from Kong's own behaviour: the answer's status and,
// when want is set, the fields of its body that Kong's spec or code fixes (code, name, message,
// fields). from names the Kong source (repository Kong/kong) the expectation was taken from.
type specCase struct {
	name         string
	method, path string
	body         any
	status       int
	want         map[string]any
	from         string
}

// run sends each case in order (later cases may depend on earlier ones) and compares the answer.
func runSpec(t *testing.T, e *env, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("%s %s: status %d, want %d (Kong: %s): %s", tc.method, tc.path, r.status, tc.status, tc.from, r.raw)
			}
			for k, v := range tc.want {
				got := lookupPath(r.body, k)
				var ok bool
				switch w := v.(type) {
				case lenIs:
					a, isList := got.([]any)
					ok = isList && len(a) == int(w)
				case containsText:
					s, isStr := got.(string)
					ok = isStr && strings.Contains(s, string(w))
				default:
					ok = reflect.DeepEqual(normalize(got), normalize(v))
				}
				if !ok {
					t.Errorf("%s %s: %s = %#v, want %#v (Kong: %s)", tc.method, tc.path, k, got, v, tc.from)
				}
			}
		})
	}
}

// lookupPath reads a dotted path ("fields.prefix", "data.0.tag") of a decoded JSON body.
func lookupPath(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

const vaultsSpec = "spec/02-integration/04-admin_api/19-vaults_spec.lua"

// TestVaultsKongSpec checks vaults against Kong's prefix rule (kong/db/schema/entities/vaults.lua:
// lowercase letters, digits and hyphens, not a vault type name) and its addressing by prefix and
// by id, as Kong's vaults Admin API spec does.
func TestVaultsKongSpec(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const id = "f4aecadc-05c7-11e6-8d41-1f3b3d5fa15c"
		runSpec(t, e, []specCase{
			{name: "PUT by prefix creates", method: "PUT", path: "/vaults/my-env-vault", body: map[string]any{"name": "env"},
				status: 200, want: map[string]any{"prefix": "my-env-vault", "name": "env"}, from: vaultsSpec + ` "can create a vault by prefix"`},
			{name: "PUT by id creates", method: "PUT", path: "/vaults/" + id, body: map[string]any{"name": "env", "prefix": "put-env-id"},
				status: 200, want: map[string]any{"id": id, "prefix": "put-env-id"}, from: vaultsSpec + ` "can create a vault by id"`},
			{name: "POST with hyphens", method: "POST", path: "/vaults", body: map[string]any{"name": "env", "prefix": "env-3"},
				status: 201, want: map[string]any{"prefix": "env-3"}, from: vaultsSpec + ` lazy_setup (prefixes env-1..3)`},
			{name: "GET by prefix", method: "GET", path: "/vaults/my-env-vault", status: 200,
				want: map[string]any{"prefix": "my-env-vault"}, from: vaultsSpec + ` "retrieves a vault by prefix"`},
			{name: "GET by id", method: "GET", path: "/vaults/" + id, status: 200,
				want: map[string]any{"prefix": "put-env-id"}, from: vaultsSpec + ` "retrieves a vault by id"`},
			{name: "GET missing prefix", method: "GET", path: "/vaults/not-found", status: 404,
				want: map[string]any{"message": "Not found"}, from: vaultsSpec + ` "returns 404 if not found by prefix"`},
			{name: "PATCH by prefix", method: "PATCH", path: "/vaults/my-env-vault", body: map[string]any{"config": map[string]any{"prefix": "CERT_"}},
				status: 200, want: map[string]any{"config.prefix": "CERT_"}, from: vaultsSpec + ` "updates a vault by prefix"`},
			{name: "PATCH by id", method: "PATCH", path: "/vaults/" + id, body: map[string]any{"config": map[string]any{"prefix": "SSL_"}},
				status: 200, want: map[string]any{"config.prefix": "SSL_"}, from: vaultsSpec + ` "updates a vault by id"`},
			{name: "PUT type name by id", method: "PUT", path: "/vaults/" + id, body: map[string]any{"name": "env", "prefix": "env"},
				status: 400, want: map[string]any{"code": 2, "name": "schema violation",
					"message": "schema violation (prefix: must not be one of: env)", "fields": map[string]any{"prefix": "must not be one of: env"}},
				from: vaultsSpec + ` PUT "handles invalid input by id"`},
			{name: "PUT type name by prefix", method: "PUT", path: "/vaults/env", body: map[string]any{"name": "env"},
				status: 400, want: map[string]any{"code": 10, "name": "invalid unique prefix", "message": "must not be one of: env"},
				from: vaultsSpec + ` PUT "handles invalid input by prefix"; code 10 from kong/db/dao/init.lua select_by_/upsert_by_`},
			{name: "PATCH prefix to type name", method: "PATCH", path: "/vaults/my-env-vault", body: map[string]any{"prefix": "env"},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (prefix: must not be one of: env)"},
				from: vaultsSpec + ` PATCH "handles invalid input by prefix"`},
			{name: "PATCH missing id", method: "PATCH", path: "/vaults/a4aecadc-05c7-11e6-8d41-1f3b3d5fa15c", body: map[string]any{"description": "d"},
				status: 404, from: vaultsSpec + ` PATCH "returns 404 if not found"`},
			{name: "POST uppercase", method: "POST", path: "/vaults", body: map[string]any{"name": "env", "prefix": "My-Vault"},
				status: 400, want: map[string]any{"message": "schema violation (prefix: invalid value: My-Vault)"},
				from: `kong/db/schema/entities/vaults.lua match ^[a-z][a-z%d-]-[a-z%d]+$; message MATCH in kong/db/schema/init.lua`},
			{name: "POST trailing hyphen", method: "POST", path: "/vaults", body: map[string]any{"name": "env", "prefix": "vault-"},
				status: 400, want: map[string]any{"message": "schema violation (prefix: invalid value: vault-)"},
				from: `kong/db/schema/entities/vaults.lua match ^[a-z][a-z%d-]-[a-z%d]+$`},
			{name: "POST duplicate prefix", method: "POST", path: "/vaults", body: map[string]any{"name": "env", "prefix": "env-3"},
				status: 409, want: map[string]any{"code": 5, "message": `UNIQUE violation detected on '{prefix="env-3"}'`},
				from: `kong/db/schema/entities/vaults.lua prefix unique = true; message in kong/db/errors.lua unique_violation`},
			{name: "DELETE by prefix", method: "DELETE", path: "/vaults/env-3", status: 204, from: vaultsSpec + ` "deletes by prefix"`},
			{name: "GET deleted by prefix", method: "GET", path: "/vaults/env-3", status: 404, from: vaultsSpec + ` "deletes by prefix"`},
			{name: "DELETE by id", method: "DELETE", path: "/vaults/" + id, status: 204, from: vaultsSpec + ` "deletes by id"`},
			{name: "GET deleted by id", method: "GET", path: "/vaults/" + id, status: 404, from: vaultsSpec + ` "deletes by id"`},
			{name: "DELETE missing", method: "DELETE", path: "/vaults/" + id, status: 204, from: vaultsSpec + ` "returns 204 if not found"`},
		})
	})
}

const (
	tagsSpec     = "spec/02-integration/04-admin_api/14-tags_spec.lua"
	tagsTypedefs = "kong/db/schema/typedefs.lua validate_tag"
	tagsFilter   = "kong/api/endpoints.lua TAGS_AND_REGEX/TAGS_OR_REGEX"
)

// TestTagsKongSpec checks the tag character rule of Kong 3.x (printable ASCII including the space,
// except ',' and '/', or UTF-8), the AND (',') and OR ('/') filters with their errors, and the
// /tags and /tags/{tag} listings, from Kong's tags Admin API spec and the code it exercises.
func TestTagsKongSpec(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var consumerIDs []string
		for i := 1; i <= 2; i++ {
			n := string(rune('0' + i))
			c := e.do("POST", "/consumers", map[string]any{"username": "adminapi-filter-by-tag-" + n,
				"tags": []string{"corp_a", "consumer" + n, "🦍"}}).must(t, 201)
			consumerIDs = append(consumerIDs, c["id"].(string))
			e.do("POST", "/consumers/adminapi-filter-by-tag-"+n+"/plugins", map[string]any{"name": "request-transformer",
				"tags": []string{"corp_a", "consumer" + n}}).must(t, 201)
		}
		e.do("POST", "/consumers", map[string]any{"username": "adminapi-filter-by-tag-3", "tags": []string{"consumer3"}}).must(t, 201)
		badTag := func(tag string) string {
			return "invalid tag '" + tag + "': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
		}
		runSpec(t, e, []specCase{
			{name: "tag with a space", method: "POST", path: "/services", body: map[string]any{"name": "s1", "host": "h.test", "tags": []string{"team orders"}},
				status: 201, want: map[string]any{"tags": []any{"team orders"}}, from: tagsTypedefs + ` (pattern ^[ \033-\043\045\046\048-\126\128-\244]+$ starts with a space)`},
			{name: "tag with a comma", method: "POST", path: "/services", body: map[string]any{"name": "s2", "host": "h.test", "tags": []string{"a,b"}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (tags.1: " + badTag("a,b") + ")"}, from: tagsTypedefs},
			{name: "tag with a slash", method: "POST", path: "/services", body: map[string]any{"name": "s2", "host": "h.test", "tags": []string{"ok", "a/b"}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (tags.2: " + badTag("a/b") + ")"}, from: tagsTypedefs},
			{name: "tag with a tab", method: "POST", path: "/services", body: map[string]any{"name": "s2", "host": "h.test", "tags": []string{"a\tb"}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (tags.1: " + badTag("a\tb") + ")"}, from: tagsTypedefs},
			{name: "empty tag", method: "POST", path: "/services", body: map[string]any{"name": "s2", "host": "h.test", "tags": []string{""}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (tags.1: length must be at least 1)"},
				from: `kong/db/schema/init.lua validate_field (string fields get len_min = 1: "empty strings are not accepted by default")`},
			{name: "filter by single tag", method: "GET", path: "/consumers?tags=corp_a", status: 200,
				want: map[string]any{"data": lenIs(2)}, from: tagsSpec + ` "filter by single tag"`},
			{name: "filter by single unicode tag", method: "GET", path: "/consumers?tags=%F0%9F%A6%8D", status: 200,
				want: map[string]any{"data": lenIs(2)}, from: tagsSpec + ` "filter by single unicode tag"`},
			{name: "filter with AND", method: "GET", path: "/consumers?tags=corp_a,consumer1", status: 200,
				want: map[string]any{"data": lenIs(1)}, from: tagsSpec + ` "filter by multiple tags with AND"`},
			{name: "filter with OR", method: "GET", path: "/consumers?tags=consumer2/consumer1", status: 200,
				want: map[string]any{"data": lenIs(2)}, from: tagsSpec + ` "filter by multiple tags with OR"`},
			{name: "filter by a tag with a space", method: "GET", path: "/services?tags=team%20orders", status: 200,
				want: map[string]any{"data": lenIs(1)}, from: tagsFilter + ` (tag bytes start at \x20)`},
			{name: "nested list ignores nothing but its parent", method: "GET", path: "/consumers/adminapi-filter-by-tag-1/plugins?tags=consumer1", status: 200,
				want: map[string]any{"data": lenIs(1)}, from: tagsSpec + ` "ignores tags when filtering by multiple filters #6779" (a parent and tags together)`},
			{name: "mix of AND and OR", method: "GET", path: "/consumers?tags=consumer3,consumer2/consumer1", status: 400,
				want: map[string]any{"code": 11, "name": "invalid options", "message": "invalid option (tags: invalid filter syntax)"},
				from: tagsSpec + ` "errors if filter by mix of AND and OR"`},
			{name: "mix of OR and AND", method: "GET", path: "/consumers?tags=consumer3/consumer2,consumer1", status: 400,
				want: map[string]any{"message": "invalid option (tags: invalid filter syntax)"}, from: tagsSpec + ` "errors if filter by mix of AND and OR"`},
			{name: "invalid byte", method: "GET", path: "/consumers?tags=%FF", status: 400,
				want: map[string]any{"message": "invalid option (tags: invalid filter syntax)"}, from: tagsSpec + ` "errors if filter by tag with invalid value" (string.char(255))`},
			{name: "empty filter", method: "GET", path: "/consumers?tags=", status: 400,
				want: map[string]any{"message": "invalid option (tags: invalid filter syntax)"}, from: "kong/db/dao/init.lua validate_options_value (tags given, no condition)"},
			{name: "more than 5 tags", method: "GET", path: "/consumers?tags=a,b,c,d,e,f", status: 400,
				want: map[string]any{"message": "invalid option (tags: cannot query more than 5 tags)"}, from: "kong/db/dao/init.lua validate_options_value"},
			{name: "next keeps tags", method: "GET", path: "/consumers?tags=corp_a&size=1", status: 200,
				want: map[string]any{"data": lenIs(1), "next": containsText("tags=corp_a")}, from: tagsSpec + ` "returns the correct 'next' arg"`},
			{name: "/tags", method: "GET", path: "/tags", status: 200,
				want: map[string]any{"data": lenIs(12), "next": nil}, from: tagsSpec + ` "/tags" (one row per entity and tag)`},
			{name: "/tags/:tags", method: "GET", path: "/tags/corp_a", status: 200,
				want: map[string]any{"data": lenIs(4)}, from: tagsSpec + ` "/tags/:tags"`},
			{name: "/tags/:tags rows", method: "GET", path: "/tags/consumer3", status: 200,
				want: map[string]any{"data": lenIs(1), "data.0.tag": "consumer3", "data.0.entity_name": "consumers"},
				from: "kong/db/strategies/postgres/tags.lua (rows entity_id, entity_name, tag)"},
			{name: "/tags/:tags with invalid utf-8", method: "GET", path: "/tags/%FF", status: 400,
				want: map[string]any{"code": 10, "name": "invalid unique tag", "message": "invalid utf-8 character sequence detected at position 1"},
				from: tagsSpec + ` "/tags/:tags with invalid :tags value"; kong/db/dao/tags.lua page_by_tag (invalid_unique)`},
			{name: "/tags/:tags with a comma", method: "GET", path: "/tags/a,b", status: 400,
				want: map[string]any{"code": 10, "message": badTag("a,b")}, from: "kong/db/dao/tags.lua page_by_tag; " + tagsTypedefs},
			{name: "/tags ignores ?tags=", method: "GET", path: "/tags?tags=not_a_tag", status: 200,
				want: map[string]any{"data": lenIs(12)}, from: tagsSpec + ` "/tags ignores ?tags= query"`},
			{name: "/tags ignores an invalid ?tags=", method: "GET", path: "/tags?tags=%FF", status: 200,
				want: map[string]any{"data": lenIs(12)}, from: tagsSpec + ` "/tags ignores ?tags= query"`},
			{name: "/tags/:tags ignores ?tags=", method: "GET", path: "/tags/corp_a?tags=not_a_tag", status: 200,
				want: map[string]any{"data": lenIs(4)}, from: tagsSpec + ` "/tags/:tags ignores ?tags= query"`},
			{name: "/tags bad offset", method: "GET", path: "/tags?offset=!!", status: 400,
				want: map[string]any{"code": 7, "message": "'!!' is not a valid offset: bad base64 encoding"}, from: "kong/db/strategies/postgres/tags.lua page"},
			{name: "/tags bad size", method: "GET", path: "/tags?size=0", status: 400,
				want: map[string]any{"code": 9}, from: "kong/api/endpoints.lua get_page_size / kong/db/dao/init.lua"},
		})

		// Paging through /tags one row at a time visits every row once, in entity id order, with the
		// tags of one entity in their order.
		t.Run("/tags paging", func(t *testing.T) {
			var rows []string
			path := "/tags?size=1"
			for range 20 {
				b := e.do("GET", path, nil).must(t, 200)
				for _, d := range b["data"].([]any) {
					m := d.(map[string]any)
					rows = append(rows, m["entity_id"].(string)+" "+m["tag"].(string))
				}
				off, ok := b["offset"].(string)
				if !ok {
					if b["next"] != nil {
						t.Fatalf("last page next %v", b["next"])
					}
					break
				}
				if !strings.Contains(b["next"].(string), "/tags?offset=") {
					t.Fatalf("next %v", b["next"])
				}
				path = "/tags?size=1&offset=" + urlEscape(off)
			}
			if len(rows) != 12 {
				t.Fatalf("paged rows %d: %v", len(rows), rows)
			}
			for i := 1; i < len(rows); i++ {
				if rows[i-1][:36] > rows[i][:36] {
					t.Fatalf("not in entity id order: %v", rows)
				}
			}
			for _, id := range consumerIDs {
				var tags []string
				for _, r := range rows {
					if strings.HasPrefix(r, id) {
						tags = append(tags, r[37:])
					}
				}
				if len(tags) != 3 || tags[0] != "corp_a" || tags[2] != "🦍" {
					t.Errorf("tags of %s: %v", id, tags)
				}
			}
		})
		t.Run("/tags/:tags paging", func(t *testing.T) {
			b := e.do("GET", "/tags/corp_a?size=3", nil).must(t, 200)
			off, _ := b["offset"].(string)
			if len(b["data"].([]any)) != 3 || off == "" || !strings.Contains(b["next"].(string), "/tags/corp_a?offset=") {
				t.Fatalf("first page %v", b)
			}
			b = e.do("GET", "/tags/corp_a?size=3&offset="+urlEscape(off), nil).must(t, 200)
			if len(b["data"].([]any)) != 1 || b["next"] != nil {
				t.Fatalf("second page %v", b)
			}
		})
	})
}

// lenIs and containsText are matchers for runSpec's want values.
type (
	lenIs        int
	containsText string
)

const (
	routesSpec     = "spec/02-integration/04-admin_api/09-routes_routes_spec.lua"
	resolveForeign = "kong/db/dao/init.lua resolve_foreign"
	validatePK     = "kong/db/schema/init.lua validate_field (foreign) -> validate_primary_key(value, true)"
)

// TestForeignRefsKongSpec checks references given by the parent's endpoint key or another unique
// field ({"service": {"name": …}}, {"route": {"name": …}}, {"consumer": {"username": …}}) in
// create, update and upsert, which Kong's DAO resolves before validating, and references that
// carry the endpoint key beside the id, as decK sends them, which every write and
// /schemas/{entity}/validate accept because only the primary key of a reference is checked.
func TestForeignRefsKongSpec(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		svc := e.do("POST", "/services", map[string]any{"name": "svc", "host": "s.test"}).must(t, 201)["id"].(string)
		e.do("POST", "/services", map[string]any{"name": "svc2", "host": "s2.test"}).must(t, 201)
		alice := e.do("POST", "/consumers", map[string]any{"username": "alice", "custom_id": "alice-1"}).must(t, 201)["id"].(string)
		const routeID = "0a4d2b7c-6a55-4f4b-9d59-6f1c2d3e4f50"
		unresolved := func(field, key, value, parent string) string {
			return "foreign key unresolved (" + field + "." + key + ": the foreign key cannot be resolved with '{" + key + "=\"" + value + "\"}' for an existing '" + parent + "' entity)"
		}
		runSpec(t, e, []specCase{
			{name: "create route with service by name", method: "POST", path: "/routes",
				body:   map[string]any{"name": "r1", "paths": []any{"/r1"}, "service": map[string]any{"name": "svc"}},
				status: 201, want: map[string]any{"service": map[string]any{"id": svc}}, from: resolveForeign},
			{name: "create route with id and name", method: "POST", path: "/routes",
				body:   map[string]any{"name": "r2", "paths": []any{"/r2"}, "service": map[string]any{"id": svc, "name": "svc"}},
				status: 201, want: map[string]any{"service": map[string]any{"id": svc}}, from: validatePK + " (ignore_others)"},
			{name: "create plugin with route and consumer by key", method: "POST", path: "/plugins",
				body:   map[string]any{"name": "request-transformer", "route": map[string]any{"name": "r1"}, "consumer": map[string]any{"username": "alice"}},
				status: 201, want: map[string]any{"consumer": map[string]any{"id": alice}}, from: resolveForeign},
			{name: "create credential with consumer by custom_id", method: "POST", path: "/key-auths",
				body:   map[string]any{"key": "k1", "consumer": map[string]any{"custom_id": "alice-1"}},
				status: 201, want: map[string]any{"consumer": map[string]any{"id": alice}}, from: resolveForeign + " (every unique field of the parent, not only its endpoint key)"},
			{name: "create credential with consumer id and username", method: "POST", path: "/basic-auths",
				body:   map[string]any{"username": "b1", "password": "p", "consumer": map[string]any{"id": alice, "username": "alice"}},
				status: 201, want: map[string]any{"consumer": map[string]any{"id": alice}}, from: validatePK + " (ignore_others)"},
			{name: "service that does not exist", method: "POST", path: "/routes",
				body:   map[string]any{"methods": []any{"GET"}, "service": map[string]any{"name": "non-existing"}},
				status: 400, want: map[string]any{"code": 13, "name": "foreign keys unresolved",
					"message": unresolved("service", "name", "non-existing", "services"),
					"fields":  map[string]any{"service": map[string]any{"name": "the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity"}}},
				from: routesSpec + ` "handles invalid input" (Invalid foreign entity reference)`},
			{name: "consumer that does not exist", method: "POST", path: "/acls",
				body:   map[string]any{"group": "g", "consumer": map[string]any{"username": "nobody"}},
				status: 400, want: map[string]any{"code": 13, "message": unresolved("consumer", "username", "nobody", "consumers")}, from: resolveForeign},
			{name: "service name null", method: "POST", path: "/routes",
				body:   map[string]any{"methods": []any{"GET"}, "service": map[string]any{"name": nil}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (service.id: missing primary key)",
					"fields": map[string]any{"service": map[string]any{"id": "missing primary key"}}},
				from: routesSpec + ` "handles invalid input" (service = { name = cjson.null })`},
			{name: "reference without a key", method: "POST", path: "/routes",
				body:   map[string]any{"methods": []any{"GET"}, "service": map[string]any{"protocol": "http"}},
				status: 400, want: map[string]any{"code": 2, "message": "schema violation (service.id: missing primary key)"},
				from: routesSpec + ` "handles invalid input" (Foreign entity cannot be resolved)`},
			{name: "invalid service name", method: "POST", path: "/routes",
				body:   map[string]any{"methods": []any{"GET"}, "service": map[string]any{"name": `\o/`}},
				status: 400, want: map[string]any{"code": 2,
					"message": `schema violation (service.name: invalid value '\o/': the only accepted ascii characters are alphanumerics or ., -, _, and ~)`},
				from: routesSpec + ` "handles invalid input" (Invalid foreign entity; Kong 3.x utf8_name message in kong/db/schema/typedefs.lua)`},
			{name: "update route to service by name", method: "PATCH", path: "/routes/r1",
				body: map[string]any{"service": map[string]any{"name": "svc2"}}, status: 200,
				want: map[string]any{"name": "r1"}, from: resolveForeign + " (check_update)"},
			{name: "update to a service that does not exist", method: "PATCH", path: "/routes/r1",
				body: map[string]any{"service": map[string]any{"name": "gone"}}, status: 400,
				want: map[string]any{"code": 13, "message": unresolved("service", "name", "gone", "services")}, from: resolveForeign + " (check_update)"},
			{name: "upsert route with service by name", method: "PUT", path: "/routes/" + routeID,
				body: map[string]any{"paths": []any{"/up"}, "service": map[string]any{"name": "svc"}}, status: 200,
				want: map[string]any{"id": routeID, "service": map[string]any{"id": svc}}, from: resolveForeign + " (check_upsert)"},
			{name: "upsert by name with consumer by username", method: "PUT", path: "/consumers/alice/acls/admins",
				body: map[string]any{"consumer": map[string]any{"username": "alice"}}, status: 200,
				want: map[string]any{"group": "admins", "consumer": map[string]any{"id": alice}}, from: resolveForeign + " (check_upsert)"},
			{name: "validate reference with id and name", method: "POST", path: "/schemas/routes/validate",
				body: map[string]any{"name": "v", "paths": []any{"/v"}, "service": map[string]any{"id": svc, "name": "svc"}}, status: 200,
				want: map[string]any{"message": "schema validation successful"}, from: validatePK + "; kong/api/routes/kong.lua validate_schema"},
			{name: "validate credential with consumer id and username", method: "POST", path: "/schemas/keyauth_credentials/validate",
				body: map[string]any{"key": "k", "consumer": map[string]any{"id": alice, "username": "alice"}}, status: 200,
				want: map[string]any{"message": "schema validation successful"}, from: validatePK},
			{name: "validate plugin with route id and name", method: "POST", path: "/schemas/plugins/validate",
				body: map[string]any{"name": "cors", "route": map[string]any{"id": routeID, "name": "whatever"}}, status: 200,
				want: map[string]any{"message": "schema validation successful"}, from: validatePK},
			{name: "validate reference by name alone", method: "POST", path: "/schemas/routes/validate",
				body: map[string]any{"paths": []any{"/v"}, "service": map[string]any{"name": "svc"}}, status: 400,
				want: map[string]any{"code": 2, "message": "schema violation (service.id: missing primary key)"},
				from: "kong/api/routes/kong.lua validate_schema validates the schema only (no resolve_foreign); " + validatePK},
		})
	})
}
