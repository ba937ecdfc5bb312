package compile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

// pemCert makes a self-signed certificate for cn with an RSA or ECDSA key.
func pemCert(t *testing.T, cn string, rsaKey, isCA bool) (certPEM, keyPEM string) {
	t.Helper()
	var pub, priv any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: isCA}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func TestTLSMaterial(t *testing.T) {
	exactCert, exactKey := pemCert(t, "api.example.com", false, false)
	altCert, altKey := pemCert(t, "api.example.com", true, false)
	suffixCert, suffixKey := pemCert(t, "*.example.org", false, false)
	prefixCert, prefixKey := pemCert(t, "shop.*", false, false)
	caCert, _ := pemCert(t, "Test CA", false, true)
	env := map[string]string{"GW_SHOP_KEY": prefixKey}
	cfg := map[string]any{
		"certificates": arr(
			map[string]any{"id": "00000000-0000-4000-8000-00000000f001", "cert": exactCert, "key": exactKey, "cert_alt": altCert, "key_alt": altKey},
			map[string]any{"id": "00000000-0000-4000-8000-00000000f002", "cert": suffixCert, "key": suffixKey},
			map[string]any{"id": "00000000-0000-4000-8000-00000000f003", "cert": prefixCert, "key": "{vault://env/gw-shop-key}"},
		),
		"snis": arr(
			map[string]any{"id": "00000000-0000-4000-8000-00000000f101", "name": "api.example.com", "certificate": "00000000-0000-4000-8000-00000000f001"},
			map[string]any{"id": "00000000-0000-4000-8000-00000000f102", "name": "*.example.org", "certificate": "00000000-0000-4000-8000-00000000f002"},
			map[string]any{"id": "00000000-0000-4000-8000-00000000f103", "name": "shop.*", "certificate": "00000000-0000-4000-8000-00000000f003"},
		),
		"ca_certificates": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000f201", "cert": caCert}),
		"services": arr(svc(svcA, "a.internal", 443, map[string]any{"protocol": "https",
			"ca_certificates":    arr("00000000-0000-4000-8000-00000000f201"),
			"client_certificate": "00000000-0000-4000-8000-00000000f002", "tls_verify": true})),
	}
	c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatalf("%v %+v", err, errs)
	}
	defer c.Close()

	ecdsaOnly := []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}
	rsaOnly := []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256}
	tests := []struct {
		name, sni string
		schemes   []tls.SignatureScheme
		wantCN    string // "" means no SNI entry
		wantRSA   bool
	}{
		{"exact", "api.example.com", ecdsaOnly, "api.example.com", false},
		{"exact, client without ECDSA gets cert_alt", "api.example.com", rsaOnly, "api.example.com", true},
		{"trailing dot", "api.example.com.", ecdsaOnly, "api.example.com", false},
		{"leading wildcard", "www.example.org", ecdsaOnly, "*.example.org", false},
		{"leading wildcard covers one label only", "a.b.example.org", ecdsaOnly, "", false},
		{"trailing wildcard", "shop.net", ecdsaOnly, "shop.*", false},
		{"trailing wildcard covers the last label only", "shop.example.net", ecdsaOnly, "", false},
		{"no match", "other.test", ecdsaOnly, "", false},
		{"no SNI", "", ecdsaOnly, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hello := &tls.ClientHelloInfo{ServerName: tc.sni, SignatureSchemes: tc.schemes,
				SupportedVersions: []uint16{tls.VersionTLS13}, SupportedCurves: []tls.CurveID{tls.CurveP256}}
			got := c.Certificates().Lookup(hello)
			if tc.wantCN == "" {
				if got != nil {
					t.Fatalf("got certificate %q, want none", got.Leaf.Subject.CommonName)
				}
				return
			}
			if got == nil {
				t.Fatal("no certificate")
			}
			_, isRSA := got.PrivateKey.(*rsa.PrivateKey)
			if got.Leaf.Subject.CommonName != tc.wantCN || isRSA != tc.wantRSA {
				t.Errorf("got %q rsa=%v, want %q rsa=%v", got.Leaf.Subject.CommonName, isRSA, tc.wantCN, tc.wantRSA)
			}
		})
	}

	s := c.Services()[0]
	if s.CACertificates == nil || s.ClientCertificate == nil || s.ClientCertificate.Leaf.Subject.CommonName != "*.example.org" {
		t.Errorf("service TLS material: ca=%v client=%v", s.CACertificates, s.ClientCertificate)
	}
	if s.TLSVerify == nil || !*s.TLSVerify {
		t.Error("tls_verify lost")
	}
	// The proxy dials with the service's TLS settings, not the compiled
	// summary of them.
	if p := s.Proxy; !p.TLSVerify || len(p.CACertificates) != 1 || p.ClientCertificate != s.ClientCertificate || p.TLSVerifyDepth != 1 {
		t.Errorf("proxy service TLS settings: verify=%v cas=%d client=%v depth=%d", p.TLSVerify, len(p.CACertificates), p.ClientCertificate != nil, p.TLSVerifyDepth)
	}
}

func TestCertificateErrors(t *testing.T) {
	cert, _ := pemCert(t, "a.example.com", false, false)
	_, otherKey := pemCert(t, "b.example.com", false, false)
	cfg := map[string]any{
		"certificates":    arr(map[string]any{"id": "00000000-0000-4000-8000-00000000f001", "cert": cert, "key": otherKey}),
		"ca_certificates": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000f201", "cert": "not a pem"}),
	}
	_, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err == nil {
		t.Fatal("mismatched key accepted")
	}
	want := map[string]bool{"certificates": false, "ca_certificates": false}
	for _, e := range errs {
		if _, ok := want[e.EntityType]; ok && e.Field == "cert" {
			want[e.EntityType] = true
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("no %s error in %+v", k, errs)
		}
	}
}

// Routes without plugins keep the proxy on its plugin-free path; routes
// with plugins hand it their chain.
func TestResolvePluginChain(t *testing.T) {
	cfg := map[string]any{
		"services": arr(svc(svcA, "a.internal", 80, nil)),
		"routes": arr(
			route(routeA, svcA, map[string]any{"paths": arr("/with")}),
			route(routeB, svcA, map[string]any{"paths": arr("/without")}),
		),
		"plugins": arr(map[string]any{"id": "00000000-0000-4000-8000-00000000d001", "name": "correlation-id", "route": routeA, "config": map[string]any{}}),
	}
	c, errs, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("%v %+v", err, errs)
	}
	defer c.Close()
	if c.Global() != nil {
		t.Error("Global set without any global plugin")
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{"/with", true}, {"/without", false}} {
		var m proxy.Match
		c.Resolve(httptest.NewRequest("GET", tc.path, nil), &m)
		if (m.Plugins != nil) != tc.want {
			t.Errorf("%s: chain set = %v, want %v", tc.path, m.Plugins != nil, tc.want)
		}
	}
}
