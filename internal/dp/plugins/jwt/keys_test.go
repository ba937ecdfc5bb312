package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// signAs signs claims with alg, putting kid in the header when set.
func signAs(t *testing.T, alg, kid string, key crypto.Signer, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	in := seg(h) + "." + seg(claims)
	digest := sha256.Sum256([]byte(in))
	var sig []byte
	var err error
	switch alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, digest[:], nil)
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(in))
	default:
		t.Fatalf("no signer for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(k *rsa.PublicKey) string {
	b, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())})
	return string(b)
}

func ecJWK(k *ecdsa.PublicKey) string {
	raw, _ := k.Bytes() // 0x04 || x || y
	b, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": b64u(raw[1:33]), "y": b64u(raw[33:])})
	return string(b)
}

func edJWK(k ed25519.PublicKey) string {
	b, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64u(k)})
	return string(b)
}

func privPEM(t *testing.T, k any) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestKeys verifies asymmetric tokens with keys entities named by kid, per
// the rule in the package doc.
func TestKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := nowFunc
	nowFunc = func() time.Time { return now }
	defer func() { nowFunc = old }()
	gen := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	credKey, current, retired, otherIssuer, psKey := gen(), gen(), gen(), gen(), gen()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	keys := []plugin.Key{
		{ID: "k-current", Kid: "a-2026", SetID: "set-a", SetName: "issuer-a", JWK: rsaJWK(&current.PublicKey)},
		{ID: "k-other", Kid: "b-1", SetID: "set-b", SetName: "issuer-b", JWK: rsaJWK(&otherIssuer.PublicKey)},
		{ID: "k-ec", Kid: "shared-ec", PublicKey: pubPEM(&ecKey.PublicKey)},
		{ID: "k-ed", Kid: "shared-ed", JWK: edJWK(edKey.Public().(ed25519.PublicKey))},
		{ID: "k-ps", Kid: "shared-ps", PrivateKey: privPEM(t, psKey)},
		{ID: "k-ec-jwk", Kid: "shared-ec-jwk", JWK: ecJWK(&ecKey.PublicKey)},
		{ID: "k-broken", Kid: "broken", JWK: `{"kty":"RSA","n":"!!"}`},
	}
	env := func(keys []plugin.Key) plugin.MemEnvOptions {
		return plugin.MemEnvOptions{
			Consumers: []plugin.Consumer{{ID: "c1", Username: "u1"}},
			JWTs: []plugin.JWTCredential{
				{ID: "j-a", ConsumerID: "c1", Key: "issuer-a", Algorithm: "RS256", RSAPublicKey: pubPEM(&credKey.PublicKey)},
				{ID: "j-e", ConsumerID: "c1", Key: "issuer-e", Algorithm: "ES256"},
				{ID: "j-d", ConsumerID: "c1", Key: "issuer-d", Algorithm: "EdDSA"},
				{ID: "j-p", ConsumerID: "c1", Key: "issuer-p", Algorithm: "PS256"},
				{ID: "j-h", ConsumerID: "c1", Key: "issuer-h", Secret: "hs-secret"},
			},
			Keys: keys,
		}
	}
	n := float64(now.Unix())
	a := map[string]any{"iss": "issuer-a", "exp": n + 60}
	cfg := Config{HeaderNames: []string{"authorization"}, KeyClaimName: "iss", RunOnPreflight: true, ClaimsToVerify: []string{"exp"}}
	tests := []struct {
		name   string
		token  string
		status int
		body   string
	}{
		{"key of the issuer's set", signAs(t, "RS256", "a-2026", current, a), 200, ""},
		{"rotated-out kid falls back to rsa_public_key", signAs(t, "RS256", "a-2025", retired, a), 401, `{"message":"Invalid signature"}`},
		{"no kid uses rsa_public_key", signAs(t, "RS256", "", credKey, a), 200, ""},
		{"unknown kid uses rsa_public_key", signAs(t, "RS256", "nope", credKey, a), 200, ""},
		{"wrong kid for the signer", signAs(t, "RS256", "a-2026", retired, a), 401, `{"message":"Invalid signature"}`},
		{"kid chosen, rsa_public_key not tried", signAs(t, "RS256", "a-2026", credKey, a), 401, `{"message":"Invalid signature"}`},
		{"another issuer's set is not used", signAs(t, "RS256", "b-1", otherIssuer, a), 401, `{"message":"Invalid signature"}`},
		{"expired", signAs(t, "RS256", "a-2026", current, map[string]any{"iss": "issuer-a", "exp": n - 1}), 401, `{"exp":"token expired"}`},
		{"shared EC key (PEM)", signAs(t, "ES256", "shared-ec", ecKey, map[string]any{"iss": "issuer-e", "exp": n + 60}), 200, ""},
		{"shared EC key (JWK)", signAs(t, "ES256", "shared-ec-jwk", ecKey, map[string]any{"iss": "issuer-e", "exp": n + 60}), 200, ""},
		{"no key and no rsa_public_key", signAs(t, "ES256", "nope", ecKey, map[string]any{"iss": "issuer-e", "exp": n + 60}), 401, `{"message":"Invalid key/secret"}`},
		{"EdDSA (OKP JWK)", signAs(t, "EdDSA", "shared-ed", edKey, map[string]any{"iss": "issuer-d", "exp": n + 60}), 200, ""},
		{"PS256 (public half of a private PEM)", signAs(t, "PS256", "shared-ps", psKey, map[string]any{"iss": "issuer-p", "exp": n + 60}), 200, ""},
		{"key of the wrong type", signAs(t, "PS256", "shared-ec", psKey, map[string]any{"iss": "issuer-p", "exp": n + 60}), 401, `{"message":"Invalid signature"}`},
		{"unusable key material", signAs(t, "RS256", "broken", current, a), 401, `{"message":"Invalid key/secret"}`},
		{"token algorithm must be the credential's", signAs(t, "ES256", "shared-ec", ecKey, a), 401, `{"message":"Invalid algorithm"}`},
		{"HS256 ignores kid", signHS("hs-secret", map[string]any{"alg": "HS256", "kid": "a-2026"}, map[string]any{"iss": "issuer-h", "exp": n + 60}), 200, ""},
	}
	s := plugintest.New(t, plugintest.Options{Env: env(keys), Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(cfg)}}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tt.token)
			res := s.Do(r)
			if res.Status != tt.status || (tt.body != "" && res.Body != tt.body) {
				t.Fatalf("%d %s, want %d %s", res.Status, res.Body, tt.status, tt.body)
			}
			if tt.status == 200 {
				if seen, ok := res.Seen(); !ok || seen.Header["X-Consumer-Id"][0] != "c1" {
					t.Errorf("consumer not authenticated: %+v", seen)
				}
			}
		})
	}

	// Rotation across configurations: a token valid while its key is in
	// the issuer's set is refused once the key is removed.
	t.Run("key removed by a new configuration", func(t *testing.T) {
		tok := signAs(t, "RS256", "a-2026", current, a)
		s := plugintest.New(t, plugintest.Options{Env: env(keys[1:]), Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(cfg)}}})
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if res := s.Do(r); res.Status != 401 || res.Body != `{"message":"Invalid signature"}` {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
}

func TestParseJWK(t *testing.T) {
	tests := []struct {
		name, jwk string
	}{
		{"not json", `{`},
		{"unknown kty", `{"kty":"oct","k":"AAAA"}`},
		{"bad base64", `{"kty":"RSA","n":"!!","e":"AQAB"}`},
		{"unknown curve", `{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}`},
		{"point off the curve", `{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}`},
		{"short Ed25519", `{"kty":"OKP","crv":"Ed25519","x":"AQID"}`},
		{"X25519 is not a signing key", `{"kty":"OKP","crv":"X25519","x":"AQID"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := parseJWK([]byte(tt.jwk)); err == nil {
				t.Fatalf("accepted: %T", k)
			}
		})
	}
}
