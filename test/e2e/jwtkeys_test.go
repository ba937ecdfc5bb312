package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// rs256 signs claims with key, naming kid in the header when set.
func rs256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": "RS256", "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(h) + "." + enc(claims)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestJWTKeys configures a key set named after a jwt credential's issuer,
// with a JWK key in it, through the Admin API, and checks that the runtime
// verifies tokens naming that key's kid, refuses a wrong kid and an
// expired token, and refuses the key's tokens once it is deleted.
func TestJWTKeys(t *testing.T) {
	e := newGatewayEnv(t, "jwt-keys")
	up := newEcho(t, "up")
	credKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	setKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&credKey.PublicKey)
	credPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	b64u := base64.RawURLEncoding.EncodeToString
	jwk, _ := json.Marshal(map[string]string{"kty": "RSA", "kid": "a-2026", "alg": "RS256",
		"n": b64u(setKey.N.Bytes()), "e": b64u(big.NewInt(int64(setKey.E)).Bytes())})

	e.create(t, "services", map[string]any{"name": "echo", "url": up.URL})
	e.create(t, "services/echo/routes", map[string]any{"name": "api", "paths": []string{"/api"}})
	e.create(t, "routes/api/plugins", map[string]any{"name": "jwt", "config": map[string]any{"claims_to_verify": []string{"exp"}}})
	e.create(t, "consumers", map[string]any{"username": "svc"})
	e.create(t, "consumers/svc/jwt", map[string]any{"key": "issuer-a", "algorithm": "RS256", "rsa_public_key": credPEM})
	set := e.create(t, "key-sets", map[string]any{"name": "issuer-a"})
	key := e.create(t, "keys", map[string]any{"name": "a-2026", "kid": "a-2026", "jwk": string(jwk), "set": map[string]any{"id": set["id"]}})
	e.converge(t)

	exp := float64(time.Now().Add(time.Hour).Unix())
	claims := map[string]any{"iss": "issuer-a", "exp": exp}
	call := func(tok string) (int, string) {
		req := mustRequest(t, "GET", e.proxyURL("/api"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, body := e.send(t, req)
		return res.StatusCode, body
	}
	tests := []struct {
		name   string
		token  string
		status int
		body   string
	}{
		{"key of the issuer's set", rs256(t, setKey, "a-2026", claims), 200, ""},
		{"no kid: the credential's key", rs256(t, credKey, "", claims), 200, ""},
		{"wrong kid", rs256(t, credKey, "a-2026", claims), 401, `{"message":"Invalid signature"}`},
		{"unknown kid signed by the set's key", rs256(t, setKey, "a-2025", claims), 401, `{"message":"Invalid signature"}`},
		{"expired", rs256(t, setKey, "a-2026", map[string]any{"iss": "issuer-a", "exp": float64(time.Now().Add(-time.Minute).Unix())}), 401, `{"exp":"token expired"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(tt.token)
			if code != tt.status || (tt.body != "" && body != tt.body) {
				t.Fatalf("%d %s, want %d %s", code, body, tt.status, tt.body)
			}
			if code == 200 {
				if s := decodeSeen(t, body); s.Header["X-Consumer-Username"][0] != "svc" {
					t.Errorf("consumer headers %v", s.Header)
				}
			}
		})
	}

	t.Run("rotated out", func(t *testing.T) {
		if code, out := e.admin(t, "DELETE", "keys/"+key["id"].(string), nil); code != 204 {
			t.Fatalf("delete key: %d %v", code, out)
		}
		e.converge(t)
		if code, body := call(rs256(t, setKey, "a-2026", claims)); code != 401 || body != `{"message":"Invalid signature"}` {
			t.Fatalf("%d %s", code, body)
		}
	})
}
