package adminapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// env is the control plane API with the Admin API mounted, on a real store, with two runtime
// groups of one organization and the admin token.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	store  *sqlstore.Store
	es     *entitystore.Store
	token  string
	group  string // the first group
	group2 string // a second group of the same organization
	org    string // the organization of both groups
}

func newEnv(t testing.TB, s *sqlstore.Store) *env {
	t.Helper()
	token := auth.NewToken()
	ctx := context.Background()
	res, err := s.Bootstrap(ctx, store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	g2 := store.RuntimeGroup{ID: uuid.NewString(), OrgID: res.Org.ID, Region: "us", Name: "second",
		ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateGroup(ctx, g2); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Options{Store: s, Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(s)
	if err := adminapi.Register(a, es, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: s, es: es, token: token, group: res.Group.ID, group2: g2.ID, org: res.Org.ID}
}

// inNewGroup returns a copy of e whose requests address a new, empty runtime group of the same
// organization, so that cases sharing one server start from an empty configuration.
func (e *env) inNewGroup(t testing.TB) *env {
	t.Helper()
	now := time.Now().UTC()
	g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: e.org, Region: "us", Name: "g-" + uuid.NewString()[:8],
		ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	c := *e
	c.t = t
	c.group = g.ID
	return &c
}

// each runs fn on a fresh environment per database.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) { fn(t, newEnv(t, s)) })
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// base is the Admin API root of a group.
func (e *env) base(group string) string {
	return "/v2/runtime-groups/" + group + "/core-entities"
}

// do sends a request to the first group's Admin API. body may be nil, a string (sent as is with
// contentType) or anything else (sent as JSON).
func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	return e.send(method, e.base(e.group)+path, "", body)
}

// send sends a request to a full server path; contentType defaults to JSON when a body is given.
func (e *env) send(method, path, contentType string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if rd != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.body) // not every answer is JSON; those are read from r.raw
	}
	return r
}

// must checks the status of r and returns its body.
func (r resp) must(t testing.TB, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r.body
}

func (e *env) revision(group string) int64 {
	e.t.Helper()
	rev, err := e.es.Revision(context.Background(), group)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// ids returns the ids of a list answer's data, in order.
func ids(body map[string]any) []string {
	var out []string
	data, _ := body["data"].([]any)
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

// str reads a nested string field ("service.id").
func str(m map[string]any, path string) string {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// testPKI is PEM material generated once per test binary.
type testPKI struct {
	cert, key   string // a leaf pair
	cert2, key2 string // another leaf pair
	ca          string // a CA certificate
}

var pki = func() testPKI {
	gen := func(isCA bool) (string, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "gantry.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			BasicConstraintsValid: true, IsCA: isCA, DNSNames: []string{"gantry.test"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	}
	var p testPKI
	p.cert, p.key = gen(false)
	p.cert2, p.key2 = gen(false)
	p.ca, _ = gen(true)
	return p
}()
