// Package jwt is Kong's jwt plugin: HS*, RS*, PS*, ES* and EdDSA signed
// tokens verified against jwt credentials, with exp/nbf checks and a
// maximum expiration.
//
// The credential is found by the key claim (iss by default) and decides the
// consumer and the algorithm, as in Kong. Asymmetric tokens may in addition
// name their signing key with the kid header, and are then verified with a
// keys entity of the runtime group instead of the credential's
// rsa_public_key:
//
//  1. the key with that kid in the key set whose name equals the
//     credential's key (the iss value), so an issuer's keys can be
//     rotated as one set and keys of one issuer never verify another's
//     tokens;
//  2. else the key with that kid that belongs to no key set, shared by
//     every credential of the group;
//  3. else (no kid, or no such key: say it was rotated out) the
//     credential's rsa_public_key, as Kong does.
//
// A keys entity gives its public key as a JWK (kty RSA, EC with crv P-256,
// P-384 or P-521, or OKP with crv Ed25519) or as PEM (pem.public_key, or
// the public half of pem.private_key). Once a key is chosen it alone
// decides: a signature it does not verify is "Invalid signature", without
// trying the credential's key.
package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
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
	"strings"
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
	// keys caches parsed public keys for this generation, per credential
	// (rsa_public_key) and per keys entity.
	keys sync.Map // *plugin.JWTCredential or *plugin.Key -> crypto.PublicKey
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
	kind byte // 'H'mac, 'R'sa pkcs1v15, 'P'ss, 'E'cdsa, 'D' EdDSA (Ed25519)
	size int  // ECDSA coordinate size in bytes
	// curve is the ECDSA curve the key must be on.
	curve elliptic.Curve
}

var algs = map[string]algorithm{
	"HS256": {sha256.New, crypto.SHA256, 'H', 0, nil},
	"HS384": {sha512.New384, crypto.SHA384, 'H', 0, nil},
	"HS512": {sha512.New, crypto.SHA512, 'H', 0, nil},
	"RS256": {sha256.New, crypto.SHA256, 'R', 0, nil},
	"RS384": {sha512.New384, crypto.SHA384, 'R', 0, nil},
	"RS512": {sha512.New, crypto.SHA512, 'R', 0, nil},
	"PS256": {sha256.New, crypto.SHA256, 'P', 0, nil},
	"PS384": {sha512.New384, crypto.SHA384, 'P', 0, nil},
	"PS512": {sha512.New, crypto.SHA512, 'P', 0, nil},
	"ES256": {sha256.New, crypto.SHA256, 'E', 32, elliptic.P256()},
	"ES384": {sha512.New384, crypto.SHA384, 'E', 48, elliptic.P384()},
	"ES512": {sha512.New, crypto.SHA512, 'E', 66, elliptic.P521()},
	"EdDSA": {nil, 0, 'D', 0, nil},
}

// credentialKey returns the credential's rsa_public_key, parsed once per
// generation.
func (j *JWT) credentialKey(cred *plugin.JWTCredential, keyPEM []byte) (crypto.PublicKey, error) {
	if k, ok := j.keys.Load(cred); ok {
		return k, nil
	}
	key, err := parsePublicPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	j.keys.Store(cred, key)
	return key, nil
}

// entityKey returns the public key of a keys entity, parsed once per
// generation.
func (j *JWT) entityKey(k *plugin.Key) (crypto.PublicKey, error) {
	if v, ok := j.keys.Load(k); ok {
		return v, nil
	}
	var key crypto.PublicKey
	var err error
	switch {
	case k.JWK != "":
		key, err = parseJWK([]byte(k.JWK))
	case k.PublicKey != "":
		key, err = parsePublicPEM([]byte(k.PublicKey))
	case k.PrivateKey != "":
		key, err = publicOfPrivatePEM([]byte(k.PrivateKey))
	default:
		err = errors.New("key has no key material")
	}
	if err != nil {
		return nil, err
	}
	j.keys.Store(k, key)
	return key, nil
}

// pickKey applies the keys rule of the package doc: the key named kid in
// the key set named after the credential's key, else the one in no set;
// nil when neither exists.
func (j *JWT) pickKey(kid string, cred *plugin.JWTCredential) *plugin.Key {
	var shared *plugin.Key
	for _, k := range j.store.KeysByKid(kid) {
		switch {
		case k.SetID != "" && k.SetName == cred.Key:
			return k
		case k.SetID == "" && shared == nil:
			shared = k
		}
	}
	return shared
}

func parsePublicPEM(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}

func publicOfPrivatePEM(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var priv any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", priv)
	}
	return signer.Public(), nil
}

// jwk holds the public members of the JSON Web Key types tokens are
// verified with (RFC 7517, 7518, 8037); values are base64url.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func parseJWK(b []byte) (crypto.PublicKey, error) {
	var k jwk
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("jwk: %w", err)
	}
	dec := func(name, v string) ([]byte, error) {
		out, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil || len(out) == 0 {
			return nil, fmt.Errorf("jwk: %s is not base64url", name)
		}
		return out, nil
	}
	switch k.Kty {
	case "RSA":
		n, err := dec("n", k.N)
		if err != nil {
			return nil, err
		}
		e, err := dec("e", k.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New("jwk: e is too large")
		}
		exp := 0
		for _, c := range e {
			exp = exp<<8 | int(c)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("jwk: unsupported EC curve %q", k.Crv)
		}
		x, err := dec("x", k.X)
		if err != nil {
			return nil, err
		}
		y, err := dec("y", k.Y)
		if err != nil {
			return nil, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) > size || len(y) > size {
			return nil, errors.New("jwk: EC coordinate too long")
		}
		point := make([]byte, 1+2*size)
		point[0] = 4 // uncompressed
		copy(point[1+size-len(x):1+size], x)
		copy(point[1+2*size-len(y):], y)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("jwk: unsupported OKP curve %q", k.Crv)
		}
		x, err := dec("x", k.X)
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("jwk: Ed25519 x must be 32 bytes")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("jwk: unsupported kty %q", k.Kty)
}

// verifyHMAC checks an HS* signature.
func verifyHMAC(t *token, alg algorithm, secret []byte) bool {
	m := hmac.New(alg.hash, secret)
	m.Write(t.signingInput)
	return hmac.Equal(m.Sum(nil), t.signature)
}

// verifyKey checks an asymmetric signature with key, which must be of the
// algorithm's type (and curve).
func verifyKey(t *token, alg algorithm, key crypto.PublicKey) bool {
	if alg.kind == 'D' {
		k, ok := key.(ed25519.PublicKey)
		return ok && ed25519.Verify(k, t.signingInput, t.signature)
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
		if !ok || k.Curve != alg.curve || len(t.signature) != 2*alg.size {
			return false
		}
		r := new(big.Int).SetBytes(t.signature[:alg.size])
		s := new(big.Int).SetBytes(t.signature[alg.size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// checkSignature verifies t with the key the package doc's rule picks.
func (j *JWT) checkSignature(t *token, alg algorithm, cred *plugin.JWTCredential) *plugin.AuthFailure {
	if alg.kind != 'H' {
		if kid, _ := t.header["kid"].(string); kid != "" {
			if k := j.pickKey(kid, cred); k != nil {
				key, err := j.entityKey(k)
				if err != nil {
					return j.fail("Invalid key/secret")
				}
				if !verifyKey(t, alg, key) {
					return j.fail("Invalid signature")
				}
				return nil
			}
		}
	}
	secret := cred.RSAPublicKey
	if alg.kind == 'H' {
		secret = cred.Secret
	}
	secretBytes := []byte(secret)
	if j.cfg.SecretIsBase64 {
		var err error
		if secretBytes, err = base64.StdEncoding.DecodeString(secret); err != nil {
			secretBytes = nil
		}
	}
	if len(secretBytes) == 0 {
		return j.fail("Invalid key/secret")
	}
	if alg.kind == 'H' {
		if !verifyHMAC(t, alg, secretBytes) {
			return j.fail("Invalid signature")
		}
		return nil
	}
	key, err := j.credentialKey(cred, secretBytes)
	if err != nil || !verifyKey(t, alg, key) {
		return j.fail("Invalid signature")
	}
	return nil
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
	alg := algs[want]
	if f := j.checkSignature(t, alg, cred); f != nil {
		return f
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
