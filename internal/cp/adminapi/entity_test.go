package adminapi_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestEveryEntityType runs create, read (by id and endpoint key), list, update, upsert and
// delete on every entity type, flat and nested as Kong serves them.
func TestEveryEntityType(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		sid := str(e.do("POST", "/services", map[string]any{"name": "svc", "host": "s.test"}).must(t, 201), "id")
		cid := str(e.do("POST", "/consumers", map[string]any{"username": "alice"}).must(t, 201), "id")
		e.do("POST", "/upstreams", map[string]any{"name": "up"}).must(t, 201)
		e.do("POST", "/key-sets", map[string]any{"name": "ks"}).must(t, 201)
		cert := str(e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key}).must(t, 201), "id")

		cases := []struct {
			name string
			// coll is the collection path; key the endpoint key the entity is also addressed by
			// ("" when none).
			coll, key string
			create    map[string]any
			patch     map[string]any
			// put is a full body for PUT; check reads a field back.
			put   map[string]any
			check string
		}{
			{"services", "/services", "s2", map[string]any{"name": "s2", "host": "a.test"}, map[string]any{"retries": 1}, map[string]any{"host": "b.test"}, "host"},
			{"routes", "/routes", "r1", map[string]any{"name": "r1", "paths": []any{"/r"}, "service": map[string]any{"id": sid}}, map[string]any{"strip_path": false}, map[string]any{"hosts": []any{"h.test"}}, "hosts"},
			{"nested routes", "/services/svc/routes", "r2", map[string]any{"name": "r2", "paths": []any{"/r2"}}, map[string]any{"preserve_host": true}, map[string]any{"paths": []any{"/p"}}, "paths"},
			{"consumers", "/consumers", "bob", map[string]any{"username": "bob"}, map[string]any{"custom_id": "b"}, map[string]any{"custom_id": "c"}, "custom_id"},
			{"consumer_groups", "/consumer_groups", "gold", map[string]any{"name": "gold"}, map[string]any{"tags": []any{"t"}}, map[string]any{"name": "gold", "tags": []any{"u"}}, "tags"},
			{"plugins", "/plugins", "p1", map[string]any{"name": "correlation-id", "instance_name": "p1"}, map[string]any{"enabled": false}, map[string]any{"name": "correlation-id", "config": map[string]any{"header_name": "X-Id"}}, "config"},
			{"service plugins", "/services/svc/plugins", "p2", map[string]any{"name": "cors", "instance_name": "p2"}, map[string]any{"enabled": false}, map[string]any{"name": "cors", "protocols": []any{"http"}}, "protocols"},
			{"upstreams", "/upstreams", "up2", map[string]any{"name": "up2"}, map[string]any{"slots": 100}, map[string]any{"name": "up2", "algorithm": "least-connections"}, "algorithm"},
			{"targets", "/upstreams/up/targets", "10.0.0.1:80", map[string]any{"target": "10.0.0.1:80"}, map[string]any{"weight": 5}, map[string]any{"target": "10.0.0.1:80", "weight": 7}, "weight"},
			{"certificates", "/certificates", "", map[string]any{"cert": pki.cert2, "key": pki.key2}, map[string]any{"tags": []any{"t"}}, map[string]any{"cert": pki.cert2, "key": pki.key2, "tags": []any{"u"}}, "tags"},
			{"snis", "/snis", "a.test", map[string]any{"name": "a.test", "certificate": map[string]any{"id": cert}}, map[string]any{"tags": []any{"t"}}, map[string]any{"name": "a.test", "certificate": map[string]any{"id": cert}, "tags": []any{"u"}}, "tags"},
			{"ca_certificates", "/ca_certificates", "", map[string]any{"cert": pki.ca}, map[string]any{"tags": []any{"t"}}, map[string]any{"cert": pki.ca, "tags": []any{"u"}}, "tags"},
			{"vaults", "/vaults", "my-env", map[string]any{"prefix": "my-env", "name": "env"}, map[string]any{"description": "d"}, map[string]any{"prefix": "my-env", "name": "env", "description": "e"}, "description"},
			{"key-sets", "/key-sets", "ks2", map[string]any{"name": "ks2"}, map[string]any{"tags": []any{"t"}}, map[string]any{"tags": []any{"u"}}, "tags"},
			{"keys", "/keys", "k1", map[string]any{"name": "k1", "kid": "k1", "jwk": `{"kid":"k1","kty":"oct"}`, "set": map[string]any{"name": "ks"}}, map[string]any{"tags": []any{"t"}}, map[string]any{"kid": "k2", "jwk": `{"kid":"k2","kty":"oct"}`}, "kid"},
			{"key-auth", "/consumers/alice/key-auth", "secret-key", map[string]any{"key": "secret-key"}, map[string]any{"tags": []any{"t"}}, map[string]any{"tags": []any{"u"}}, "tags"},
			{"basic-auth", "/consumers/alice/basic-auth", "basic", map[string]any{"username": "basic", "password": "pw"}, map[string]any{"tags": []any{"t"}}, map[string]any{"username": "basic", "password": "pw2"}, "password"},
			{"jwt", "/consumers/alice/jwt", "jwt-key", map[string]any{"key": "jwt-key"}, map[string]any{"tags": []any{"t"}}, map[string]any{"algorithm": "HS512"}, "algorithm"},
			{"hmac-auth", "/consumers/alice/hmac-auth", "hmac", map[string]any{"username": "hmac"}, map[string]any{"tags": []any{"t"}}, map[string]any{"username": "hmac", "secret": "s"}, "secret"},
			{"acls", "/consumers/alice/acls", "admins", map[string]any{"group": "admins"}, map[string]any{"tags": []any{"t"}}, map[string]any{"group": "admins", "tags": []any{"u"}}, "tags"},
			{"flat key-auths", "/key-auths", "flat-key", map[string]any{"key": "flat-key", "consumer": map[string]any{"username": "alice"}}, map[string]any{"tags": []any{"t"}}, map[string]any{"consumer": map[string]any{"id": cid}}, "consumer"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				created := e.do("POST", tc.coll, tc.create).must(t, 201)
				id := created["id"].(string)
				if strings.HasPrefix(tc.coll, "/consumers/alice/") && str(created, "consumer.id") != cid {
					t.Fatalf("nested credential consumer %v", created["consumer"])
				}
				got := e.do("GET", tc.coll+"/"+id, nil).must(t, 200)
				if tc.name == "consumer_groups" {
					// Kong Enterprise answers a consumer group with its members and plugins.
					got = got["consumer_group"].(map[string]any)
				}
				if !reflect.DeepEqual(got, created) {
					t.Errorf("GET differs from POST answer:\n%v\n%v", got, created)
				}
				if tc.key != "" {
					if b := e.do("GET", tc.coll+"/"+tc.key, nil).must(t, 200); b["id"] != id && str(b, "consumer_group.id") != id {
						t.Errorf("GET by %s: %v", tc.key, b["id"])
					}
				}
				if !slices.Contains(ids(e.do("GET", tc.coll, nil).must(t, 200)), id) {
					t.Error("not listed")
				}
				patched := e.do("PATCH", tc.coll+"/"+id, tc.patch).must(t, 200)
				for k, v := range tc.patch {
					if !reflect.DeepEqual(normalize(patched[k]), normalize(v)) {
						t.Errorf("PATCH %s = %v, want %v", k, patched[k], v)
					}
				}
				put := e.do("PUT", tc.coll+"/"+id, tc.put).must(t, 200)
				if put["id"] != id || put[tc.check] == nil || reflect.DeepEqual(put[tc.check], patched[tc.check]) && tc.check != "consumer" {
					t.Errorf("PUT %s: %v (was %v)", tc.check, put[tc.check], patched[tc.check])
				}
				for k := range tc.patch {
					if _, ok := tc.put[k]; !ok && k != "tags" && reflect.DeepEqual(normalize(put[k]), normalize(tc.patch[k])) {
						t.Errorf("PUT kept patched %s = %v; a replace resets omitted fields", k, put[k])
					}
				}
				e.do("DELETE", tc.coll+"/"+id, nil).must(t, 204)
				e.do("GET", tc.coll+"/"+id, nil).must(t, 404)
				// PUT by a fresh id creates, except for targets: Kong's PUT of a target only
				// updates one it finds (kong/api/routes/upstreams.lua, TestKongTargets).
				nid := uuid.NewString()
				body := map[string]any{}
				for k, v := range tc.create {
					body[k] = v
				}
				if tc.name == "targets" {
					e.do("PUT", tc.coll+"/"+nid, body).must(t, 404)
					return
				}
				if b := e.do("PUT", tc.coll+"/"+nid, body).must(t, 200); b["id"] != nid {
					t.Errorf("PUT-create id %v", b["id"])
				}
				e.do("DELETE", tc.coll+"/"+nid, nil).must(t, 204)
			})
		}
	})
}

// normalize makes JSON numbers and ints comparable.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return v
}

func TestCascadesAndCredentials(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.do("POST", "/consumers", map[string]any{"username": "carol"}).must(t, 201)
		ka := e.do("POST", "/consumers/carol/key-auth", map[string]any{"ttl": 60}).must(t, 201)
		if k, _ := ka["key"].(string); len(k) != 32 || ka["ttl"] != 60.0 {
			t.Errorf("generated key %v ttl %v", ka["key"], ka["ttl"])
		}
		ba := e.do("POST", "/consumers/carol/basic-auth", map[string]any{"username": "carol", "password": "secret"}).must(t, 201)
		if ba["password"] == "secret" || len(ba["password"].(string)) != 40 {
			t.Errorf("basic-auth password not hashed: %v", ba["password"])
		}
		e.do("POST", "/consumers/carol/acls", map[string]any{"group": "g"}).must(t, 201)
		if b := e.do("GET", "/consumers/carol/acls/g", nil).must(t, 200); b["group"] != "g" {
			t.Errorf("acl by group %v", b)
		}
		e.do("POST", "/consumers/carol/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5}}).must(t, 201)
		if b := e.do("GET", "/key-auths/"+ka["id"].(string)+"/consumer", nil).must(t, 200); b["username"] != "carol" {
			t.Errorf("credential's consumer %v", b)
		}
		// A credential of another consumer is not found under this one.
		e.do("POST", "/consumers", map[string]any{"username": "dave"}).must(t, 201)
		e.do("GET", "/consumers/dave/key-auth/"+ka["id"].(string), nil).must(t, 404)
		e.do("DELETE", "/consumers/carol", nil).must(t, 204)
		for _, p := range []string{"/key-auths", "/basic-auths", "/acls", "/plugins"} {
			if n := len(ids(e.do("GET", p, nil).must(t, 200))); n != 0 {
				t.Errorf("%s left after consumer delete: %d", p, n)
			}
		}

		e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test"}).must(t, 201)
		e.do("POST", "/services/s/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)
		e.do("POST", "/routes/r/plugins", map[string]any{"name": "cors"}).must(t, 201)
		e.do("DELETE", "/routes/r", nil).must(t, 204)
		if n := len(ids(e.do("GET", "/plugins", nil).must(t, 200))); n != 0 {
			t.Errorf("route plugins left: %d", n)
		}
		e.do("DELETE", "/services/s", nil).must(t, 204)
	})
}

func TestCertificatesAndSNIs(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"b.test", "a.test"}}).must(t, 201)
		id := c["id"].(string)
		if !reflect.DeepEqual(c["snis"], []any{"a.test", "b.test"}) {
			t.Errorf("snis %v", c["snis"])
		}
		if b := e.do("GET", "/certificates/a.test", nil).must(t, 200); b["id"] != id {
			t.Errorf("by sni %v", b)
		}
		if n := len(ids(e.do("GET", "/certificates/"+id+"/snis", nil).must(t, 200))); n != 2 {
			t.Errorf("nested snis %d", n)
		}
		p := e.do("PATCH", "/certificates/"+id, map[string]any{"snis": []any{"c.test"}}).must(t, 200)
		if !reflect.DeepEqual(p["snis"], []any{"c.test"}) {
			t.Errorf("patched snis %v", p["snis"])
		}
		e.do("GET", "/snis/a.test", nil).must(t, 404)
		b := e.do("POST", "/certificates", map[string]any{"cert": pki.cert2, "key": pki.key2, "snis": []any{"c.test"}}).must(t, 400)
		if b["message"] != "schema violation (snis: c.test already associated with existing certificate '"+id+"')" {
			t.Errorf("taken sni: %v", b)
		}
		// PUT by an SNI name creates a certificate serving it.
		n := e.do("PUT", "/certificates/new.test", map[string]any{"cert": pki.cert2, "key": pki.key2}).must(t, 200)
		if !reflect.DeepEqual(n["snis"], []any{"new.test"}) {
			t.Errorf("put by sni %v", n)
		}
		b = e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key2}).must(t, 400)
		if b["message"] != "schema violation (certificate does not match key)" {
			t.Errorf("mismatch %v", b)
		}
		e.do("DELETE", "/certificates/"+id, nil).must(t, 204)
		e.do("GET", "/snis/c.test", nil).must(t, 404)
	})
}

func TestConsumerGroups(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		g := e.do("POST", "/consumer_groups", map[string]any{"name": "gold"}).must(t, 201)
		e.do("POST", "/consumers", map[string]any{"username": "u1"}).must(t, 201)
		u2 := e.do("POST", "/consumers", map[string]any{"username": "u2"}).must(t, 201)
		add := e.do("POST", "/consumer_groups/gold/consumers", map[string]any{"consumer": "u1"}).must(t, 201)
		if str(add, "consumer_group.id") != g["id"] || len(add["consumers"].([]any)) != 1 {
			t.Errorf("add member %v", add)
		}
		e.do("POST", "/consumer_groups/"+g["id"].(string)+"/consumers", map[string]any{"consumer": u2["id"]}).must(t, 201)
		if b := e.do("POST", "/consumer_groups/gold/consumers", map[string]any{"consumer": "u1"}).must(t, 409); b["code"] != 5.0 {
			t.Errorf("duplicate member %v", b)
		}
		e.do("POST", "/consumer_groups/gold/consumers", map[string]any{"consumer": "ghost"}).must(t, 404)
		e.do("POST", "/consumer_groups/gold/consumers", map[string]any{}).must(t, 400)
		e.do("POST", "/consumer_groups/gold/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 10}}).must(t, 201)

		full := e.do("GET", "/consumer_groups/gold", nil).must(t, 200)
		if str(full, "consumer_group.name") != "gold" || len(full["consumers"].([]any)) != 2 || len(full["plugins"].([]any)) != 1 {
			t.Errorf("consumer group view %v", full)
		}
		if _, ok := e.do("GET", "/consumer_groups/gold?list_consumers=false", nil).must(t, 200)["consumers"]; ok {
			t.Error("list_consumers=false still lists consumers")
		}
		if n := len(ids(e.do("GET", "/consumer_groups/gold/consumers", nil).must(t, 200))); n != 2 {
			t.Errorf("members %d", n)
		}
		if n := len(ids(e.do("GET", "/consumers/u1/consumer_groups", nil).must(t, 200))); n != 1 {
			t.Errorf("groups of u1 %d", n)
		}
		e.do("DELETE", "/consumer_groups/gold/consumers/u1", nil).must(t, 204)
		if n := len(ids(e.do("GET", "/consumer_groups/gold/consumers", nil).must(t, 200))); n != 1 {
			t.Errorf("members after removal %d", n)
		}
		e.do("DELETE", "/consumer_groups/gold/consumers", nil).must(t, 204)
		if n := len(ids(e.do("GET", "/consumer_groups/gold/consumers", nil).must(t, 200))); n != 0 {
			t.Errorf("members after clearing %d", n)
		}
		e.do("POST", "/consumers/u1/consumer_groups", map[string]any{"group": "gold"}).must(t, 201)
		e.do("DELETE", "/consumer_groups/gold", nil).must(t, 204)
		if n := len(ids(e.do("GET", "/consumers/u1/consumer_groups", nil).must(t, 200))); n != 0 {
			t.Errorf("membership survives its group: %d", n)
		}
		if n := len(ids(e.do("GET", "/plugins", nil).must(t, 200))); n != 0 {
			t.Errorf("group plugin survives its group: %d", n)
		}
	})
}

// TestConsumerGroupsOfConsumer drives membership from the consumer's side, the mirror of
// TestConsumerGroups: join, read one membership both ways, leave one, leave all.
func TestConsumerGroupsOfConsumer(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		gold := e.do("POST", "/consumer_groups", map[string]any{"name": "gold"}).must(t, 201)
		e.do("POST", "/consumer_groups", map[string]any{"name": "silver"}).must(t, 201)
		u := e.do("POST", "/consumers", map[string]any{"username": "u1"}).must(t, 201)
		e.do("POST", "/consumers", map[string]any{"username": "u2"}).must(t, 201)

		join := e.do("POST", "/consumers/u1/consumer_groups", map[string]any{"group": []any{"gold", "silver"}}).must(t, 201)
		if str(join, "consumer.id") != u["id"] || len(join["consumer_groups"].([]any)) != 2 {
			t.Errorf("join groups %v", join)
		}
		if b := e.do("POST", "/consumers/u1/consumer_groups", map[string]any{"group": "ghost"}).must(t, 404); b["message"] != "Consumer group 'ghost' not found" {
			t.Errorf("join absent group %v", b)
		}
		e.do("POST", "/consumers/u1/consumer_groups", map[string]any{"group": "gold"}).must(t, 409)
		e.do("POST", "/consumers/u1/consumer_groups", map[string]any{}).must(t, 400)
		if b := e.do("POST", "/consumer_groups/gold/consumers", map[string]any{"consumer": "ghost"}).must(t, 404); b["message"] != "Consumer 'ghost' not found" {
			t.Errorf("add absent consumer %v", b)
		}

		if b := e.do("GET", "/consumers/u1/consumer_groups/gold", nil).must(t, 200); str(b, "consumer_group.id") != gold["id"] {
			t.Errorf("group of consumer %v", b)
		}
		if b := e.do("GET", "/consumer_groups/gold/consumers/u1", nil).must(t, 200); str(b, "consumer.id") != u["id"] {
			t.Errorf("member of group %v", b)
		}
		e.do("GET", "/consumers/u2/consumer_groups/gold", nil).must(t, 404)
		e.do("GET", "/consumer_groups/gold/consumers/u2", nil).must(t, 404)
		e.do("GET", "/consumers/ghost/consumer_groups", nil).must(t, 404)

		e.do("DELETE", "/consumers/u1/consumer_groups/silver", nil).must(t, 204)
		if got := ids(e.do("GET", "/consumers/u1/consumer_groups", nil).must(t, 200)); len(got) != 1 || got[0] != gold["id"] {
			t.Errorf("groups after leaving silver %v", got)
		}
		e.do("DELETE", "/consumers/u1/consumer_groups", nil).must(t, 204)
		if n := len(ids(e.do("GET", "/consumer_groups/gold/consumers", nil).must(t, 200))); n != 0 {
			t.Errorf("members after leaving all %d", n)
		}
	})
}

func TestGroupsAndRevisions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r0 := e.revision(e.group)
		other := e.revision(e.group2)
		e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test", "tags": []any{"x"}}).must(t, 201)
		if r := e.revision(e.group); r != r0+1 {
			t.Fatalf("revision %d after one write, want %d", r, r0+1)
		}
		// A request writing several rows (a certificate with two SNIs) is one revision.
		e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test", "b.test"}}).must(t, 201)
		if r := e.revision(e.group); r != r0+2 {
			t.Fatalf("revision %d after a multi-row write, want %d", r, r0+2)
		}
		// Reads, refused writes and deletes of nothing do not bump it.
		e.do("GET", "/services", nil).must(t, 200)
		e.do("GET", "/", nil).must(t, 200)
		e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test"}).must(t, 409)
		e.do("POST", "/services", map[string]any{"host": 1}).must(t, 400)
		e.do("DELETE", "/services/absent", nil).must(t, 204)
		if r := e.revision(e.group); r != r0+2 {
			t.Fatalf("revision %d after reads and refusals, want %d", r, r0+2)
		}
		// The second group saw nothing and can hold the same names.
		if r := e.revision(e.group2); r != other {
			t.Errorf("second group revision moved: %d -> %d", other, r)
		}
		b2 := e.base(e.group2)
		if n := len(ids(e.send("GET", b2+"/services", "", nil).must(t, 200))); n != 0 {
			t.Errorf("second group sees %d services", n)
		}
		e.send("GET", b2+"/services/s", "", nil).must(t, 404)
		e.send("POST", b2+"/services", "", map[string]any{"name": "s", "host": "other.test"}).must(t, 201)
		if h := e.do("GET", "/services/s", nil).must(t, 200)["host"]; h != "s.test" {
			t.Errorf("first group's service changed: %v", h)
		}
	})
}

func TestRootAndSchemas(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.do("POST", "/plugins", map[string]any{"name": "cors"}).must(t, 201)
		root := e.do("GET", "/", nil).must(t, 200)
		if v, _ := root["version"].(string); !strings.HasPrefix(v, "3.") || strings.Count(v, ".") != 2 {
			t.Errorf("version %q", v)
		}
		plugins := root["plugins"].(map[string]any)
		ka, _ := plugins["available_on_server"].(map[string]any)["key-auth"].(map[string]any)
		if ka["priority"] != 1250.0 || ka["version"] != root["version"] {
			t.Errorf("key-auth on server %v", ka)
		}
		if !reflect.DeepEqual(plugins["enabled_in_cluster"], []any{"cors"}) {
			t.Errorf("enabled_in_cluster %v", plugins["enabled_in_cluster"])
		}
		if root["configuration"].(map[string]any)["database"] == nil {
			t.Error("configuration.database missing")
		}

		cases := []struct {
			method, path string
			body         any
			status       int
			check        func(map[string]any) bool
		}{
			{"GET", "/schemas/services", nil, 200, func(b map[string]any) bool { return len(b["fields"].([]any)) > 10 }},
			{"GET", "/schemas/nope", nil, 404, func(b map[string]any) bool { return b["message"] == "No entity named 'nope'" }},
			{"GET", "/schemas/plugins/key-auth", nil, 200, func(b map[string]any) bool { return b["fields"] != nil }},
			{"GET", "/schemas/plugins/nope", nil, 404, func(b map[string]any) bool { return b["message"] == "No plugin named 'nope'" }},
			{"POST", "/schemas/services/validate", map[string]any{"host": "a.test"}, 200, func(b map[string]any) bool { return b["message"] == "schema validation successful" }},
			{"POST", "/schemas/services/validate", map[string]any{"port": 1}, 400, func(b map[string]any) bool { return b["code"] == 2.0 }},
			{"POST", "/schemas/plugins/validate", map[string]any{"name": "key-auth"}, 200, nil},
			{"POST", "/schemas/plugins/validate", map[string]any{"name": "nope"}, 400, nil},
			{"GET", "/v1/schemas/json/service", nil, 200, func(b map[string]any) bool {
				return b["properties"].(map[string]any)["retries"].(map[string]any)["default"] == 5.0
			}},
			{"GET", "/v1/schemas/json/target", nil, 200, nil},
			{"GET", "/v1/schemas/json/nope", nil, 404, nil},
			{"GET", "/plugins/enabled", nil, 200, func(b map[string]any) bool { return slices.Contains(b["enabled_plugins"].([]any), any("key-auth")) }},
		}
		for _, tc := range cases {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				r := e.do(tc.method, tc.path, tc.body)
				b := r.must(t, tc.status)
				if tc.check != nil && !tc.check(b) {
					t.Errorf("unexpected body %s", r.raw)
				}
			})
		}
	})
}
