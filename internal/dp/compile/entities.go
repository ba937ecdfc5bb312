package compile

import (
	"fmt"
	"reflect"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// The entities compile reads: one struct per config_table collection,
// holding the fields compile uses, tagged with their schema names (see
// decode.go). Values come only from decoding, which fills in the schema's
// defaults; a zero struct means nothing.

// serviceEntity is a services entity.
type serviceEntity struct {
	ID       string `schema:"id"`
	Name     string `schema:"name"`
	Protocol string `schema:"protocol"`
	Host     string `schema:"host"`
	Port     int    `schema:"port"`
	Path     string `schema:"path"`
	Retries  int    `schema:"retries"`
	// Timeouts are in milliseconds.
	ConnectTimeout int `schema:"connect_timeout"`
	WriteTimeout   int `schema:"write_timeout"`
	ReadTimeout    int `schema:"read_timeout"`
	// TLSVerify and TLSVerifyDepth are nil when null: the runtime default.
	TLSVerify         *bool    `schema:"tls_verify"`
	TLSVerifyDepth    *int     `schema:"tls_verify_depth"`
	CACertificates    []string `schema:"ca_certificates"`
	ClientCertificate ref      `schema:"client_certificate"`
	Enabled           bool     `schema:"enabled"`
}

func (s *serviceEntity) ident() (string, string) { return s.ID, s.Name }

// routeEntity is a routes entity.
type routeEntity struct {
	ID                      string              `schema:"id"`
	Name                    string              `schema:"name"`
	Service                 ref                 `schema:"service"`
	Protocols               []string            `schema:"protocols"`
	Methods                 []string            `schema:"methods"`
	Hosts                   []string            `schema:"hosts"`
	Paths                   []string            `schema:"paths"`
	Headers                 map[string][]string `schema:"headers"`
	SNIs                    []string            `schema:"snis"`
	RegexPriority           int                 `schema:"regex_priority"`
	StripPath               bool                `schema:"strip_path"`
	PathHandling            string              `schema:"path_handling"`
	PreserveHost            bool                `schema:"preserve_host"`
	HTTPSRedirectStatusCode int                 `schema:"https_redirect_status_code"`
}

func (r *routeEntity) ident() (string, string) { return r.ID, r.Name }

// upstreamEntity is an upstreams entity.
type upstreamEntity struct {
	ID   string `schema:"id"`
	Name string `schema:"name"`
	// Algorithm records whether it was set: an upstream that hashes and
	// names no algorithm balances by consistent hashing, as Kong's upstream
	// DAO (and the schema's shorthand) decides.
	Algorithm              opt[string]  `schema:"algorithm"`
	HashOn                 string       `schema:"hash_on"`
	HashFallback           string       `schema:"hash_fallback"`
	HashOnHeader           string       `schema:"hash_on_header"`
	HashFallbackHeader     string       `schema:"hash_fallback_header"`
	HashOnCookie           string       `schema:"hash_on_cookie"`
	HashOnCookiePath       string       `schema:"hash_on_cookie_path"`
	HashOnQueryArg         string       `schema:"hash_on_query_arg"`
	HashFallbackQueryArg   string       `schema:"hash_fallback_query_arg"`
	HashOnURICapture       string       `schema:"hash_on_uri_capture"`
	HashFallbackURICapture string       `schema:"hash_fallback_uri_capture"`
	Slots                  int          `schema:"slots"`
	Healthchecks           healthchecks `schema:"healthchecks"`
	HostHeader             string       `schema:"host_header"`
}

func (u *upstreamEntity) ident() (string, string) { return u.ID, u.Name }

// healthchecks is an upstream's healthchecks record. Intervals and timeouts
// are in seconds.
type healthchecks struct {
	Active struct {
		Type                   string              `schema:"type"`
		Timeout                float64             `schema:"timeout"`
		Concurrency            int                 `schema:"concurrency"`
		HTTPPath               string              `schema:"http_path"`
		HTTPSSNI               string              `schema:"https_sni"`
		HTTPSVerifyCertificate bool                `schema:"https_verify_certificate"`
		Headers                map[string][]string `schema:"headers"`
		Healthy                struct {
			Interval     float64 `schema:"interval"`
			HTTPStatuses []int   `schema:"http_statuses"`
			Successes    int     `schema:"successes"`
		} `schema:"healthy"`
		Unhealthy struct {
			Interval     float64 `schema:"interval"`
			HTTPStatuses []int   `schema:"http_statuses"`
			TCPFailures  int     `schema:"tcp_failures"`
			Timeouts     int     `schema:"timeouts"`
			HTTPFailures int     `schema:"http_failures"`
		} `schema:"unhealthy"`
	} `schema:"active"`
	Passive struct {
		Type    string `schema:"type"`
		Healthy struct {
			HTTPStatuses []int `schema:"http_statuses"`
			Successes    int   `schema:"successes"`
		} `schema:"healthy"`
		Unhealthy struct {
			HTTPStatuses []int `schema:"http_statuses"`
			TCPFailures  int   `schema:"tcp_failures"`
			Timeouts     int   `schema:"timeouts"`
			HTTPFailures int   `schema:"http_failures"`
		} `schema:"unhealthy"`
	} `schema:"passive"`
	Threshold float64 `schema:"threshold"`
}

// targetEntity is a targets entity.
type targetEntity struct {
	ID       string `schema:"id"`
	Upstream ref    `schema:"upstream"`
	Target   string `schema:"target"`
	Weight   int    `schema:"weight"`
}

func (t *targetEntity) ident() (string, string) { return t.ID, t.Target }

// certificateEntity is a certificates entity; its PEM fields may be vault
// references.
type certificateEntity struct {
	ID      string `schema:"id"`
	Cert    string `schema:"cert"`
	Key     string `schema:"key"`
	CertAlt string `schema:"cert_alt"`
	KeyAlt  string `schema:"key_alt"`
}

func (c *certificateEntity) ident() (string, string) { return c.ID, "" }

// sniEntity is a snis entity.
type sniEntity struct {
	ID          string `schema:"id"`
	Name        string `schema:"name"`
	Certificate ref    `schema:"certificate"`
}

func (s *sniEntity) ident() (string, string) { return s.ID, s.Name }

// caCertificateEntity is a ca_certificates entity.
type caCertificateEntity struct {
	ID   string `schema:"id"`
	Cert string `schema:"cert"`
}

func (c *caCertificateEntity) ident() (string, string) { return c.ID, "" }

// vaultEntity is a vaults entity.
type vaultEntity struct {
	ID     string `schema:"id"`
	Name   string `schema:"name"`
	Prefix string `schema:"prefix"`
	Config struct {
		Prefix string `schema:"prefix"`
	} `schema:"config"`
}

func (v *vaultEntity) ident() (string, string) { return v.ID, v.Prefix }

// keySetEntity is a key_sets entity.
type keySetEntity struct {
	ID   string `schema:"id"`
	Name string `schema:"name"`
}

func (k *keySetEntity) ident() (string, string) { return k.ID, k.Name }

// keyEntity is a keys entity; its key material may be vault references.
type keyEntity struct {
	ID   string `schema:"id"`
	Name string `schema:"name"`
	Kid  string `schema:"kid"`
	Set  ref    `schema:"set"`
	JWK  string `schema:"jwk"`
	// PEM is nil when the key is given as a JWK.
	PEM *struct {
		PrivateKey string `schema:"private_key"`
		PublicKey  string `schema:"public_key"`
	} `schema:"pem"`
}

func (k *keyEntity) ident() (string, string) { return k.ID, k.Name }

// consumerEntity is a consumers entity.
type consumerEntity struct {
	ID       string `schema:"id"`
	Username string `schema:"username"`
	CustomID string `schema:"custom_id"`
}

func (c *consumerEntity) ident() (string, string) { return c.ID, c.Username }

// consumerGroupEntity is a consumer_groups entity.
type consumerGroupEntity struct {
	ID   string `schema:"id"`
	Name string `schema:"name"`
}

func (g *consumerGroupEntity) ident() (string, string) { return g.ID, g.Name }

// consumerGroupMember is one row of consumer_group_consumers, the
// memberships the control plane flattens out of consumer groups; the schema
// does not describe it as an entity.
type consumerGroupMember struct {
	ConsumerGroup ref `schema:"consumer_group"`
	Consumer      ref `schema:"consumer"`
}

func (*consumerGroupMember) ident() (string, string) { return "", "" }

// keyAuthEntity is a keyauth_credentials entity. Its key is a secret, so errors
// name it by id only.
type keyAuthEntity struct {
	ID       string `schema:"id"`
	Consumer ref    `schema:"consumer"`
	Key      string `schema:"key"`
	// TTL is 0 for none, else an absolute expiry or seconds from CreatedAt (Unix seconds), as
	// schema.TTLExpiry reads it.
	TTL       int `schema:"ttl,transient"`
	CreatedAt int `schema:"created_at"`
}

func (k *keyAuthEntity) ident() (string, string) { return k.ID, "" }

// basicAuthEntity is a basicauth_credentials entity.
type basicAuthEntity struct {
	ID       string `schema:"id"`
	Consumer ref    `schema:"consumer"`
	Username string `schema:"username"`
	Password string `schema:"password"`
}

func (c *basicAuthEntity) ident() (string, string) { return c.ID, c.Username }

// jwtSecretEntity is a jwt_secrets entity. Its key is a secret, so errors name it
// by id only.
type jwtSecretEntity struct {
	ID           string `schema:"id"`
	Consumer     ref    `schema:"consumer"`
	Key          string `schema:"key"`
	Secret       string `schema:"secret"`
	RSAPublicKey string `schema:"rsa_public_key"`
	Algorithm    string `schema:"algorithm"`
}

func (c *jwtSecretEntity) ident() (string, string) { return c.ID, "" }

// hmacAuthEntity is a hmacauth_credentials entity.
type hmacAuthEntity struct {
	ID       string `schema:"id"`
	Consumer ref    `schema:"consumer"`
	Username string `schema:"username"`
	Secret   string `schema:"secret"`
}

func (c *hmacAuthEntity) ident() (string, string) { return c.ID, c.Username }

// aclEntity is an acls entity.
type aclEntity struct {
	ID       string `schema:"id"`
	Consumer ref    `schema:"consumer"`
	Group    string `schema:"group"`
}

func (a *aclEntity) ident() (string, string) { return a.ID, "" }

// pluginEntity is a plugins entity: the envelope compile reads, and the
// plugin's config as decoded, which the plugin's own schema then checks and
// fills (pluginConfig). It is decoded with the schema of the plugin it
// names, so that protocols and config take that plugin's defaults.
type pluginEntity struct {
	ID            string         `schema:"id"`
	Name          string         `schema:"name"`
	InstanceName  string         `schema:"instance_name"`
	Enabled       bool           `schema:"enabled"`
	Route         ref            `schema:"route"`
	Service       ref            `schema:"service"`
	Consumer      ref            `schema:"consumer"`
	ConsumerGroup ref            `schema:"consumer_group"`
	Protocols     []string       `schema:"protocols"`
	Config        map[string]any `schema:"config"`
	// Ordering is nil for priority order.
	Ordering *struct {
		Before struct {
			Access []string `schema:"access"`
		} `schema:"before"`
		After struct {
			Access []string `schema:"access"`
		} `schema:"after"`
	} `schema:"ordering"`
}

// ident names a plugin by its plugin name, which says more in a report
// than its instance name.
func (p *pluginEntity) ident() (string, string) { return p.ID, p.Name }

// collection is one config_table collection compile reads: its key (the
// schema entity name) and the plan that decodes its documents into T.
type collection[T any] struct {
	name string
	// plan returns the plan for one document; only plugins' depends on
	// the document.
	plan func(d map[string]any) *plan
}

// collections are the config_table collections compile reads.
var collections = struct {
	services               collection[serviceEntity]
	routes                 collection[routeEntity]
	upstreams              collection[upstreamEntity]
	targets                collection[targetEntity]
	certificates           collection[certificateEntity]
	snis                   collection[sniEntity]
	caCertificates         collection[caCertificateEntity]
	vaults                 collection[vaultEntity]
	keySets                collection[keySetEntity]
	keys                   collection[keyEntity]
	consumers              collection[consumerEntity]
	consumerGroups         collection[consumerGroupEntity]
	consumerGroupConsumers collection[consumerGroupMember]
	keyAuths               collection[keyAuthEntity]
	basicAuths             collection[basicAuthEntity]
	jwtSecrets             collection[jwtSecretEntity]
	hmacAuths              collection[hmacAuthEntity]
	acls                   collection[aclEntity]
	plugins                collection[pluginEntity]
}{
	services:       entityCollection[serviceEntity]("services"),
	routes:         entityCollection[routeEntity]("routes"),
	upstreams:      entityCollection[upstreamEntity]("upstreams"),
	targets:        entityCollection[targetEntity]("targets"),
	certificates:   entityCollection[certificateEntity]("certificates"),
	snis:           entityCollection[sniEntity]("snis"),
	caCertificates: entityCollection[caCertificateEntity]("ca_certificates"),
	vaults:         entityCollection[vaultEntity]("vaults"),
	keySets:        entityCollection[keySetEntity]("key_sets"),
	keys:           entityCollection[keyEntity]("keys"),
	consumers:      entityCollection[consumerEntity]("consumers"),
	consumerGroups: entityCollection[consumerGroupEntity]("consumer_groups"),
	consumerGroupConsumers: collection[consumerGroupMember]{name: "consumer_group_consumers",
		plan: fixedPlan(newPlan(reflect.TypeFor[consumerGroupMember](), nil, nil, "consumer_group_consumers"))},
	keyAuths:   entityCollection[keyAuthEntity]("keyauth_credentials"),
	basicAuths: entityCollection[basicAuthEntity]("basicauth_credentials"),
	jwtSecrets: entityCollection[jwtSecretEntity]("jwt_secrets"),
	hmacAuths:  entityCollection[hmacAuthEntity]("hmacauth_credentials"),
	acls:       entityCollection[aclEntity]("acls"),
	plugins:    pluginCollection(),
}

// entityCollection is the collection of schema entity name, decoded into T.
func entityCollection[T any](name string) collection[T] {
	e, ok := schema.Lookup(name)
	if !ok || e.Name != name {
		panic(fmt.Sprintf("compile: the schema has no entity %q", name))
	}
	return collection[T]{name: name, plan: fixedPlan(entityPlan[T](e))}
}

// entityPlan is the plan of T over entity e.
func entityPlan[T any](e *schema.Entity) *plan {
	transient := e.Transient
	if e.TTL {
		transient = append(append([]string(nil), transient...), "ttl")
	}
	return newPlan(reflect.TypeFor[T](), e.Fields, transient, e.Name)
}

func fixedPlan(p *plan) func(map[string]any) *plan {
	return func(map[string]any) *plan { return p }
}

// pluginCollection decodes each plugin with the schema of the plugin it
// names, or with the generic plugins entity when the name is unknown (the
// plugin compiler then reports it).
func pluginCollection() collection[pluginEntity] {
	generic, ok := schema.Lookup("plugins")
	if !ok {
		panic("compile: the schema has no plugins entity")
	}
	byName := make(map[string]*plan)
	for _, p := range schema.Plugins() {
		byName[p.Name] = entityPlan[pluginEntity](p.Entity())
	}
	genericPlan := entityPlan[pluginEntity](generic)
	return collection[pluginEntity]{name: "plugins", plan: func(d map[string]any) *plan {
		if name, ok := d["name"].(string); ok {
			if p := byName[name]; p != nil {
				return p
			}
		}
		return genericPlan
	}}
}

// decoded is one document of a collection, decoded: the typed entity and
// the problems decoding found, which compile reports along with its own.
type decoded[T any] struct {
	v    T
	errs fieldErrors
}

// read decodes the documents of collection c, in configuration order.
func read[T any](b *builder, c collection[T]) []decoded[T] {
	ds := b.list(c.name)
	out := make([]decoded[T], len(ds))
	for i, d := range ds {
		c.plan(d).decode(reflect.ValueOf(&out[i].v).Elem(), d, nil, &out[i].errs)
	}
	return out
}
