// Package redact removes secrets from entity documents before the audit log keeps them. A value
// is a secret when any of these says so, checked in this order:
//
//  1. the configuration schema: fields marked Encrypted in an entity's or a plugin's schema (a
//     certificate's key, a key's private_key and jwk, a basic-auth password, http-log's endpoint);
//  2. the table of further secret fields per entity type (secretFields): credentials whose
//     secret is not Encrypted in Kong's schema (a key-auth key, a jwt or hmac-auth secret) and
//     the control plane's own types (token and password hashes);
//  3. the field's name, at any depth: names like password, secret, token, private_key, or
//     ending in _password, _secret, _token, _hash, _key (public keys excepted);
//  4. the value itself: PEM private key blocks and Gantry's own token formats, wherever they
//     appear.
//
// Redacted values become the string Mask; null stays null (there is nothing to hide) and vault
// references ({vault://…}) stay as they are, since they name where a secret is kept, not the
// secret. Redaction errs towards hiding: a document that is not valid JSON is replaced whole.
package redact

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// Mask replaces every redacted value.
const Mask = "[redacted]"

// secretFields lists, per entity type, top-level fields that hold secrets although the schema
// does not mark them Encrypted, and the secret fields of the control plane's own types.
var secretFields = map[string][]string{
	"keyauth_credentials":    {"key"},
	"jwt_secrets":            {"secret"},
	"hmacauth_credentials":   {"secret"},
	"basicauth_credentials":  {"password"},
	"users":                  {"password", "password_hash"},
	"system_accounts":        {"password_hash"},
	"personal_access_tokens": {"token", "hash"},
	"access_tokens":          {"token", "hash"},
	"system_account_tokens":  {"token", "hash"},
	"enrollment_tokens":      {"token", "token_hash", "hash"},
	"dp_client_certificates": {"key", "private_key"},
	"sessions":               {"id", "csrf_token"},
	"audit_log_webhooks":     {"secret"},
}

// secretNames are field names that hold a secret in any entity, at any depth.
var secretNames = map[string]bool{
	"password": true, "passwd": true, "passphrase": true, "secret": true, "client_secret": true,
	"private_key": true, "key_alt": true, "jwk": true, "token": true, "access_token": true,
	"refresh_token": true, "id_token": true, "api_key": true, "apikey": true, "hash": true,
	"authorization": true, "proxy_authorization": true, "cookie": true, "credentials": true,
	"csrf_token": true, "session_secret": true,
}

// secretSuffixes make any field name ending in them a secret, unless it names a public part.
var secretSuffixes = []string{"_password", "_secret", "_token", "_hash", "_key", "_passphrase"}

// tokenPrefixes start Gantry's bearer secrets: personal and system access tokens and enrollment
// tokens.
var tokenPrefixes = []string{"gpat_", "gsat_", "gent_"}

// IsSecretName reports whether a field of that name holds a secret wherever it appears.
func IsSecretName(name string) bool {
	n := strings.ToLower(name)
	if secretNames[n] {
		return true
	}
	if strings.Contains(n, "public") {
		return false
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// IsSecretValue reports whether a string looks like a secret whatever its field's name: a PEM
// private key or one of Gantry's tokens.
func IsSecretValue(s string) bool {
	if strings.Contains(s, "PRIVATE KEY-----") {
		return true
	}
	for _, p := range tokenPrefixes {
		if strings.HasPrefix(s, p) && len(s) > len(p)+8 {
			return true
		}
	}
	return false
}

// Doc returns raw, a JSON document of entityType (a DAO name such as "routes" or "plugins", or
// one of the control plane's types such as "users"), with its secrets replaced by Mask. nil and
// JSON null come back as nil.
func Doc(entityType string, raw []byte) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		out, _ := json.Marshal(Mask)
		return out
	}
	v = Value(entityType, v)
	out, err := json.Marshal(v)
	if err != nil {
		out, _ = json.Marshal(Mask)
	}
	return out
}

// Value redacts v, a decoded JSON value of entityType, in place where it can and returns it.
func Value(entityType string, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return walk(v, nil, "")
	}
	var fields []*schema.Field
	if e, ok := schema.Lookup(entityType); ok {
		fields = e.Fields
		if entityType == "plugins" {
			if name, _ := m["name"].(string); name != "" {
				if p, ok := schema.LookupPlugin(name); ok {
					fields = p.Entity().Fields
				}
			}
		}
	}
	extra := secretFields[entityType]
	for k, x := range m {
		if contains(extra, k) {
			m[k] = mask(x)
			continue
		}
		m[k] = walk(x, field(fields, k), k)
	}
	return m
}

// walk redacts v, the value of a field named name described by f (nil when the schema does not
// describe it).
func walk(v any, f *schema.Field, name string) any {
	if v == nil {
		return nil
	}
	if (f != nil && f.Encrypted) || (name != "" && IsSecretName(name)) {
		return mask(v)
	}
	switch x := v.(type) {
	case string:
		if IsSecretValue(x) {
			return Mask
		}
		return x
	case map[string]any:
		for k, e := range x {
			var sub *schema.Field
			if f != nil {
				switch {
				case len(f.Fields) > 0:
					sub = field(f.Fields, k)
				case f.Values != nil:
					sub = f.Values
				}
			}
			// A map's keys are data rather than field names, but data such as a header named
			// Authorization holds secrets too: every key is checked as a name.
			x[k] = walk(e, sub, k)
		}
		return x
	case []any:
		var elem *schema.Field
		if f != nil {
			elem = f.Elements
		}
		for i, e := range x {
			x[i] = walk(e, elem, "")
		}
		return x
	}
	return v
}

// mask returns Mask for a secret value, keeping null and vault references.
func mask(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if strings.HasPrefix(x, "{vault://") && strings.HasSuffix(x, "}") {
			return x
		}
	}
	return Mask
}

func field(fields []*schema.Field, name string) *schema.Field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// IsSecretField reports whether the top-level field of entityType holds a secret, by the same
// rules as Doc: an entity's endpoint key may be one (a key-auth credential's key), and then the
// audit log must not show it as the entity's name either.
func IsSecretField(entityType, field string) bool {
	if contains(secretFields[entityType], field) || IsSecretName(field) {
		return true
	}
	if e, ok := schema.Lookup(entityType); ok {
		if f := e.Field(field); f != nil && f.Encrypted {
			return true
		}
	}
	return false
}

// secretPathCollections are Admin API collections whose entities can be addressed by their
// secret: a key-auth credential by its key (/consumers/{c}/key-auth/{key}, /key-auths/{key}).
var secretPathCollections = map[string]bool{"key-auth": true, "key-auths": true}

// Path returns an HTTP path with the segments that may be a secret replaced by Mask: the
// segment after a collection whose entities are addressed by their secret.
func Path(p string) string {
	segs := strings.Split(p, "/")
	changed := false
	for i := 1; i < len(segs); i++ {
		if secretPathCollections[segs[i-1]] && segs[i] != "" {
			segs[i], changed = Mask, true
		}
	}
	if !changed {
		return p
	}
	return strings.Join(segs, "/")
}
