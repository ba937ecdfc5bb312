package declarative_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/declarative"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// pemPair returns a self-signed certificate for host and its key; ca makes it a CA.
func pemPair(t testing.TB, host string, ca bool) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: ca, BasicConstraintsValid: ca}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

// indent indents every line of s but the first by n spaces, for YAML block scalars.
func indent(s string, n int) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+strings.Repeat(" ", n))
}

const routeID = "5f1c1a38-7d62-4b7b-9a48-3a0d7d8a1a01"

// nestedFile uses every entity type, nested wherever Kong allows it, with references by name
// and by id.
func nestedFile(t testing.TB) string {
	cert, key := pemPair(t, "api.test", false)
	caCert, _ := pemPair(t, "ca.test", true)
	return fmt.Sprintf(`_format_version: "3.0"
_comment: every entity type
certificates:
  - cert: |
      %s
    key: |
      %s
    snis:
      - name: api.test
      - other.test
ca_certificates:
  - cert: |
      %s
services:
  - name: svc
    url: http://upstream.test:8080/api
    routes:
      - id: %s
        name: r1
        paths: [/r1]
        plugins:
          - name: key-auth
      - name: r2
        paths: [/r2]
    plugins:
      - name: rate-limiting
        config:
          minute: 5
  - name: other
    host: other.test
routes:
  - name: r3
    paths: [/r3]
    service: other
  - name: r4
    paths: [/r4]
    service:
      name: svc
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-key
    basicauth_credentials:
      - username: alice
        password: secret
    acls:
      - group: admins
    jwt_secrets:
      - key: alice-jwt
        secret: s3cret
    hmacauth_credentials:
      - username: alice-hmac
        secret: hmac-secret
    plugins:
      - name: request-size-limiting
        config:
          allowed_payload_size: 10
    groups:
      - name: gold
  - username: bob
consumer_groups:
  - name: gold
    plugins:
      - name: rate-limiting
        config:
          minute: 100
  - name: silver
    consumers:
      - username: bob
upstreams:
  - name: up
    targets:
      - target: 10.0.0.1:80
      - target: 10.0.0.2:80
        weight: 50
vaults:
  - prefix: my-env
    name: env
    config:
      prefix: GANTRY_
key_sets:
  - name: ks
    keys:
      - name: k1
        kid: k1
        jwk: '{"kid":"k1","kty":"oct","k":"c2VjcmV0"}'
plugins:
  - name: correlation-id
  - name: cors
    route:
      id: %s
`, indent(cert, 6), indent(key, 6), indent(caCert, 6), routeID, routeID)
}

func decode(t testing.TB, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return m
}

func rows(cfg map[string]any, name string) []map[string]any {
	list, _ := cfg[name].([]any)
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i] = r.(map[string]any)
	}
	return out
}

func byField(rs []map[string]any, field string, v any) map[string]any {
	for _, r := range rs {
		if r[field] == v {
			return r
		}
	}
	return nil
}

func (e *env) post(query, ct string, body []byte) (int, map[string]any) {
	e.t.Helper()
	code, _, raw := e.raw("POST", e.path("/declarative-config"+query), ct, "", body)
	return code, decode(e.t, raw)
}

func (e *env) export() []byte {
	e.t.Helper()
	code, _, raw := e.raw("GET", e.path("/declarative-config"), "", "", nil)
	if code != 200 {
		e.t.Fatalf("export: %d %s", code, raw)
	}
	return raw
}

func TestImport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		e.must(201, "POST", e.admin("/services"), map[string]any{"name": "svc", "url": "http://old.test"})
		old := e.must(201, "POST", e.admin("/services"), map[string]any{"name": "gone", "url": "http://gone.test"})
		svcID := e.must(200, "GET", e.admin("/services/svc"), nil)["id"]
		before := e.revision()

		file := []byte(nestedFile(t))
		code, out := e.post("", "application/yaml", file)
		if code != 200 {
			t.Fatalf("import: %d %v", code, out)
		}
		if out["revision"] != float64(before+1) {
			t.Fatalf("revision %v, want %d", out["revision"], before+1)
		}
		sum := out["summary"].(map[string]any)
		count := func(typ, op string) any {
			c, _ := sum[typ].(map[string]any)
			return c[op]
		}
		if count("routes", "created") != 4.0 || count("plugins", "created") != 6.0 || count("snis", "created") != 2.0 || count("targets", "created") != 2.0 ||
			count("services", "updated") != 1.0 || count("services", "deleted") != 1.0 || count("consumer_group_consumers", "created") != 2.0 {
			t.Errorf("summary %v", sum)
		}
		rev := e.must(200, "GET", e.path(fmt.Sprintf("/revisions/%d", before+1)), nil)
		if rev["source"] != "import" {
			t.Errorf("revision source %v", rev["source"])
		}

		cfg := decode(t, e.export())
		want := map[string]int{"certificates": 1, "snis": 2, "ca_certificates": 1, "services": 2, "routes": 4, "consumers": 2, "keyauth_credentials": 1,
			"basicauth_credentials": 1, "acls": 1, "jwt_secrets": 1, "hmacauth_credentials": 1, "consumer_groups": 2, "consumer_group_consumers": 2,
			"upstreams": 1, "targets": 2, "vaults": 1, "key_sets": 1, "keys": 1, "plugins": 6}
		for name, n := range want {
			if got := len(rows(cfg, name)); got != n {
				t.Errorf("%s: %d, want %d", name, got, n)
			}
		}
		svc := byField(rows(cfg, "services"), "name", "svc")
		if svc["id"] != svcID || svc["host"] != "upstream.test" {
			t.Errorf("svc kept its id? %v (was %v)", svc, svcID)
		}
		if byField(rows(cfg, "services"), "id", old["id"]) != nil {
			t.Error("the service missing from the file was not deleted")
		}
		for _, r := range []string{"r1", "r2", "r4"} {
			if byField(rows(cfg, "routes"), "name", r)["service"] != svcID {
				t.Errorf("route %s: service %v", r, byField(rows(cfg, "routes"), "name", r)["service"])
			}
		}
		if byField(rows(cfg, "routes"), "name", "r1")["id"] != routeID {
			t.Error("r1 lost its id")
		}
		if p := byField(rows(cfg, "plugins"), "name", "cors"); p["route"] != routeID {
			t.Errorf("cors route %v", p["route"])
		}
		if p := byField(rows(cfg, "plugins"), "name", "key-auth"); p["route"] != routeID {
			t.Errorf("key-auth route %v", p["route"])
		}
		alice := byField(rows(cfg, "consumers"), "username", "alice")
		if k := rows(cfg, "keyauth_credentials")[0]; k["consumer"] != alice["id"] {
			t.Errorf("key-auth consumer %v", k["consumer"])
		}
		if b := rows(cfg, "basicauth_credentials")[0]; b["password"] == "secret" {
			t.Error("basic-auth password stored in clear")
		}
		gold := byField(rows(cfg, "consumer_groups"), "name", "gold")
		if m := byField(rows(cfg, "consumer_group_consumers"), "consumer", alice["id"]); m == nil || m["consumer_group"] != gold["id"] {
			t.Errorf("memberships %v", cfg["consumer_group_consumers"])
		}
		if len(rows(cfg, "snis")) == 2 && rows(cfg, "snis")[0]["certificate"] != rows(cfg, "certificates")[0]["id"] {
			t.Errorf("sni certificate %v", rows(cfg, "snis")[0])
		}

		// The same file again changes nothing: no revision.
		code, out = e.post("", "text/yaml", file)
		if code != 200 || out["revision"] != float64(before+1) || len(out["summary"].(map[string]any)) != 0 {
			t.Fatalf("second import: %d %v", code, out)
		}
		if e.revision() != before+1 {
			t.Error("the second import made a revision")
		}
		first := e.export()
		r0 := e.revision()
		code, out = e.post("", "application/json", first)
		if code != 200 || out["revision"] != float64(r0) {
			t.Fatalf("re-import of the export: %d %v, want revision %d", code, out, r0)
		}
		if e.revision() != r0 {
			t.Error("re-import made a revision")
		}
		if again := e.export(); !bytes.Equal(first, again) {
			t.Errorf("export → import → export differs:\n%s\n%s", first, again)
		}

		// The export imported into an empty group gives the same export.
		g2 := e.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "second"})["id"].(string)
		e2 := *e
		e2.group = g2
		code, out = e2.post("", "application/json", first)
		if code != 200 {
			t.Fatalf("import into a new group: %d %v", code, out)
		}
		if got := e2.export(); !bytes.Equal(first, got) {
			t.Errorf("export of the second group differs:\n%s\n%s", first, got)
		}
		// YAML round trip too.
		_, _, y := e.raw("GET", e.path("/declarative-config"), "", "application/yaml", nil)
		code, out = e2.post("", "application/yaml", y)
		if code != 200 || out["revision"] != float64(e2.revision()) {
			t.Fatalf("YAML re-import: %d %v", code, out)
		}
		if got := e2.export(); !bytes.Equal(first, got) {
			t.Errorf("YAML round trip differs:\n%s\n%s", first, got)
		}
	})
}

func TestImportFlat(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		svcID := "0b0c6b5e-5a3c-4c0e-8b43-2b7c7f0e9a11"
		file := map[string]any{
			"_format_version": "3.0",
			"services":        []any{map[string]any{"id": svcID, "name": "svc", "host": "a.test"}},
			"routes": []any{
				map[string]any{"name": "by-id", "paths": []any{"/a"}, "service": svcID},
				map[string]any{"name": "by-record", "paths": []any{"/b"}, "service": map[string]any{"id": svcID}},
				map[string]any{"name": "by-name", "paths": []any{"/c"}, "service": "svc"},
			},
			"consumers":                []any{map[string]any{"username": "u"}},
			"consumer_groups":          []any{map[string]any{"name": "g"}},
			"consumer_group_consumers": []any{map[string]any{"consumer": "u", "consumer_group": "g"}},
			"upstreams":                []any{map[string]any{"name": "up"}},
			"targets":                  []any{map[string]any{"target": "h:1", "upstream": "up"}},
			"plugins":                  []any{map[string]any{"name": "key-auth", "route": "by-name"}},
		}
		body, _ := json.Marshal(file)
		code, out := e.post("", "application/json", body)
		if code != 200 {
			t.Fatalf("import: %d %v", code, out)
		}
		cfg := decode(t, e.export())
		for _, r := range rows(cfg, "routes") {
			if r["service"] != svcID {
				t.Errorf("route %v service %v", r["name"], r["service"])
			}
		}
		if len(rows(cfg, "consumer_group_consumers")) != 1 || len(rows(cfg, "targets")) != 1 {
			t.Errorf("memberships %v targets %v", cfg["consumer_group_consumers"], cfg["targets"])
		}
		if rows(cfg, "plugins")[0]["route"] != byField(rows(cfg, "routes"), "name", "by-name")["id"] {
			t.Error("plugin route by name")
		}
		// Ids derived the way Kong derives them are stable: the same file gives the same ids.
		r0 := e.revision()
		if code, out := e.post("", "application/json", body); code != 200 || out["revision"] != float64(r0) {
			t.Fatalf("second import: %d %v", code, out)
		}
		if !bytes.Equal(e.export(), e.export()) || e.revision() != r0 {
			t.Error("second import changed something")
		}

		// Names that pass between entities: the service's name goes to a new id, and two
		// routes swap names.
		newID := "7d7f4a39-4c85-4c1a-9a42-6f1d2b8c0d22"
		cfg = decode(t, e.export())
		a, b := byField(rows(cfg, "routes"), "name", "by-id"), byField(rows(cfg, "routes"), "name", "by-record")
		swapped := map[string]any{
			"_format_version": "3.0",
			"services":        []any{map[string]any{"id": newID, "name": "svc", "host": "b.test"}},
			"routes": []any{
				map[string]any{"id": a["id"], "name": "by-record", "paths": []any{"/a"}, "service": "svc"},
				map[string]any{"id": b["id"], "name": "by-id", "paths": []any{"/b"}, "service": "svc"},
			},
		}
		body, _ = json.Marshal(swapped)
		if code, out := e.post("", "application/json", body); code != 200 {
			t.Fatalf("import with moving names: %d %v", code, out)
		}
		cfg = decode(t, e.export())
		if s := rows(cfg, "services"); len(s) != 1 || s[0]["id"] != newID {
			t.Errorf("services %v", s)
		}
		if byField(rows(cfg, "routes"), "name", "by-record")["id"] != a["id"] || byField(rows(cfg, "routes"), "name", "by-id")["id"] != b["id"] {
			t.Errorf("routes %v", cfg["routes"])
		}
	})
}

func TestImportInvalid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		e.must(201, "POST", e.admin("/services"), map[string]any{"name": "keep", "url": "http://keep.test"})
		before, r0 := e.export(), e.revision()
		file := `_format_version: "3.0"
services:
  - name: svc
    host: a.test
    routes:
      - name: r1
        paths: [/r1]
        plugins:
          - name: rate-limiting
            config:
              minute: lots
  - name: svc
    host: b.test
  - name: bad-port
    host: c.test
    port: 99999
routes:
  - name: r2
    paths: [/r2]
    service: nope
plugins:
  - name: no-such-plugin
`
		code, out := e.post("", "application/yaml", []byte(file))
		if code != 400 {
			t.Fatalf("import: %d %v", code, out)
		}
		if out["code"] != 14.0 || out["name"] != "invalid declarative configuration" || !strings.HasPrefix(out["message"].(string), "declarative config is invalid: ") {
			t.Errorf("error body %v", out)
		}
		flat := out["flattened_errors"].([]any)
		type entry struct{ typ, name, text string }
		var got []entry
		for _, f := range flat {
			m := f.(map[string]any)
			name, _ := m["entity_name"].(string)
			if name == "" {
				name, _ = m["entity"].(map[string]any)["name"].(string)
			}
			var msgs []string
			for _, er := range m["errors"].([]any) {
				x := er.(map[string]any)
				msgs = append(msgs, fmt.Sprintf("%v:%v:%v", x["type"], x["field"], x["message"]))
			}
			got = append(got, entry{m["entity_type"].(string), name, strings.Join(msgs, "; ")})
		}
		wantParts := []entry{
			{"plugin", "no-such-plugin", "plugin 'no-such-plugin' not enabled"},
			{"route", "r2", "invalid reference 'service: nope' (no such entry in 'services')"},
			{"plugin", "rate-limiting", "config.minute"},
			{"service", "svc", "uniqueness violation: 'services' entity with name set to 'svc' already declared"},
			{"service", "bad-port", "field:port:"},
		}
		if len(got) != len(wantParts) {
			t.Fatalf("flattened errors %+v, want %d", got, len(wantParts))
		}
		for _, w := range wantParts {
			found := false
			for _, g := range got {
				found = found || (g.typ == w.typ && g.name == w.name && strings.Contains(g.text, w.text))
			}
			if !found {
				t.Errorf("no error %+v in %+v", w, got)
			}
		}
		// The nested plugin carries the route it was nested in.
		for _, f := range flat {
			m := f.(map[string]any)
			if m["entity_type"] == "plugin" && m["entity_name"] == "rate-limiting" {
				if _, ok := m["entity"].(map[string]any)["route"].(map[string]any); !ok {
					t.Errorf("nested plugin entity %v", m["entity"])
				}
			}
		}
		if e.revision() != r0 || !bytes.Equal(before, e.export()) {
			t.Error("an invalid file changed the configuration")
		}

		for _, c := range []struct {
			name, ct, body string
			status         int
		}{
			{"not yaml", "application/yaml", "services: [", 400},
			{"no version", "application/json", `{"services": []}`, 400},
			{"unknown key", "application/json", `{"_format_version": "3.0", "servicez": []}`, 400},
			{"media type", "text/plain", `{}`, 415},
		} {
			code, _, raw := e.raw("POST", e.path("/declarative-config"), c.ct, "", []byte(c.body))
			if code != c.status {
				t.Errorf("%s: %d %s", c.name, code, raw)
			}
		}
		if e.revision() != r0 {
			t.Error("a refused file changed the configuration")
		}
	})
}

func TestImportDryRun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		e.must(201, "POST", e.admin("/services"), map[string]any{"name": "a", "url": "http://a.test"})
		e.must(201, "POST", e.admin("/services"), map[string]any{"name": "b", "url": "http://b.test"})
		before, r0 := e.export(), e.revision()
		file := `{"_format_version": "3.0", "services": [{"name": "a", "url": "http://a2.test"}, {"name": "c", "url": "http://c.test"}]}`
		code, out := e.post("?dry_run=true", "application/json", []byte(file))
		if code != 200 || out["dry_run"] != true {
			t.Fatalf("dry run: %d %v", code, out)
		}
		var changes []string
		for _, d := range out["diff"].(map[string]any)["entities"].([]any) {
			m := d.(map[string]any)
			changes = append(changes, fmt.Sprintf("%v %v %v %v", m["entity_type"], m["name"], m["change"], m["fields"]))
		}
		sort.Strings(changes)
		want := []string{"services a changed [host]", "services b removed <nil>", "services c added <nil>"}
		if strings.Join(changes, "|") != strings.Join(want, "|") {
			t.Errorf("diff %v, want %v", changes, want)
		}
		if e.revision() != r0 || !bytes.Equal(before, e.export()) {
			t.Error("a dry run changed the configuration")
		}
		// An invalid file is refused by a dry run too.
		if code, _ := e.post("?dry_run=true", "application/json", []byte(`{"_format_version": "3.0", "routes": [{"service": "x"}]}`)); code != 400 {
			t.Errorf("invalid dry run: %d", code)
		}
	})
}

func TestImportTooLarge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st, declarative.Options{MaxBodyBytes: 1 << 10})
		r0 := e.revision()
		big := `{"_format_version": "3.0", "services": [{"name": "s", "host": "h.test", "tags": ["` + strings.Repeat("x", 2<<10) + `"]}]}`
		code, ct, raw := e.raw("POST", e.path("/declarative-config"), "application/json", "", []byte(big))
		if code != 413 || !strings.HasPrefix(ct, "application/problem+json") || !strings.Contains(string(raw), "limit") {
			t.Errorf("too large: %d %s %s", code, ct, raw)
		}
		if e.revision() != r0 {
			t.Error("a refused file changed the configuration")
		}
	})
}
