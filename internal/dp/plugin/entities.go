package plugin

import (
	"crypto/sha1" //nolint:gosec // Kong's basic-auth password hash, see HashBasicAuthPassword
	"encoding/hex"
	"encoding/json"
	"time"
)

// Consumer is a Kong consumer. At least one of Username and CustomID is set.
type Consumer struct {
	ID       string
	Username string
	CustomID string
}

// ConsumerGroup is a Kong consumer group.
type ConsumerGroup struct {
	ID   string
	Name string
}

// ConsumerGroupMember says ConsumerID belongs to ConsumerGroupID.
type ConsumerGroupMember struct {
	ConsumerID      string
	ConsumerGroupID string
}

// KeyAuthCredential is a key-auth credential.
type KeyAuthCredential struct {
	ID         string
	ConsumerID string
	Key        string
	// ExpiresAt is when a credential created with a ttl stops being valid;
	// the zero time means it never expires.
	ExpiresAt time.Time
}

// BasicAuthCredential is a basic-auth credential. Password holds the stored
// form Kong uses: the hex SHA-1 of password followed by the consumer id (see
// [HashBasicAuthPassword]).
type BasicAuthCredential struct {
	ID         string
	ConsumerID string
	Username   string
	Password   string
}

// HashBasicAuthPassword returns the stored form of a basic-auth password, as
// Kong computes it: hex(sha1(password .. consumerID)).
func HashBasicAuthPassword(password, consumerID string) string {
	sum := sha1.Sum([]byte(password + consumerID)) //nolint:gosec // Kong's stored format for basic-auth credentials
	return hex.EncodeToString(sum[:])
}

// JWTCredential is a jwt credential. Secret is used by HS* algorithms,
// RSAPublicKey (PEM) by RS*, PS*, ES* and EdDSA algorithms.
type JWTCredential struct {
	ID           string
	ConsumerID   string
	Key          string
	Secret       string
	RSAPublicKey string
	// Algorithm is one of HS256, HS384, HS512, RS256, RS384, RS512, ES256,
	// ES384, ES512, PS256, PS384, PS512, EdDSA; empty means HS256.
	Algorithm string
}

// Key is a Kong keys entity (a public or private key given as a JWK or
// as a PEM pair), with vault references already resolved. Plugins verify
// signatures with it; at least one of JWK and PublicKey/PrivateKey is set.
type Key struct {
	ID   string
	Name string
	// Kid is the key id tokens name in their header; unique per key set.
	Kid string
	// SetID and SetName identify the key set the key belongs to; both
	// empty when it belongs to none.
	SetID   string
	SetName string
	// JWK is the key as a JSON Web Key document, when given so.
	JWK string
	// PublicKey and PrivateKey are PEM blocks, when given so.
	PublicKey  string
	PrivateKey string
}

// HMACAuthCredential is an hmac-auth credential.
type HMACAuthCredential struct {
	ID         string
	ConsumerID string
	Username   string
	Secret     string
}

// ACLGroup puts a consumer in an acl group.
type ACLGroup struct {
	ID         string
	ConsumerID string
	Group      string
}

// VaultEntity is a configured vault. Only the "env" vault type is
// supported; Prefix is the name references use ({vault://<Prefix>/...}) and
// EnvPrefix is the env vault's config.prefix prepended to variable names.
type VaultEntity struct {
	ID        string
	Name      string
	Prefix    string
	EnvPrefix string
}

// PluginEntity is one configured plugin, as the configuration carries it.
// Config must already hold every schema default.
type PluginEntity struct {
	ID           string
	Name         string
	InstanceName string
	// Enabled false leaves the plugin out entirely.
	Enabled bool
	// Scope: any combination Kong allows; empty means unset. Consumer and
	// consumer group are mutually exclusive.
	RouteID         string
	ServiceID       string
	ConsumerID      string
	ConsumerGroupID string
	Config          json.RawMessage
	// Ordering is Kong Enterprise's dynamic ordering; nil means priority
	// order.
	Ordering *Ordering
}

// Ordering changes where a plugin runs in the access phase relative to other
// plugins by name. Only the "access" key of each map is honoured, as in Kong.
type Ordering struct {
	Before map[string][]string `json:"before,omitempty"`
	After  map[string][]string `json:"after,omitempty"`
}

// RouteRef names a route and the service it points to (empty when none),
// so chains can be precomputed per route.
type RouteRef struct {
	ID        string
	ServiceID string
	// Name is how metrics and logs name the route: Kong uses the route's
	// name, or its id when it has none. Empty means ID.
	Name string
	// ServiceName is how metrics and logs name the service: Kong uses the
	// service's name, or its host when it has none. Empty when the route
	// has no service.
	ServiceName string
}

// Credential is the credential that authenticated a request, in the
// shape the rest of the chain needs.
type Credential struct {
	// ID is the credential entity id.
	ID string
	// ConsumerID is the owner of the credential.
	ConsumerID string
	// Identifier is what X-Credential-Identifier carries.
	Identifier string
}
