package adminapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/google/uuid"
)

func TestServicesAndRoutes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		svc := e.do("POST", "/services", map[string]any{"name": "svc", "url": "https://example.test:8443/api", "tags": []string{"a"}}).must(t, 201)
		sid := svc["id"].(string)
		for k, want := range map[string]any{"protocol": "https", "host": "example.test", "port": 8443.0, "path": "/api",
			"retries": 5.0, "connect_timeout": 60000.0, "enabled": true} {
			if svc[k] != want {
				t.Errorf("service %s = %v, want %v", k, svc[k], want)
			}
		}
		// Every field is present, unset ones null.
		for _, k := range []string{"client_certificate", "tls_verify", "ca_certificates"} {
			if v, ok := svc[k]; !ok || v != nil {
				t.Errorf("service %s = %v (present %v), want null", k, v, ok)
			}
		}
		if _, ok := svc["url"]; ok {
			t.Error("url shorthand stored")
		}

		t.Run("read by id and name", func(t *testing.T) {
			for _, key := range []string{sid, "svc"} {
				got := e.do("GET", "/services/"+key, nil).must(t, 200)
				if got["id"] != sid {
					t.Errorf("GET %s: id %v", key, got["id"])
				}
			}
			e.do("GET", "/services/nope", nil).must(t, 404)
			if r := e.do("GET", "/services/"+uuid.NewString(), nil); r.body["message"] != "Not found" {
				t.Errorf("404 body %s", r.raw)
			}
		})

		t.Run("nested routes with service by name", func(t *testing.T) {
			r := e.do("POST", "/services/svc/routes", map[string]any{"name": "r1", "paths": []string{"/a"}}).must(t, 201)
			if str(r, "service.id") != sid {
				t.Fatalf("route service %v", r["service"])
			}
			flat := e.do("POST", "/routes", map[string]any{"name": "r2", "hosts": []string{"h.test"}, "service": map[string]any{"name": "svc"}}).must(t, 201)
			if str(flat, "service.id") != sid {
				t.Fatalf("route by service name: %v", flat["service"])
			}
			list := e.do("GET", "/services/"+sid+"/routes", nil).must(t, 200)
			if len(ids(list)) != 2 {
				t.Errorf("nested list %v", list)
			}
			if got := e.do("GET", "/routes/r1/service", nil).must(t, 200); got["id"] != sid {
				t.Errorf("route's service %v", got)
			}
			e.do("DELETE", "/routes/r1/service", nil).must(t, 405)
			// A route of another service is not found under this one.
			e.do("POST", "/services", map[string]any{"name": "other", "host": "o.test"}).must(t, 201)
			e.do("GET", "/services/other/routes/r1", nil).must(t, 404)
			e.do("GET", "/services/svc/routes/r1", nil).must(t, 200)
		})

		t.Run("unresolved reference", func(t *testing.T) {
			r := e.do("POST", "/routes", map[string]any{"paths": []string{"/x"}, "service": map[string]any{"name": "non-existing"}})
			b := r.must(t, 400)
			want := `foreign key unresolved (service.name: the foreign key cannot be resolved with '{name="non-existing"}' for an existing 'services' entity)`
			if b["code"] != 13.0 || b["message"] != want {
				t.Errorf("got %s", r.raw)
			}
			missing := uuid.NewString()
			b = e.do("POST", "/routes", map[string]any{"paths": []string{"/x"}, "service": map[string]any{"id": missing}}).must(t, 400)
			if b["code"] != 4.0 || b["message"] != `the foreign key '{id="`+missing+`"}' does not reference an existing 'services' entity.` {
				t.Errorf("fk violation: %v", b)
			}
		})

		t.Run("restrict delete", func(t *testing.T) {
			b := e.do("DELETE", "/services/svc", nil).must(t, 400)
			if b["code"] != 4.0 || b["message"] != "an existing 'routes' entity references this 'services' entity" {
				t.Errorf("got %v", b)
			}
		})

		t.Run("patch and put", func(t *testing.T) {
			p := e.do("PATCH", "/services/svc", map[string]any{"retries": 3}).must(t, 200)
			if p["retries"] != 3.0 || p["host"] != "example.test" {
				t.Errorf("patch %v", p)
			}
			// PUT replaces: omitted fields reset to defaults; the URL name wins.
			put := e.do("PUT", "/services/svc", map[string]any{"name": "ignored", "host": "new.test"}).must(t, 200)
			if put["id"] != sid || put["name"] != "svc" || put["retries"] != 5.0 || put["protocol"] != "http" || put["path"] != nil {
				t.Errorf("put %v", put)
			}
			if put["created_at"] != svc["created_at"] {
				t.Errorf("created_at changed: %v -> %v", svc["created_at"], put["created_at"])
			}
			// PUT creates with the given id (as decK does) and by name.
			id := uuid.NewString()
			c := e.do("PUT", "/services/"+id, map[string]any{"name": "made", "host": "m.test"}).must(t, 200)
			if c["id"] != id {
				t.Errorf("put-create id %v", c["id"])
			}
			n := e.do("PUT", "/services/byname", map[string]any{"host": "m.test"}).must(t, 200)
			if n["name"] != "byname" {
				t.Errorf("put by name %v", n)
			}
			b := e.do("PATCH", "/services/"+uuid.Nil.String(), map[string]any{"retries": 1}).must(t, 404)
			if b["code"] != 6.0 || !strings.HasPrefix(b["message"].(string), "could not find the entity with primary key") {
				t.Errorf("patch missing %v", b)
			}
			b = e.do("PATCH", "/services/absent", map[string]any{"retries": 1}).must(t, 404)
			if b["message"] != `could not find the entity with '{name="absent"}'` {
				t.Errorf("patch missing by name %v", b)
			}
		})

		t.Run("delete", func(t *testing.T) {
			e.do("DELETE", "/routes/r1", nil).must(t, 204)
			e.do("DELETE", "/routes/r1", nil).must(t, 204)
			e.do("GET", "/routes/r1", nil).must(t, 404)
		})
	})
}

func TestValidationAndUniqueness(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		cases := []struct {
			name, path string
			body       any
			status     int
			message    string
		}{
			{"bad url", "/services", map[string]any{"url": "invalid url"}, 400, "2 schema violations (host: required field missing; path: should start with: /)"},
			{"unknown field", "/services", map[string]any{"host": "a.test", "foo": 1}, 400, "schema violation (foo: unknown field)"},
			{"route without matcher", "/routes", map[string]any{"protocols": []string{"https"}}, 400,
				"schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"},
			{"consumer without id", "/consumers", map[string]any{"tags": []string{"x"}}, 400,
				"schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"},
			{"unknown plugin", "/plugins", map[string]any{"name": "nope"}, 400,
				"schema violation (name: plugin 'nope' not enabled; the bundled plugins are: " + strings.Join(bundledPluginNames(), ", ") + ")"},
			{"plugin config", "/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": "x"}}, 400, ""},
			{"first consumer", "/consumers", map[string]any{"username": "u"}, 201, ""},
			{"duplicate consumer", "/consumers", map[string]any{"username": "u"}, 409, `UNIQUE violation detected on '{username="u"}'`},
			{"bad json", "/consumers", "{", 400, "Cannot parse JSON body"},
			{"json array", "/consumers", "[]", 400, "Cannot parse JSON body"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", tc.path, tc.body)
				b := r.must(t, tc.status)
				if tc.message != "" && b["message"] != tc.message {
					t.Errorf("message %q, want %q", b["message"], tc.message)
				}
				if tc.status == 400 && b["code"] == 2.0 && b["fields"] == nil {
					t.Errorf("schema violation without fields: %s", r.raw)
				}
			})
		}
	})
}

func TestListsPagingAndTags(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for i := range 7 {
			tags := []string{"all"}
			if i%2 == 0 {
				tags = append(tags, "even")
			} else {
				tags = append(tags, "odd")
			}
			e.do("POST", "/consumers", map[string]any{"username": "c" + string(rune('0'+i)), "custom_id": "cid" + string(rune('0'+i)), "tags": tags}).must(t, 201)
		}
		t.Run("empty", func(t *testing.T) {
			r := e.do("GET", "/upstreams", nil)
			if r.must(t, 200); strings.TrimSpace(r.raw) != `{"data":[],"next":null}` {
				t.Errorf("empty list %s", r.raw)
			}
		})
		t.Run("paging while writing", func(t *testing.T) {
			seen := map[string]int{}
			path := "/consumers?size=2"
			var order []string
			for pages := 0; path != ""; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				b := e.do("GET", path, nil).must(t, 200)
				for _, id := range ids(b) {
					seen[id]++
					order = append(order, id)
				}
				// Writes between pages: a new consumer and an update of one already seen.
				e.do("POST", "/consumers", map[string]any{"username": "new" + uuid.NewString()[:8]}).must(t, 201)
				path = ""
				if off, ok := b["offset"].(string); ok {
					path = "/consumers?size=2&offset=" + urlEscape(off)
					if !strings.Contains(b["next"].(string), "offset=") {
						t.Errorf("next %v", b["next"])
					}
				} else if b["next"] != nil {
					t.Errorf("last page next %v", b["next"])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s listed %d times", id, n)
				}
			}
			// The seven original consumers all appear, in id order.
			if len(seen) < 7 {
				t.Errorf("saw %d consumers", len(seen))
			}
			for i := 1; i < len(order); i++ {
				if order[i-1] >= order[i] {
					t.Fatalf("not in id order: %v", order)
				}
			}
		})
		t.Run("tags", func(t *testing.T) {
			count := func(q string) int { return len(ids(e.do("GET", "/consumers?"+q, nil).must(t, 200))) }
			if n := count("tags=all,even"); n != 4 {
				t.Errorf("AND: %d", n)
			}
			if n := count("tags=even/odd"); n != 7 {
				t.Errorf("OR: %d", n)
			}
			if n := count("tags=even,odd"); n != 0 {
				t.Errorf("AND disjoint: %d", n)
			}
			for q, msg := range map[string]string{
				"tags=a,b/c":       "invalid option (tags: invalid filter syntax)",
				"tags=":            "invalid option (tags: invalid filter syntax)",
				"tags=a,b,c,d,e,f": "invalid option (tags: cannot query more than 5 tags)",
			} {
				b := e.do("GET", "/consumers?"+q, nil).must(t, 400)
				if b["code"] != 11.0 || b["message"] != msg {
					t.Errorf("%s: %v", q, b)
				}
			}
		})
		t.Run("size and offset errors", func(t *testing.T) {
			for q, want := range map[string]string{
				"size=0":    "size must be an integer between 1 and 1000",
				"size=1001": "size must be an integer between 1 and 1000",
				"size=abc":  "size must be a number",
				"offset=!!": "'!!' is not a valid offset: bad base64 encoding",
			} {
				b := e.do("GET", "/consumers?"+q, nil).must(t, 400)
				if b["message"] != want {
					t.Errorf("%s: %v", q, b)
				}
			}
		})
		t.Run("custom_id", func(t *testing.T) {
			b := e.do("GET", "/consumers?custom_id=cid3", nil).must(t, 200)
			data := b["data"].([]any)
			if len(data) != 1 || data[0].(map[string]any)["username"] != "c3" || b["next"] != nil {
				t.Errorf("custom_id: %v", b)
			}
		})
	})
}

func urlEscape(s string) string {
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}

func TestRoutingConventions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		t.Run("unknown path", func(t *testing.T) {
			b := e.do("GET", "/nothing/here", nil).must(t, 404)
			if b["message"] != "Not found" {
				t.Errorf("%v", b)
			}
		})
		t.Run("method not allowed", func(t *testing.T) {
			b := e.do("DELETE", "/services", nil).must(t, 405)
			if b["message"] != "Method not allowed" {
				t.Errorf("%v", b)
			}
		})
		t.Run("options", func(t *testing.T) {
			r := e.do("OPTIONS", "/services", nil)
			r.must(t, 204)
			if got := r.header.Get("Allow"); got != "GET, HEAD, OPTIONS, POST" {
				t.Errorf("Allow %q", got)
			}
			if r.header.Get("Access-Control-Allow-Methods") == "" {
				t.Error("no Access-Control-Allow-Methods")
			}
		})
		t.Run("trailing slash", func(t *testing.T) {
			e.do("GET", "/services/", nil).must(t, 200)
			e.send("GET", e.base(e.group)+"/", "", nil).must(t, 200)
			e.send("GET", e.base(e.group), "", nil).must(t, 200)
		})
		t.Run("unknown group is a management problem", func(t *testing.T) {
			r := e.send("GET", e.base(uuid.NewString())+"/services", "", nil)
			r.must(t, 404)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
		})
		t.Run("token required", func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+e.base(e.group)+"/services", nil)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Errorf("status %d", res.StatusCode)
			}
		})
		t.Run("control-planes alias", func(t *testing.T) {
			e.do("POST", "/services", map[string]any{"name": "alias", "host": "a.test"}).must(t, 201)
			b := e.send("GET", "/v2/control-planes/"+e.group+"/core-entities/services/alias", "", nil).must(t, 200)
			if b["name"] != "alias" {
				t.Errorf("%v", b)
			}
		})
	})
}

func TestContentTypes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		form := "name=formsvc&host=f.test&port=8080&retries=2&enabled=false&tags[1]=x&tags[2]=y"
		b := e.send("POST", e.base(e.group)+"/services", "application/x-www-form-urlencoded", form).must(t, 201)
		if b["port"] != 8080.0 || b["retries"] != 2.0 || b["enabled"] != false || !reflect.DeepEqual(b["tags"], []any{"x", "y"}) {
			t.Errorf("form service %v", b)
		}
		p := e.send("POST", e.base(e.group)+"/services/formsvc/plugins", "application/x-www-form-urlencoded",
			"name=key-auth&config.key_names[1]=apikey&config.key_names[2]=token&config.hide_credentials=true").must(t, 201)
		cfg := p["config"].(map[string]any)
		if !reflect.DeepEqual(cfg["key_names"], []any{"apikey", "token"}) || cfg["hide_credentials"] != true {
			t.Errorf("form plugin config %v", cfg)
		}
		mp := "--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmultipart-user\r\n" +
			"--XX\r\nContent-Disposition: form-data; name=\"tags[]\"\r\n\r\nt1\r\n--XX--\r\n"
		c := e.send("POST", e.base(e.group)+"/consumers", "multipart/form-data; boundary=XX", mp).must(t, 201)
		if c["username"] != "multipart-user" || !reflect.DeepEqual(c["tags"], []any{"t1"}) {
			t.Errorf("multipart consumer %v", c)
		}
		e.send("POST", e.base(e.group)+"/consumers", "text/plain", "username=x").must(t, 415)
		e.send("POST", e.base(e.group)+"/consumers", "", "").must(t, 400) // empty body: schema violation
		// A bad value in a form is the schema's type error, not a parse error.
		r := e.send("POST", e.base(e.group)+"/services", "application/x-www-form-urlencoded", "host=a.test&port=abc").must(t, 400)
		if r["message"] != "schema violation (port: expected an integer)" {
			t.Errorf("form type error %v", r)
		}
	})
}

func TestNestedSemantics(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		svc := e.do("POST", "/services", map[string]any{"name": "s", "host": "s.test"}).must(t, 201)
		e.do("POST", "/services", map[string]any{"name": "s2", "host": "s.test"}).must(t, 201)
		e.do("POST", "/services/s/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)

		t.Run("nested delete of another parent's entity", func(t *testing.T) {
			e.do("DELETE", "/services/s2/routes/r", nil).must(t, 404)
			e.do("GET", "/routes/r", nil).must(t, 200)
			e.do("DELETE", "/services/absent/routes", nil).must(t, 405)
			e.do("GET", "/services/absent/routes", nil).must(t, 404)
		})
		t.Run("patch the route's service", func(t *testing.T) {
			b := e.do("PATCH", "/routes/r/service", map[string]any{"retries": 9}).must(t, 200)
			if b["id"] != svc["id"] || b["retries"] != 9.0 {
				t.Errorf("%v", b)
			}
		})
		t.Run("plugin uniqueness per scope", func(t *testing.T) {
			p := e.do("POST", "/services/s/plugins", map[string]any{"name": "cors"}).must(t, 201)
			b := e.do("POST", "/services/s/plugins", map[string]any{"name": "cors"}).must(t, 409)
			if b["code"] != 5.0 || !strings.HasPrefix(b["message"].(string), "UNIQUE violation detected on '{consumer=null,name=\"cors\",route=null,service={id=") {
				t.Errorf("%v", b)
			}
			e.do("POST", "/services/s2/plugins", map[string]any{"name": "cors"}).must(t, 201)
			// PATCH of a plugin reads its name from the stored plugin.
			pp := e.do("PATCH", "/plugins/"+p["id"].(string), map[string]any{"config": map[string]any{"max_age": 10}}).must(t, 200)
			if pp["config"].(map[string]any)["max_age"] != 10.0 {
				t.Errorf("patched config %v", pp["config"])
			}
		})
		t.Run("targets by host:port", func(t *testing.T) {
			e.do("POST", "/upstreams", map[string]any{"name": "up"}).must(t, 201)
			tg := e.do("POST", "/upstreams/up/targets", map[string]any{"target": "a.test"}).must(t, 201)
			if tg["target"] != "a.test:8000" {
				t.Errorf("default port: %v", tg["target"])
			}
			b := e.do("PUT", "/upstreams/up/targets/a.test:8000", map[string]any{"weight": 3}).must(t, 200)
			if b["id"] != tg["id"] || b["weight"] != 3.0 {
				t.Errorf("put by host:port %v", b)
			}
			e.do("POST", "/upstreams/up/targets", map[string]any{"target": "a.test:8000"}).must(t, 409)
			all := e.do("GET", "/upstreams/up/targets/all", nil).must(t, 200)
			if len(ids(all)) != 1 {
				t.Errorf("all targets %v", all)
			}
		})
		t.Run("basic-auth skip_hash", func(t *testing.T) {
			e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
			hashed := strings.Repeat("a", 40)
			b := e.do("POST", "/consumers/c/basic-auth?skip_hash=true", map[string]any{"username": "c", "password": hashed}).must(t, 201)
			if b["password"] != hashed {
				t.Errorf("password rehashed: %v", b["password"])
			}
		})
	})
}

func TestConcurrentWritesEachMakeARevision(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r0 := e.revision(e.group)
		const n = 8
		errs := make(chan string, n)
		for i := range n {
			go func() {
				body, _ := json.Marshal(map[string]any{"username": "u" + strconv.Itoa(i)})
				req, _ := http.NewRequest("POST", e.srv.URL+e.base(e.group)+"/consumers", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+e.token)
				req.Header.Set("Content-Type", "application/json")
				res, err := e.srv.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				res.Body.Close()
				if res.StatusCode != 201 {
					errs <- res.Status
					return
				}
				errs <- ""
			}()
		}
		for range n {
			if msg := <-errs; msg != "" {
				t.Error(msg)
			}
		}
		if r := e.revision(e.group); r != r0+n {
			t.Errorf("revision %d after %d writes from %d", r, n, r0)
		}
	})
}

// TestReadBackRoundTrip sends each entity's GET answer back with PUT, as decK does when it
// syncs: every field, nulls, timestamps and all, must be accepted and change nothing.
func TestReadBackRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.do("POST", "/services", map[string]any{"name": "s", "url": "https://s.test/x"}).must(t, 201)
		e.do("POST", "/services/s/routes", map[string]any{"name": "r", "paths": []any{"/"}, "headers": map[string]any{"x-a": []any{"1"}}}).must(t, 201)
		e.do("POST", "/consumers", map[string]any{"username": "c"}).must(t, 201)
		e.do("POST", "/upstreams", map[string]any{"name": "up"}).must(t, 201)
		paths := []string{
			"/services/" + str(e.do("GET", "/services/s", nil).must(t, 200), "id"),
			"/routes/" + str(e.do("GET", "/routes/r", nil).must(t, 200), "id"),
			"/plugins/" + str(e.do("POST", "/services/s/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 3}}).must(t, 201), "id"),
			"/upstreams/" + str(e.do("GET", "/upstreams/up", nil).must(t, 200), "id"),
			"/upstreams/up/targets/" + str(e.do("POST", "/upstreams/up/targets", map[string]any{"target": "t.test:80"}).must(t, 201), "id"),
			"/certificates/" + str(e.do("POST", "/certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"a.test"}}).must(t, 201), "id"),
			"/consumers/c/key-auth/" + str(e.do("POST", "/consumers/c/key-auth", map[string]any{}).must(t, 201), "id"),
			"/consumers/c/jwt/" + str(e.do("POST", "/consumers/c/jwt", map[string]any{}).must(t, 201), "id"),
		}
		for _, p := range paths {
			t.Run(p, func(t *testing.T) {
				before := e.do("GET", p, nil).must(t, 200)
				after := e.do("PUT", p, before).must(t, 200)
				delete(before, "updated_at")
				delete(after, "updated_at")
				if !reflect.DeepEqual(before, after) {
					t.Errorf("round trip changed the entity:\n%v\n%v", before, after)
				}
			})
		}
	})
}

func TestBodyLimit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		big := `{"username":"` + strings.Repeat("x", adminapi.DefaultMaxBodyBytes) + `"}`
		b := e.do("POST", "/consumers", big).must(t, 413)
		if b["message"] != "Request body too large" {
			t.Errorf("%v", b)
		}
	})
}

// TestPutForeignAssociates covers PUT /routes/{r}/service on a route without a service: Kong
// creates the service and points the route at it.
func TestPutForeignAssociates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.do("POST", "/routes", map[string]any{"name": "r", "paths": []any{"/"}}).must(t, 201)
		e.do("GET", "/routes/r/service", nil).must(t, 404)
		s := e.do("PUT", "/routes/r/service", map[string]any{"name": "made", "host": "m.test"}).must(t, 200)
		if got := e.do("GET", "/routes/r", nil).must(t, 200); str(got, "service.id") != s["id"] {
			t.Errorf("route not associated: %v", got["service"])
		}
		// A second PUT replaces the same service.
		s2 := e.do("PUT", "/routes/r/service", map[string]any{"name": "made", "host": "n.test"}).must(t, 200)
		if s2["id"] != s["id"] || s2["host"] != "n.test" {
			t.Errorf("second put %v", s2)
		}
	})
}

// bundledPluginNames lists the bundled plugins as the unknown-plugin message names them.
func bundledPluginNames() []string {
	var out []string
	for _, p := range schema.Plugins() {
		out = append(out, p.Name)
	}
	return out
}
