package adminapi_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
)

// kongCase is one Admin API answer checked against Kong 3.x. Each case runs in its own empty
// runtime group: do makes the requests and returns the answer under test and the values (ids,
// mostly) the expected body names as {{key}}.
type kongCase struct {
	name string
	// source is where Kong's answer was read: repository and file.
	source string
	do     func(t *testing.T, e *env) (resp, map[string]string)
	status int
	// body is the whole expected JSON answer, compared after decoding; "" skips the comparison.
	body string
	// check makes further assertions (state after the request).
	check func(t *testing.T, e *env, r resp, vars map[string]string)
}

// runKongCases runs cases on both databases, each case in a fresh runtime group.
func runKongCases(t *testing.T, cases []kongCase) {
	t.Helper()
	each(t, func(t *testing.T, e *env) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				g := e.inNewGroup(t)
				r, vars := tc.do(t, g)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d (Kong: %s): %s", r.status, tc.status, tc.source, r.raw)
				}
				if tc.body != "" {
					want := tc.body
					for k, v := range vars {
						want = strings.ReplaceAll(want, "{{"+k+"}}", v)
					}
					var w, got any
					if err := json.Unmarshal([]byte(want), &w); err != nil {
						t.Fatalf("bad expected body %s: %v", want, err)
					}
					if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
						t.Fatalf("answer is not JSON: %s", r.raw)
					}
					if !reflect.DeepEqual(got, w) {
						t.Errorf("answer differs from Kong's (%s):\n got %s\nwant %s", tc.source, strings.TrimSpace(r.raw), want)
					}
				}
				if tc.check != nil {
					tc.check(t, g, r, vars)
				}
			})
		}
	})
}

// schemaViolation is Kong's code 2 body for the given message and fields (a JSON object).
func schemaViolation(message, fields string) string {
	m, _ := json.Marshal(message)
	return `{"code":2,"name":"schema violation","message":` + string(m) + `,"fields":` + fields + `}`
}

func notFoundBody() string { return `{"message":"Not found"}` }

func TestKongTargets(t *testing.T) {
	const (
		routesSrc = "Kong/kong kong/api/routes/upstreams.lua"
		schemaSrc = "Kong/kong kong/db/schema/entities/targets.lua"
		specSrc   = "Kong/kong spec/02-integration/04-admin_api/08-targets_routes_spec.lua"
	)
	upstream := func(t *testing.T, e *env) {
		e.do("POST", "/upstreams", map[string]any{"name": "up"}).must(t, 201)
	}
	target := func(t *testing.T, e *env, body map[string]any) string {
		return e.do("POST", "/upstreams/up/targets", body).must(t, 201)["id"].(string)
	}
	runKongCases(t, []kongCase{
		{
			name: "targets/all lists every target of the upstream", source: routesSrc + " (/upstreams/:upstreams/targets/all)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				e.do("POST", "/upstreams", map[string]any{"name": "other"}).must(t, 201)
				a := target(t, e, map[string]any{"target": "a.test:80"})
				b := target(t, e, map[string]any{"target": "b.test:80", "weight": 0})
				e.do("POST", "/upstreams/other/targets", map[string]any{"target": "c.test:80"}).must(t, 201)
				return e.do("GET", "/upstreams/up/targets/all", nil), map[string]string{"a": a, "b": b}
			},
			status: 200,
			check: func(t *testing.T, _ *env, r resp, v map[string]string) {
				got := ids(r.body)
				if len(got) != 2 || !strings.Contains(strings.Join(got, ","), v["a"]) || !strings.Contains(strings.Join(got, ","), v["b"]) || r.body["next"] != nil {
					t.Errorf("targets/all %s", r.raw)
				}
			},
		},
		{
			name: "targets/all of an empty upstream", source: specSrc + " (data property is an empty array)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("GET", "/upstreams/up/targets/all", nil), nil
			},
			status: 200, body: `{"data":[],"next":null}`,
		},
		{
			name: "targets/all of a missing upstream", source: routesSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("GET", "/upstreams/nope/targets/all", nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "no top-level /targets", source: specSrc + " (/targets returns a 404); kong/api/endpoints.lua disable",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				target(t, e, map[string]any{"target": "a.test:80"})
				return e.do("GET", "/targets", nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "no top-level /targets/{id}", source: "Kong/kong kong/api/endpoints.lua (disable, e.g. /targets/:targets)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				id := target(t, e, map[string]any{"target": "a.test:80"})
				return e.do("GET", "/targets/"+id, nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "PUT by target updates the existing target", source: routesSrc + " (PUT = target_endpoint + update_target_cb)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				id := target(t, e, map[string]any{"target": "a.test:80", "weight": 5, "tags": []any{"keep"}})
				return e.do("PUT", "/upstreams/up/targets/a.test:80", map[string]any{"weight": 7}), map[string]string{"id": id}
			},
			status: 200,
			check: func(t *testing.T, _ *env, r resp, v map[string]string) {
				// Kong updates the entity it found (update_entity), so unnamed fields stay.
				if r.body["id"] != v["id"] || r.body["weight"] != 7.0 || !reflect.DeepEqual(r.body["tags"], []any{"keep"}) {
					t.Errorf("PUT by target %s", r.raw)
				}
			},
		},
		{
			name: "PUT by id updates the existing target", source: routesSrc + " (PUT = target_endpoint + update_target_cb)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				id := target(t, e, map[string]any{"target": "a.test:80"})
				return e.do("PUT", "/upstreams/up/targets/"+id, map[string]any{"weight": 9}), map[string]string{"id": id}
			},
			status: 200,
			check: func(t *testing.T, _ *env, r resp, v map[string]string) {
				if r.body["id"] != v["id"] || r.body["weight"] != 9.0 || r.body["target"] != "a.test:80" {
					t.Errorf("PUT by id %s", r.raw)
				}
			},
		},
		{
			name: "PUT of an absent target is a 404", source: routesSrc + " (target_endpoint: not found); go-kong TargetService.Create falls back to POST on it",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("PUT", "/upstreams/up/targets/a.test:80", map[string]any{"weight": 9}), nil
			},
			status: 404, body: notFoundBody(),
			check: func(t *testing.T, e *env, _ resp, _ map[string]string) {
				if n := len(ids(e.do("GET", "/upstreams/up/targets", nil).must(t, 200))); n != 0 {
					t.Errorf("a refused PUT created %d targets", n)
				}
				// PATCH goes through the same lookup (target_endpoint).
				if r := e.do("PATCH", "/upstreams/up/targets/a.test:80", map[string]any{"weight": 9}); r.status != 404 || strings.TrimSpace(r.raw) != notFoundBody() {
					t.Errorf("PATCH of an absent target: %d %s", r.status, r.raw)
				}
			},
		},
		{
			name: "PUT of an absent target id is a 404", source: routesSrc + " (target_endpoint: not found)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("PUT", "/upstreams/up/targets/6f2a3f3e-3a4e-4b59-9a43-d7b0ad0e2a10", map[string]any{"target": "a.test:80"}), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "GET of a target of weight 0 is a 404", source: routesSrc + " (select_target_cb)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				target(t, e, map[string]any{"target": "a.test:80", "weight": 0})
				return e.do("GET", "/upstreams/up/targets/a.test:80", nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "invalid target address", source: schemaSrc + " (validate_target)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("POST", "/upstreams/up/targets", map[string]any{"target": "some invalid host name"}), nil
			},
			status: 400,
			body: schemaViolation("schema violation (target: Invalid target ('some invalid host name'); not a valid hostname or ip address)",
				`{"target":"Invalid target ('some invalid host name'); not a valid hostname or ip address"}`),
		},
		{
			name: "weight out of range", source: schemaSrc + " (weight between 0 and 65535)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("POST", "/upstreams/up/targets", map[string]any{"target": "a.test", "weight": 65536}), nil
			},
			status: 400,
			body:   schemaViolation("schema violation (weight: value should be between 0 and 65535)", `{"weight":"value should be between 0 and 65535"}`),
		},
		{
			name: "target missing", source: specSrc + " (handles invalid input)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				upstream(t, e)
				return e.do("POST", "/upstreams/up/targets", map[string]any{"weight": 0}), nil
			},
			status: 400,
			body:   schemaViolation("schema violation (target: required field missing)", `{"target":"required field missing"}`),
		},
	})
}

func TestKongCertificatesAndSNIs(t *testing.T) {
	const (
		daoSrc    = "Kong/kong kong/db/dao/certificates.lua (parse_name_list)"
		snisSrc   = "Kong/kong kong/db/dao/snis.lua (check_list_is_new)"
		routesSrc = "Kong/kong kong/api/routes/certificates.lua (prepare_args: PUT without snis sets them to null)"
	)
	runKongCases(t, []kongCase{
		{
			name: "duplicate names in snis on create", source: daoSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test", "b.test", "a.test"}}), nil
			},
			status: 400, body: schemaViolation("schema violation (snis: a.test is duplicated)", `{"snis":"a.test is duplicated"}`),
			check: func(t *testing.T, e *env, _ resp, _ map[string]string) {
				if n := len(ids(e.do("GET", "/certificates", nil).must(t, 200))); n != 0 {
					t.Errorf("refused certificate stored (%d)", n)
				}
			},
		},
		{
			name: "duplicate names in snis on update", source: daoSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				id := e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test"}}).must(t, 201)["id"].(string)
				return e.do("PATCH", "/certificates/"+id, map[string]any{"snis": []any{"c.test", "c.test"}}), nil
			},
			status: 400, body: schemaViolation("schema violation (snis: c.test is duplicated)", `{"snis":"c.test is duplicated"}`),
		},
		{
			name: "name attached to another certificate", source: snisSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				id := e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test"}}).must(t, 201)["id"].(string)
				return e.do("POST", "/certificates", map[string]any{"cert": pki.cert2, "key": pki.key2, "snis": []any{"z.test", "a.test"}}), map[string]string{"id": id}
			},
			status: 400,
			body:   schemaViolation("schema violation (snis: a.test already associated with existing certificate '{{id}}')", `{"snis":"a.test already associated with existing certificate '{{id}}'"}`),
		},
		{
			name: "PUT without snis clears them", source: routesSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				id := e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test", "b.test"}}).must(t, 201)["id"].(string)
				return e.do("PUT", "/certificates/"+id, map[string]any{"cert": pki.cert, "key": pki.key}), nil
			},
			status: 200,
			check: func(t *testing.T, e *env, r resp, _ map[string]string) {
				if !reflect.DeepEqual(r.body["snis"], []any{}) {
					t.Errorf("snis after PUT %v", r.body["snis"])
				}
				e.do("GET", "/snis/a.test", nil).must(t, 404)
			},
		},
		{
			name: "PUT with snis replaces them", source: routesSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				id := e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test", "b.test"}}).must(t, 201)["id"].(string)
				return e.do("PUT", "/certificates/"+id, map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"c.test", "b.test"}}), nil
			},
			status: 200,
			check: func(t *testing.T, e *env, r resp, _ map[string]string) {
				if !reflect.DeepEqual(r.body["snis"], []any{"b.test", "c.test"}) {
					t.Errorf("snis after PUT %v", r.body["snis"])
				}
				e.do("GET", "/snis/a.test", nil).must(t, 404)
			},
		},
	})
}

func TestKongCACertificateInUse(t *testing.T) {
	const src = "Kong/kong kong/api/routes/ca_certificates.lua (DELETE: still referenced) and kong/db/dao/ca_certificates.lua"
	runKongCases(t, []kongCase{
		{
			name: "referenced by a service", source: src,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				ca := e.do("POST", "/ca_certificates", map[string]any{"cert": pki.ca}).must(t, 201)["id"].(string)
				svc := e.do("POST", "/services", map[string]any{"name": "s", "url": "https://s.test", "ca_certificates": []any{ca}}).must(t, 201)["id"].(string)
				return e.do("DELETE", "/ca_certificates/"+ca, nil), map[string]string{"ca": ca, "svc": svc}
			},
			status: 400, body: `{"message":"ca_certificate {{ca}} is still referenced by services (id = {{svc}})"}`,
			check: func(t *testing.T, e *env, _ resp, v map[string]string) {
				e.do("GET", "/ca_certificates/"+v["ca"], nil).must(t, 200)
				// Once no service names it, it goes.
				e.do("PATCH", "/services/s", map[string]any{"ca_certificates": nil}).must(t, 200)
				e.do("DELETE", "/ca_certificates/"+v["ca"], nil).must(t, 204)
			},
		},
	})
}

func TestKongUpstreams(t *testing.T) {
	const (
		schemaSrc = "Kong/kong kong/db/schema/entities/upstreams.lua (validate_name, entity_checks)"
		specSrc   = "Kong/kong spec/02-integration/04-admin_api/07-upstreams_routes_spec.lua (handles invalid input)"
	)
	post := func(body map[string]any) func(*testing.T, *env) (resp, map[string]string) {
		return func(_ *testing.T, e *env) (resp, map[string]string) { return e.do("POST", "/upstreams", body), nil }
	}
	const (
		condHashOn       = `failed conditional validation given value of field 'hash_on'`
		condHashFallback = `failed conditional validation given value of field 'hash_fallback'`
	)
	runKongCases(t, []kongCase{
		{
			name: "name not a hostname", source: schemaSrc,
			do:     post(map[string]any{"name": "some invalid host name"}),
			status: 400,
			body: schemaViolation("schema violation (name: Invalid name ('some invalid host name'); must be a valid hostname)",
				`{"name":"Invalid name ('some invalid host name'); must be a valid hostname"}`),
		},
		{
			name: "name is an ip address", source: schemaSrc,
			do:     post(map[string]any{"name": "10.0.0.1"}),
			status: 400,
			body:   schemaViolation("schema violation (name: Invalid name ('10.0.0.1'); no ip addresses allowed)", `{"name":"Invalid name ('10.0.0.1'); no ip addresses allowed"}`),
		},
		{
			name: "name with a port", source: schemaSrc,
			do:     post(map[string]any{"name": "up.test:80"}),
			status: 400,
			body:   schemaViolation("schema violation (name: Invalid name ('up.test:80'); no port allowed)", `{"name":"Invalid name ('up.test:80'); no port allowed"}`),
		},
		{
			name: "PUT by a name that is not a hostname", source: schemaSrc + "; kong/api/endpoints.lua (PUT by endpoint key)",
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("PUT", "/upstreams/10.0.0.1", map[string]any{}), nil
			},
			status: 400,
			body:   schemaViolation("schema violation (name: Invalid name ('10.0.0.1'); no ip addresses allowed)", `{"name":"Invalid name ('10.0.0.1'); no ip addresses allowed"}`),
		},
		{
			name: "hash_fallback equal to hash_on consumer", source: specSrc + " (same hash entries)",
			do:     post(map[string]any{"name": "up", "hash_on": "consumer", "hash_fallback": "consumer"}),
			status: 400,
			body: schemaViolation("2 schema violations ("+condHashOn+"; hash_fallback: expected one of: none, ip, header, cookie, path, query_arg, uri_capture)",
				`{"@entity":["`+condHashOn+`"],"hash_fallback":"expected one of: none, ip, header, cookie, path, query_arg, uri_capture"}`),
		},
		{
			name: "hash_fallback equal to hash_on ip", source: schemaSrc,
			do:     post(map[string]any{"name": "up", "hash_on": "ip", "hash_fallback": "ip"}),
			status: 400,
			body: schemaViolation("2 schema violations ("+condHashOn+"; hash_fallback: expected one of: none, consumer, header, cookie, path, query_arg, uri_capture)",
				`{"@entity":["`+condHashOn+`"],"hash_fallback":"expected one of: none, consumer, header, cookie, path, query_arg, uri_capture"}`),
		},
		{
			name: "hash_on cookie with a fallback", source: specSrc + " (Cookie with hash_fallback)",
			do:     post(map[string]any{"name": "up", "hash_on": "cookie", "hash_on_cookie": "c", "hash_fallback": "header", "hash_fallback_header": "Cool-Header"}),
			status: 400,
			body:   schemaViolation("2 schema violations ("+condHashOn+"; hash_fallback: expected one of: none)", `{"@entity":["`+condHashOn+`"],"hash_fallback":"expected one of: none"}`),
		},
		{
			name: "hash_on header without its header", source: specSrc + " (No headername provided)",
			do:     post(map[string]any{"name": "up", "hash_on": "header", "hash_fallback": "header", "hash_fallback_header": "HeaderName"}),
			status: 400,
			body:   schemaViolation("2 schema violations ("+condHashOn+"; hash_on_header: required field missing)", `{"@entity":["`+condHashOn+`"],"hash_on_header":"required field missing"}`),
		},
		{
			name: "hash_fallback header without its header", source: specSrc + " (No fallback headername provided)",
			do:     post(map[string]any{"name": "up", "hash_on": "consumer", "hash_fallback": "header"}),
			status: 400,
			body:   schemaViolation("2 schema violations ("+condHashFallback+"; hash_fallback_header: required field missing)", `{"@entity":["`+condHashFallback+`"],"hash_fallback_header":"required field missing"}`),
		},
		{
			name: "same headers", source: specSrc + " (Same headers)",
			do:     post(map[string]any{"name": "up", "hash_on": "header", "hash_fallback": "header", "hash_on_header": "headername", "hash_fallback_header": "headername"}),
			status: 400,
			body: schemaViolation("schema violation (values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header')",
				`{"@entity":["values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header'"]}`),
		},
	})
}

func TestKongPluginUniqueness(t *testing.T) {
	const (
		src   = "Kong/kong spec/02-integration/04-admin_api/04-plugins_routes_spec.lua (returns 409 on conflict); kong/db/errors.lua unique_violation"
		eeSrc = "Kong Enterprise consumer-group scoping (not in Kong/kong OSS): the scope is part of the plugin's cache key"
	)
	// twice posts the same plugin twice at one scope and returns the second answer.
	twice := func(path string, body map[string]any) func(*testing.T, *env) (resp, map[string]string) {
		return func(t *testing.T, e *env) (resp, map[string]string) {
			svc := e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test"}).must(t, 201)["id"].(string)
			route := e.do("POST", "/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)["id"].(string)
			cons := e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)["id"].(string)
			grp := e.do("POST", "/consumer_groups", map[string]any{"name": "g"}).must(t, 201)["id"].(string)
			e.do("POST", path, body).must(t, 201)
			return e.do("POST", path, body), map[string]string{"s": svc, "r": route, "c": cons, "g": grp}
		}
	}
	unique := func(key, fields string) string {
		m, _ := json.Marshal("UNIQUE violation detected on '" + key + "'")
		return `{"code":5,"name":"unique constraint violation","message":` + string(m) + `,"fields":` + fields + `}`
	}
	rl := map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5}}
	runKongCases(t, []kongCase{
		{
			name: "global", source: src, do: twice("/plugins", rl), status: 409,
			body: unique(`{consumer=null,name="rate-limiting",route=null,service=null}`,
				`{"consumer":null,"name":"rate-limiting","route":null,"service":null}`),
		},
		{
			name: "service", source: src, do: twice("/services/s/plugins", rl), status: 409,
			body: unique(`{consumer=null,name="rate-limiting",route=null,service={id="{{s}}"}}`,
				`{"consumer":null,"name":"rate-limiting","route":null,"service":{"id":"{{s}}"}}`),
		},
		{
			name: "route", source: src, do: twice("/routes/r/plugins", rl), status: 409,
			body: unique(`{consumer=null,name="rate-limiting",route={id="{{r}}"},service=null}`,
				`{"consumer":null,"name":"rate-limiting","route":{"id":"{{r}}"},"service":null}`),
		},
		{
			name: "consumer", source: src, do: twice("/consumers/c/plugins", rl), status: 409,
			body: unique(`{consumer={id="{{c}}"},name="rate-limiting",route=null,service=null}`,
				`{"consumer":{"id":"{{c}}"},"name":"rate-limiting","route":null,"service":null}`),
		},
		{
			name: "route, service and consumer", source: src,
			do: twice("/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5},
				"route": map[string]any{"name": "r"}, "service": map[string]any{"name": "s"}, "consumer": map[string]any{"username": "c"}}),
			status: 409,
			body: unique(`{consumer={id="{{c}}"},name="rate-limiting",route={id="{{r}}"},service={id="{{s}}"}}`,
				`{"consumer":{"id":"{{c}}"},"name":"rate-limiting","route":{"id":"{{r}}"},"service":{"id":"{{s}}"}}`),
		},
		{
			name: "consumer group", source: eeSrc, do: twice("/consumer_groups/g/plugins", rl), status: 409,
			body: unique(`{consumer=null,consumer_group={id="{{g}}"},name="rate-limiting",route=null,service=null}`,
				`{"consumer":null,"consumer_group":{"id":"{{g}}"},"name":"rate-limiting","route":null,"service":null}`),
		},
		{
			name: "consumer group and service", source: eeSrc,
			do:     twice("/consumer_groups/g/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5}, "service": map[string]any{"name": "s"}}),
			status: 409,
			body: unique(`{consumer=null,consumer_group={id="{{g}}"},name="rate-limiting",route=null,service={id="{{s}}"}}`,
				`{"consumer":null,"consumer_group":{"id":"{{g}}"},"name":"rate-limiting","route":null,"service":{"id":"{{s}}"}}`),
		},
	})
}

func TestKongConsumers(t *testing.T) {
	const (
		bodySrc   = "Kong/kong kong/api/api_helpers.lua (parse_params: a JSON Content-Type needs a JSON body); spec/02-integration/04-admin_api (returns 400 on missing body with application/json)"
		customSrc = "Kong/kong kong/api/routes/consumers.lua (GET /consumers?custom_id=)"
	)
	runKongCases(t, []kongCase{
		{
			name: "POST with an empty JSON body", source: bodySrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.send("POST", e.base(e.group)+"/consumers", "application/json", ""), nil
			},
			status: 400, body: `{"message":"Cannot parse JSON body"}`,
		},
		{
			name: "PATCH with an empty JSON body", source: bodySrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
				return e.send("PATCH", e.base(e.group)+"/consumers/c", "application/json", ""), nil
			},
			status: 400, body: `{"message":"Cannot parse JSON body"}`,
		},
		{
			name: "custom_id empty", source: customSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("GET", "/consumers?custom_id=", nil), nil
			},
			status: 400, body: `{"message":"custom_id must be an unempty string"}`,
		},
		{
			name: "custom_id given twice", source: customSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("GET", "/consumers?custom_id=a&custom_id=b", nil), nil
			},
			status: 400, body: `{"message":"custom_id must be an unempty string"}`,
		},
		{
			name: "custom_id without match", source: customSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/consumers", map[string]any{"username": "c", "custom_id": "x"}).must(t, 201)
				return e.do("GET", "/consumers?custom_id=y", nil), nil
			},
			status: 200, body: `{"data":[],"next":null}`,
		},
		{
			name: "custom_id ignores paging and tags", source: customSrc + " (select_by_custom_id, answer without offset)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/consumers", map[string]any{"username": "c", "custom_id": "x"}).must(t, 201)
				return e.do("GET", "/consumers?custom_id=x&tags=other&size=1", nil), nil
			},
			status: 200,
			check: func(t *testing.T, _ *env, r resp, _ map[string]string) {
				data, _ := r.body["data"].([]any)
				if len(data) != 1 || r.body["next"] != nil || r.body["offset"] != nil {
					t.Errorf("custom_id lookup %s", r.raw)
				}
			},
		},
	})
}

func TestKongCredentials(t *testing.T) {
	const (
		baSrc   = "Kong/kong kong/plugins/basic-auth/daos.lua (admin_api_name basic-auths, endpoint_key username) and kong/plugins/basic-auth/crypto.lua"
		jwtSrc  = "Kong/kong kong/plugins/jwt/daos.lua (conditional on algorithm, custom_validator validate_ssl_key); spec/03-plugins/16-jwt/02-api_spec.lua"
		condAlg = "failed conditional validation given value of field 'algorithm'"
		ttlSrc  = "Kong/kong kong/db/strategies/postgres/init.lua (ttl selected as FLOOR(ttl - CURRENT_TIMESTAMP), rows with ttl < now filtered out)"
	)
	hash := func(pw, consumer string) string {
		sum := sha1.Sum([]byte(pw + consumer)) // Kong's stored format: sha1(password .. consumer id)
		return hex.EncodeToString(sum[:])
	}
	basic := func(t *testing.T, e *env) map[string]string {
		c := e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)["id"].(string)
		b := e.do("POST", "/consumers/c/basic-auth", map[string]any{"username": "u", "password": "old"}).must(t, 201)
		return map[string]string{"c": c, "id": b["id"].(string)}
	}
	jwt := func(alg string, key any) func(*testing.T, *env) (resp, map[string]string) {
		return func(t *testing.T, e *env) (resp, map[string]string) {
			e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
			body := map[string]any{"algorithm": alg}
			if key != nil {
				body["rsa_public_key"] = key
			}
			return e.do("POST", "/consumers/c/jwt", body), nil
		}
	}
	runKongCases(t, []kongCase{
		{
			name: "basic-auth by id on the flat endpoint", source: baSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				v := basic(t, e)
				return e.do("GET", "/basic-auths/"+v["id"], nil), v
			},
			status: 200,
			check: func(t *testing.T, e *env, r resp, v map[string]string) {
				if r.body["username"] != "u" || str(r.body, "consumer.id") != v["c"] || r.body["password"] != hash("old", v["c"]) {
					t.Errorf("flat basic-auth %s", r.raw)
				}
				e.do("GET", "/basic-auths/u", nil).must(t, 200)
				e.do("GET", "/basic-auths/"+v["id"]+"/consumer", nil).must(t, 200)
			},
		},
		{
			name: "basic-auth PATCH re-hashes a new password", source: baSrc + " (password transformation on every write)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				v := basic(t, e)
				return e.do("PATCH", "/basic-auths/"+v["id"], map[string]any{"password": "new"}), v
			},
			status: 200,
			check: func(t *testing.T, e *env, r resp, v map[string]string) {
				if r.body["password"] != hash("new", v["c"]) {
					t.Errorf("password %v, want sha1(new+consumer)", r.body["password"])
				}
				// A PATCH that leaves the password alone keeps the stored hash as it is.
				p := e.do("PATCH", "/basic-auths/u", map[string]any{"tags": []any{"t"}}).must(t, 200)
				if p["password"] != hash("new", v["c"]) {
					t.Errorf("password re-hashed without a new one: %v", p["password"])
				}
				e.do("DELETE", "/basic-auths/"+v["id"], nil).must(t, 204)
				e.do("GET", "/basic-auths/"+v["id"], nil).must(t, 404)
			},
		},
		{
			name: "jwt RS256 with an invalid key", source: jwtSrc, do: jwt("RS256", "test"), status: 400,
			body: schemaViolation("2 schema violations ("+condAlg+"; rsa_public_key: invalid key)", `{"@entity":["`+condAlg+`"],"rsa_public_key":"invalid key"}`),
		},
		{
			name: "jwt ES256 with an invalid key", source: jwtSrc, do: jwt("ES256", "test"), status: 400,
			body: schemaViolation("2 schema violations ("+condAlg+"; rsa_public_key: invalid key)", `{"@entity":["`+condAlg+`"],"rsa_public_key":"invalid key"}`),
		},
		{
			name: "jwt PS512 with an invalid key", source: jwtSrc, do: jwt("PS512", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"), status: 400,
			body: schemaViolation("2 schema violations ("+condAlg+"; rsa_public_key: invalid key)", `{"@entity":["`+condAlg+`"],"rsa_public_key":"invalid key"}`),
		},
		{
			name: "jwt RS256 without a key", source: jwtSrc, do: jwt("RS256", nil), status: 400,
			body: schemaViolation("2 schema violations ("+condAlg+"; rsa_public_key: required field missing)", `{"@entity":["`+condAlg+`"],"rsa_public_key":"required field missing"}`),
		},
		{
			name: "jwt HS256 ignores rsa_public_key", source: jwtSrc, do: jwt("HS256", "test"), status: 201,
		},
		{
			name: "key-auth ttl reported as the seconds left", source: ttlSrc,
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
				k := e.do("POST", "/consumers/c/key-auth", map[string]any{"ttl": 100}).must(t, 201)
				if ttl, _ := k["ttl"].(float64); ttl < 99 || ttl > 100 {
					t.Errorf("ttl in the POST answer %v", k["ttl"])
				}
				return e.do("GET", "/key-auths/"+k["id"].(string), nil), map[string]string{"id": k["id"].(string)}
			},
			status: 200,
			check: func(t *testing.T, e *env, r resp, v map[string]string) {
				if ttl, _ := r.body["ttl"].(float64); ttl < 98 || ttl > 100 {
					t.Errorf("ttl read back %v", r.body["ttl"])
				}
				// The stored form is the absolute expiry, as Kong's control plane exports it.
				ka, _ := schema.Lookup("keyauth_credentials")
				_ = e.es.Read(context.Background(), e.group, func(tx *entitystore.Tx) error {
					d, err := tx.Get(ka, v["id"])
					if err != nil {
						t.Fatal(err)
					}
					if exp, ok := d["ttl"].(int64); !ok || exp < time.Now().Unix()+98 || exp > time.Now().Unix()+100 {
						t.Errorf("stored ttl %v (%T), want the absolute expiry", d["ttl"], d["ttl"])
					}
					return nil
				})
				// An update that names no ttl keeps the expiry.
				p := e.do("PATCH", "/key-auths/"+v["id"], map[string]any{"tags": []any{"t"}}).must(t, 200)
				if ttl, _ := p["ttl"].(float64); ttl < 98 || ttl > 100 {
					t.Errorf("ttl after PATCH %v", p["ttl"])
				}
				// A credential without ttl has no ttl field at all.
				plain := e.do("POST", "/consumers/c/key-auth", map[string]any{}).must(t, 201)
				if _, ok := plain["ttl"]; ok {
					t.Errorf("ttl on a credential without one: %v", plain["ttl"])
				}
				if _, ok := e.do("GET", "/key-auths/"+plain["id"].(string), nil).must(t, 200)["ttl"]; ok {
					t.Error("ttl read back on a credential without one")
				}
			},
		},
		{
			name: "key-auth gone after its ttl", source: ttlSrc + " (rows past their ttl are not selected)",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
				k := e.do("POST", "/consumers/c/key-auth", map[string]any{"key": "short-lived", "ttl": 1}).must(t, 201)
				time.Sleep(2100 * time.Millisecond)
				return e.do("GET", "/key-auths/"+k["id"].(string), nil), nil
			},
			status: 404, body: notFoundBody(),
			check: func(t *testing.T, e *env, _ resp, _ map[string]string) {
				e.do("GET", "/key-auths/short-lived", nil).must(t, 404)
				e.do("GET", "/consumers/c/key-auth/short-lived", nil).must(t, 404)
				if n := len(ids(e.do("GET", "/key-auths", nil).must(t, 200))); n != 0 {
					t.Errorf("expired credential listed (%d)", n)
				}
				if n := len(ids(e.do("GET", "/consumers/c/key-auth", nil).must(t, 200))); n != 0 {
					t.Errorf("expired credential listed under its consumer (%d)", n)
				}
			},
		},
	})
}

func TestKongRoutes(t *testing.T) {
	const (
		specSrc   = "Kong/kong spec/02-integration/04-admin_api/09-routes_routes_spec.lua (handles invalid input)"
		unitSrc   = "Kong/kong spec/01-unit/01-db/01-schema/06-routes_spec.lua (conflicting protocols produces error); kong/db/schema/typedefs.lua protocols"
		endpoints = "Kong/kong kong/api/endpoints.lua (delete_entity_endpoint, is_foreign_entity_endpoint)"
	)
	const protocolsOneOf = "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
	runKongCases(t, []kongCase{
		{
			name: "unknown protocol", source: specSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/routes", map[string]any{"methods": []any{"GET"}, "protocols": []any{"foo", "http"}}), nil
			},
			status: 400, body: schemaViolation("schema violation (protocols.1: "+protocolsOneOf+")", `{"protocols":["`+protocolsOneOf+`"]}`),
		},
		{
			name: "http and stream protocols mixed", source: unitSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/routes", map[string]any{"paths": []any{"/"}, "protocols": []any{"http", "tcp"}}), nil
			},
			status: 400,
			check: func(t *testing.T, _ *env, r resp, _ map[string]string) {
				want := "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')"
				if f, _ := r.body["fields"].(map[string]any); f["protocols"] != want || r.body["code"] != 2.0 {
					t.Errorf("mixed protocols %s", r.raw)
				}
			},
		},
		{
			name: "https and tls mixed", source: unitSrc,
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/routes", map[string]any{"snis": []any{"a.test"}, "protocols": []any{"https", "tls"}}), nil
			},
			status: 400,
			check: func(t *testing.T, _ *env, r resp, _ map[string]string) {
				want := "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')"
				if f, _ := r.body["fields"].(map[string]any); f["protocols"] != want {
					t.Errorf("mixed protocols %s", r.raw)
				}
			},
		},
		{
			name: "DELETE of a route's service", source: endpoints + ": method not allowed when the route has one",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test"}).must(t, 201)
				e.do("POST", "/services/s/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)
				return e.do("DELETE", "/routes/r/service", nil), nil
			},
			status: 405, body: `{"message":"Method not allowed"}`,
			check: func(t *testing.T, e *env, _ resp, _ map[string]string) {
				e.do("GET", "/services/s", nil).must(t, 200)
			},
		},
		{
			name: "DELETE of a route's service when it has none", source: endpoints + ": not found when the reference is null",
			do: func(t *testing.T, e *env) (resp, map[string]string) {
				e.do("POST", "/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)
				return e.do("DELETE", "/routes/r/service", nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "DELETE of an absent route's service", source: endpoints + ": not found when the route is absent",
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("DELETE", "/routes/absent/service", nil), nil
			},
			status: 404, body: notFoundBody(),
		},
		{
			name: "plain path with regex metacharacters", source: "Kong/kong kong/db/schema/typedefs.lua (path: RFC 3986 characters; only '~' paths are regexes)",
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/routes", map[string]any{"paths": []any{"/v1.0/*/files", "/a+b", "/(x)"}}), nil
			},
			status: 201,
			check: func(t *testing.T, _ *env, r resp, _ map[string]string) {
				if !reflect.DeepEqual(r.body["paths"], []any{"/v1.0/*/files", "/a+b", "/(x)"}) {
					t.Errorf("paths %v", r.body["paths"])
				}
			},
		},
		{
			name: "host with a port", source: "Kong/kong kong/db/schema/entities/routes.lua (hosts: host_with_optional_port)",
			do: func(_ *testing.T, e *env) (resp, map[string]string) {
				return e.do("POST", "/routes", map[string]any{"hosts": []any{"example.com:8000"}}), nil
			},
			status: 201,
		},
	})
}
