package schema

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// testPKI holds PEM material generated once per test binary.
type testPKI struct {
	cert, key, cert2, key2 string // two unrelated ECDSA leaf pairs
	rsaCert, rsaKey        string // an RSA leaf pair (alt certificate type)
	ca, caExpired          string // a CA certificate and an expired one
	pub                    string // PKIX public key of key
}

var pki = func() testPKI {
	leaf := func(isCA bool, notAfter time.Time, key any, pub any) string {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(time.Now().UnixNano()),
			Subject:               pkix.Name{CommonName: "gantry.test"},
			NotBefore:             time.Now().Add(-2 * time.Hour),
			NotAfter:              notAfter,
			BasicConstraintsValid: true,
			IsCA:                  isCA,
			DNSNames:              []string{"gantry.test"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	ecKey := func() (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	later := time.Now().Add(24 * time.Hour)
	k1, k1pem := ecKey()
	k2, k2pem := ecKey()
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	rder, _ := x509.MarshalPKCS8PrivateKey(rk)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	return testPKI{
		cert: leaf(false, later, k1, &k1.PublicKey), key: k1pem,
		cert2: leaf(false, later, k2, &k2.PublicKey), key2: k2pem,
		rsaCert:   leaf(false, later, rk, &rk.PublicKey),
		rsaKey:    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rder})),
		ca:        leaf(true, later, k1, &k1.PublicKey),
		caExpired: leaf(true, time.Now().Add(-time.Hour), k1, &k1.PublicKey),
		pub:       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}
}()

const (
	uuid1 = "6a5b2d7e-2f1c-4c55-9a0e-1b2c3d4e5f60"
	uuid2 = "0f7c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
)

// jsonRoundTrip turns a Go literal into what encoding/json would decode,
// so inputs look exactly like request bodies.
func jsonRoundTrip(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// minimalInputs is one minimal valid input per entity.
func minimalInputs() map[string]map[string]any {
	fk := map[string]any{"id": uuid1}
	return map[string]map[string]any{
		"certificates":          {"cert": pki.cert, "key": pki.key},
		"ca_certificates":       {"cert": pki.ca},
		"snis":                  {"name": "example.test", "certificate": fk},
		"services":              {"host": "example.test"},
		"routes":                {"paths": []any{"/"}},
		"consumers":             {"username": "alice"},
		"consumer_groups":       {"name": "gold"},
		"upstreams":             {"name": "backend.test"},
		"targets":               {"target": "10.0.0.1", "upstream": fk},
		"vaults":                {"prefix": "my-vault", "name": "env"},
		"key_sets":              {"name": "set1"},
		"keys":                  {"kid": "k1", "jwk": `{"kid":"k1","kty":"oct"}`},
		"plugins":               {"name": "prometheus"},
		"keyauth_credentials":   {"consumer": fk},
		"basicauth_credentials": {"consumer": fk, "username": "bob", "password": "secret"},
		"jwt_secrets":           {"consumer": fk},
		"hmacauth_credentials":  {"consumer": fk, "username": "carol"},
		"acls":                  {"consumer": fk, "group": "admins"},
	}
}

// minimalPluginConfigs is one minimal valid config per plugin.
func minimalPluginConfigs() map[string]map[string]any {
	return map[string]map[string]any{
		"acl":            {"allow": []any{"admins"}},
		"ip-restriction": {"allow": []any{"10.0.0.0/8"}},
		"rate-limiting":  {"minute": 10},
		"proxy-cache":    {"strategy": "memory"},
		"http-log":       {"http_endpoint": "http://log.test/x"},
		"file-log":       {"path": "/tmp/gantry.log"},
	}
}
