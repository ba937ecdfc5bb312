// Package jwt is Kong's jwt plugin: HS*, RS*, PS* and ES* signed tokens
// verified against jwt credentials, with exp/nbf checks and a maximum
// expiration.
package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "jwt"
	Priority = 1450
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
// MaximumExpiration is in seconds; 0 disables the check.
type Config struct {
	URIParamNames     []string `json:"uri_param_names"`
	CookieNames       []string `json:"cookie_names"`
	HeaderNames       []string `json:"header_names"`
	KeyClaimName      string   `json:"key_claim_name"`
	SecretIsBase64    bool     `json:"secret_is_base64"`
	ClaimsToVerify    []string `json:"claims_to_verify"`
	Anonymous         *string  `json:"anonymous"`
	RunOnPreflight    bool     `json:"run_on_preflight"`
	MaximumExpiration float64  `json:"maximum_expiration"`
	Realm             *string  `json:"realm"`
}

// JWT is a built jwt instance.
type JWT struct {
	cfg       Config
	anonymous string
	store     plugin.Store
	www       http.Header
	wwwErr    http.Header
	verifyExp bool
	verifyNbf bool
	// keys caches parsed public keys per credential for this generation.
	keys sync.Map // *plugin.JWTCredential -> crypto.PublicKey
}

var _ plugin.Accesser = (*JWT)(nil)

// nowFunc is the clock; tests replace it.
var nowFunc = time.Now

// New builds a jwt instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{KeyClaimName: "iss"}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("jwt: invalid config: %w", err)
	}
	j := &JWT{cfg: cfg, store: env}
	for _, c := range cfg.ClaimsToVerify {
		switch c {
		case "exp":
			j.verifyExp = true
		case "nbf":
			j.verifyNbf = true
		default:
			return nil, fmt.Errorf("jwt: claims_to_verify: %q is not one of exp, nbf", c)
		}
	}
	if cfg.MaximumExpiration < 0 || cfg.MaximumExpiration > 31536000 {
		return nil, errors.New("jwt: maximum_expiration must be between 0 and 31536000")
	}
	if cfg.MaximumExpiration > 0 && !j.verifyExp {
		return nil, errors.New("jwt: expected 'claims_to_verify' to contain 'exp' when 'maximum_expiration' is set")
	}
	if cfg.Anonymous != nil {
		j.anonymous = *cfg.Anonymous
	}
	base := "Bearer"
	if cfg.Realm != nil && *cfg.Realm != "" {
		base = `Bearer realm="` + *cfg.Realm + `"`
	}
	j.www = http.Header{"Www-Authenticate": {base}}
	j.wwwErr = http.Header{"Www-Authenticate": {base + ` error="invalid_token"`}}
	return j, nil
}

// Access implements [plugin.Accesser].
func (j *JWT) Access(c *plugin.Ctx) error {
	if !j.cfg.RunOnPreflight && c.Request.Method == http.MethodOptions {
		return nil
	}
	plugin.Authenticate(c, j.store, j.anonymous, j.authenticate)
	return nil
}

var bearer = regexp.MustCompile(`^\s*[Bb]earer\s+(.+)`)

// tokens collects distinct non-empty tokens from query, cookies and headers.
func (j *JWT) tokens(r *http.Request) []string {
	var out []string
	add := func(t string) {
		if t == "" {
			return
		}
		for _, o := range out {
			if o == t {
				return
			}
		}
		out = append(out, t)
	}
	if len(j.cfg.URIParamNames) > 0 {
		q := r.URL.Query()
		for _, n := range j.cfg.URIParamNames {
			for _, v := range q[n] {
				add(v)
			}
		}
	}
	for _, n := range j.cfg.CookieNames {
		if ck, err := r.Cookie(n); err == nil {
			add(ck.Value)
		}
	}
	for _, n := range j.cfg.HeaderNames {
		if v := r.Header.Get(n); v != "" {
			if m := bearer.FindStringSubmatch(v); m != nil {
				add(m[1])
			}
		}
	}
	return out
}

func (j *JWT) fail(msg string) *plugin.AuthFailure {
	return &plugin.AuthFailure{Status: 401, Message: msg, Header: j.wwwErr, Exit: true}
}

func (j *JWT) failClaims(errs map[string]string) *plugin.AuthFailure {
	b, _ := json.Marshal(errs)
	return &plugin.AuthFailure{Status: 401, Header: j.wwwErr, Exit: true, Body: b}
}

type token struct {
	header       map[string]any
	claims       map[string]any
	signingInput []byte
	signature    []byte
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(string(bytes.TrimRight([]byte(s), "=")))
}

func parse(raw string) (*token, error) {
	parts := bytes.Split([]byte(raw), []byte("."))
	if len(parts) != 3 {
		return nil, errors.New("invalid JWT")
	}
	t := &token{signingInput: []byte(raw[:len(parts[0])+1+len(parts[1])])}
	hb, err := decodeSegment(string(parts[0]))
	if err != nil || json.Unmarshal(hb, &t.header) != nil {
		return nil, errors.New("invalid header")
	}
	cb, err := decodeSegment(string(parts[1]))
	if err != nil || json.Unmarshal(cb, &t.claims) != nil {
		return nil, errors.New("invalid claims")
	}
	if t.signature, err = decodeSegment(string(parts[2])); err != nil {
		return nil, errors.New("invalid signature")
	}
	if t.header["typ"] != nil && t.header["typ"] != "JWT" {
		return nil, errors.New("invalid typ")
	}
	alg, _ := t.header["alg"].(string)
	if _, ok := algs[alg]; !ok {
		return nil, errors.New("invalid alg")
	}
	return t, nil
}

type algorithm struct {
	hash func() hash.Hash
	h    crypto.Hash
	kind byte // 'H'mac, 'R'sa pkcs1v15, 'P'ss, 'E'cdsa
	size int  // ECDSA coordinate size in bytes
}

var algs = map[string]algorithm{
	"HS256": {sha256.New, crypto.SHA256, 'H', 0},
	"HS384": {sha512.New384, crypto.SHA384, 'H', 0},
	"HS512": {sha512.New, crypto.SHA512, 'H', 0},
	"RS256": {sha256.New, crypto.SHA256, 'R', 0},
	"RS384": {sha512.New384, crypto.SHA384, 'R', 0},
	"RS512": {sha512.New, crypto.SHA512, 'R', 0},
	"PS256": {sha256.New, crypto.SHA256, 'P', 0},
	"PS384": {sha512.New384, crypto.SHA384, 'P', 0},
	"PS512": {sha512.New, crypto.SHA512, 'P', 0},
	"ES256": {sha256.New, crypto.SHA256, 'E', 32},
	"ES384": {sha512.New384, crypto.SHA384, 'E', 48},
	"ES512": {sha512.New, crypto.SHA512, 'E', 66},
}

func (j *JWT) publicKey(cred *plugin.JWTCredential, keyPEM []byte) (crypto.PublicKey, error) {
	if k, ok := j.keys.Load(cred); ok {
		return k, nil
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	j.keys.Store(cred, key)
	return key, nil
}

func (j *JWT) verify(t *token, alg algorithm, cred *plugin.JWTCredential, secret []byte) bool {
	if alg.kind == 'H' {
		m := hmac.New(alg.hash, secret)
		m.Write(t.signingInput)
		return hmac.Equal(m.Sum(nil), t.signature)
	}
	key, err := j.publicKey(cred, secret)
	if err != nil {
		return false
	}
	h := alg.hash()
	h.Write(t.signingInput)
	digest := h.Sum(nil)
	switch alg.kind {
	case 'R':
		k, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, alg.h, digest, t.signature) == nil
	case 'P':
		k, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPSS(k, alg.h, digest, t.signature, nil) == nil
	case 'E':
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || len(t.signature) != 2*alg.size {
			return false
		}
		r := new(big.Int).SetBytes(t.signature[:alg.size])
		s := new(big.Int).SetBytes(t.signature[alg.size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

func (j *JWT) authenticate(c *plugin.Ctx) *plugin.AuthFailure {
	toks := j.tokens(c.Request)
	switch {
	case len(toks) == 0:
		return &plugin.AuthFailure{Status: 401, Message: "Unauthorized", Header: j.www, Exit: true}
	case len(toks) > 1:
		return j.fail("Multiple tokens provided")
	}
	t, err := parse(toks[0])
	if err != nil {
		return j.fail("Bad token; " + err.Error())
	}
	name := j.cfg.KeyClaimName
	v, ok := t.claims[name]
	if !ok {
		v, ok = t.header[name]
	}
	if !ok || v == nil {
		return j.fail("No mandatory '" + name + "' in claims")
	}
	key, _ := v.(string)
	if key == "" {
		return j.fail("Invalid '" + name + "' in claims")
	}
	cred := j.store.JWTByKey(key)
	if cred == nil {
		return j.fail("No credentials found for given '" + name + "'")
	}
	want := cred.Algorithm
	if want == "" {
		want = "HS256"
	}
	if alg, _ := t.header["alg"].(string); alg != want {
		return j.fail("Invalid algorithm")
	}
	secret := cred.RSAPublicKey
	if want[:2] == "HS" {
		secret = cred.Secret
	}
	secretBytes := []byte(secret)
	if j.cfg.SecretIsBase64 {
		if secretBytes, err = base64.StdEncoding.DecodeString(secret); err != nil {
			secretBytes = nil
		}
	}
	if len(secretBytes) == 0 {
		return j.fail("Invalid key/secret")
	}
	if !j.verify(t, algs[want], cred, secretBytes) {
		return j.fail("Invalid signature")
	}
	now := float64(nowFunc().Unix())
	errs := map[string]string{}
	if j.verifyNbf {
		if nbf, ok := t.claims["nbf"]; !ok {
			errs["nbf"] = "must be a number"
		} else if n, isNum := nbf.(float64); !isNum {
			errs["nbf"] = "must be a number"
		} else if n > now {
			errs["nbf"] = "token not valid yet"
		}
	}
	if j.verifyExp {
		if exp, ok := t.claims["exp"]; !ok {
			errs["exp"] = "must be a number"
		} else if n, isNum := exp.(float64); !isNum {
			errs["exp"] = "must be a number"
		} else if n <= now {
			errs["exp"] = "token expired"
		}
	}
	if len(errs) > 0 {
		return j.failClaims(errs)
	}
	if j.cfg.MaximumExpiration > 0 {
		exp, ok := t.claims["exp"].(float64)
		if !ok || exp-now > j.cfg.MaximumExpiration {
			return j.failClaims(map[string]string{"exp": "exceeds maximum allowed expiration"})
		}
	}
	consumer := j.store.ConsumerByID(cred.ConsumerID)
	if consumer == nil {
		return &plugin.AuthFailure{Status: 401, Message: fmt.Sprintf("Could not find consumer for '%s=%s'", name, key), Exit: true}
	}
	plugin.SetConsumer(c, consumer, &plugin.Credential{ID: cred.ID, ConsumerID: cred.ConsumerID, Identifier: cred.Key})
	return nil
}
