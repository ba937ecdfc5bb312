// Package compile turns one revision of a runtime group's configuration (a
// Kong config_table, format 3.0, with foreign keys flattened to id strings,
// as the control plane sends it) into a [Compiled] value the proxy serves
// from: the router index (routes to services), services with their upstream
// balancers, plugin chains with the consumers and credentials they look up,
// and the TLS material (certificates by SNI, CA certificates, client
// certificates).
//
// Compiling happens off the request path. A Compiled is immutable once
// returned, safe for concurrent use, and owns its resources: Close releases
// them once no request uses it any more. State that must survive a swap
// (target health, connection pools, rate-limit counters) is not owned here;
// it lives in long-lived registries passed in [Options] and is keyed by
// entity identity.
//
// Any entity that fails to compile rejects the whole revision (see
// [ErrRejected]); every entity error is reported, not only the first.
package compile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/dp/health"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/proxy"
	"github.com/gantry-gw/gantry/internal/dp/router"
	"github.com/gantry-gw/gantry/internal/wire"
)

// Options are the long-lived inputs of Compile.
type Options struct {
	// Health is the runtime's target health registry; required. Compile
	// updates it with the revision's upstreams only once every entity
	// compiled, so a rejected revision leaves health state untouched.
	Health *health.Registry
	// State holds plugin state that survives swaps (rate-limit counters);
	// nil gives this Compiled a private registry, so counters start over.
	State *plugin.StateRegistry
	// Plugins is the plugin registry; nil means plugin.DefaultRegistry.
	Plugins *plugin.Registry
	// Logger is handed to plugins; nil discards.
	Logger *slog.Logger
	// LookupEnv reads the environment for env vault references; nil means
	// os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// Route is a compiled route: the value the router hands back on a match.
// Immutable.
type Route struct {
	// ID and Name identify the route entity.
	ID, Name string
	// Service is the route's service; nil for a route without one.
	Service *Service
	// Chain is the route's plugin chain; never nil once compiled.
	Chain *plugin.Chain

	// proxyChain is Chain when some plugin may run on the route, nil
	// otherwise, so plugin-free routes stay on the proxy's fast path.
	proxyChain *plugin.Chain

	stripPath    bool
	pathHandling string
	preserveHost bool
}

// Service is a compiled service. Immutable.
type Service struct {
	// ID and Name identify the service entity.
	ID, Name string
	// Protocol is the entity's protocol (http, https, grpc, grpcs).
	Protocol string
	// Path is the service path prepended to upstream requests; "" for none.
	Path string
	// Proxy is what the proxy needs to reach the service.
	Proxy *proxy.Service
	// Upstream is the Kong upstream named by the service host, or nil when
	// the host is dialled directly.
	Upstream *Upstream
	// TLSVerify is the service's tls_verify; nil means the runtime default.
	TLSVerify *bool
	// TLSVerifyDepth is tls_verify_depth; -1 when unset.
	TLSVerifyDepth int
	// CACertificates verifies the upstream's certificate when set (the
	// service's ca_certificates); nil means the system roots.
	CACertificates *x509.CertPool
	// ClientCertificate is presented to the upstream (the service's
	// client_certificate); nil for none.
	ClientCertificate *tls.Certificate
}

// Key is a compiled keys entity with its vault references resolved.
type Key struct {
	// ID, Name and Kid identify the key; SetID is its key set ("" when
	// none).
	ID, Name, Kid, SetID string
	// JWK is the key as a JSON Web Key, when given so.
	JWK string
	// PrivateKey and PublicKey are the PEM pair, when given so.
	PrivateKey, PublicKey string
}

// Compiled is one compiled configuration revision. It implements
// proxy.Resolver. Immutable and safe for concurrent use; Close releases
// plugin resources and must be called once no request uses it.
type Compiled struct {
	router    *router.Router[*Route]
	routes    []*Route
	services  []*Service
	upstreams []*Upstream
	plugins   *plugin.Set
	global    *plugin.Set // plugins when some plugin is global, else nil
	env       *plugin.MemEnv
	certs     *CertStore
	keys      map[string]*Key
	keySets   map[string]string // id -> name
	counts    map[string]int    // entities per collection, for Summary

	// needPort is set when some route host names a port, so Match must
	// find the local port.
	needPort bool

	closeOnce sync.Once
	closeErr  error
}

var _ proxy.Resolver = (*Compiled)(nil)

// Compile builds cfg. It returns the Compiled value, or, when any entity
// fails, no value, every entity error, and an error wrapping ErrRejected.
// Other errors (ctx ended, bad options, a closed registry) come with no
// entity errors.
func Compile(ctx context.Context, cfg map[string]any, opts Options) (*Compiled, []wire.EntityError, error) {
	if opts.Health == nil {
		return nil, nil, errors.New("compile: Options.Health is required")
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	b := &builder{ctx: ctx, cfg: cfg, opts: opts, c: &Compiled{counts: map[string]int{}}}
	// keys come before consumers: the plugin environment built there
	// carries them (jwt verifies with them).
	steps := []func() error{b.vaults, b.certificates, b.upstreams, b.services, b.routes, b.keys, b.consumers, b.plugins}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			b.c.Close()
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		if err := step(); err != nil {
			b.c.Close()
			return nil, nil, err
		}
	}
	if len(b.errs.errs) > 0 {
		b.c.Close()
		errs := b.errs.sorted()
		return nil, errs, fmt.Errorf("compile: %w: %d entity errors", ErrRejected, len(errs))
	}
	if err := b.finishUpstreams(); err != nil {
		b.c.Close()
		if len(b.errs.errs) > 0 {
			errs := b.errs.sorted()
			return nil, errs, fmt.Errorf("compile: %w: %d entity errors", ErrRejected, len(errs))
		}
		return nil, nil, err
	}
	return b.c, nil, nil
}

// builder holds the state of one Compile between its steps.
type builder struct {
	ctx  context.Context
	cfg  map[string]any
	opts Options
	c    *Compiled
	errs collector

	vaultList   []plugin.VaultEntity
	keyList     []plugin.Key // keys for the plugin environment, in config order
	resolver    *plugin.VaultResolver
	certByID    map[string][]*tls.Certificate
	caByID      map[string]*x509.Certificate
	upSpecs     map[string]*upstreamSpec // by name
	upOrder     []*upstreamSpec
	svcByID     map[string]*Service
	disabled    map[string]bool // disabled service ids
	routeByID   map[string]*Route
	consumerIDs map[string]bool
	groups      map[string]bool
}

// list reads one collection, reporting a malformed collection as an entity
// error of that collection.
func (b *builder) list(collection string) []doc {
	ds, err := entities(b.cfg, collection)
	if err != nil {
		b.errs.errs = append(b.errs.errs, wire.EntityError{EntityType: collection, Message: err.Error()})
		return nil
	}
	b.c.counts[collection] = len(ds)
	return ds
}

func (b *builder) vaults() error {
	for _, d := range b.list("vaults") {
		var fe fieldErrors
		v := plugin.VaultEntity{ID: fe.str(d, "id"), Name: fe.str(d, "name"), Prefix: fe.str(d, "prefix")}
		if c := fe.rec(d, "config"); c != nil {
			v.EnvPrefix = fe.str(c, "prefix")
		}
		if len(fe) == 0 {
			if _, err := plugin.NewVaultResolver(plugin.VaultResolverOptions{Vaults: []plugin.VaultEntity{v}, LookupEnv: b.opts.LookupEnv}); err != nil {
				fe.add("", err.Error())
			}
		}
		if len(fe) > 0 {
			b.errs.entity("vaults", d, "prefix", fe)
			continue
		}
		b.vaultList = append(b.vaultList, v)
	}
	r, err := plugin.NewVaultResolver(plugin.VaultResolverOptions{Vaults: b.vaultList, LookupEnv: b.opts.LookupEnv})
	if err != nil {
		return fmt.Errorf("compile: vaults: %w", err)
	}
	b.resolver = r
	return nil
}

// deref resolves a vault reference in a referenceable field, recording a
// failure against field.
func (b *builder) deref(fe *fieldErrors, field, v string) string {
	if !plugin.IsReference(v) {
		return v
	}
	s, err := b.resolver.Resolve(v)
	if err != nil {
		fe.add(field, err.Error())
		return ""
	}
	return s
}

func (b *builder) certificates() error {
	b.certByID = make(map[string][]*tls.Certificate)
	for _, d := range b.list("certificates") {
		var fe fieldErrors
		id := fe.str(d, "id")
		cert := b.deref(&fe, "cert", fe.str(d, "cert"))
		key := b.deref(&fe, "key", fe.str(d, "key"))
		certAlt := b.deref(&fe, "cert_alt", fe.str(d, "cert_alt"))
		keyAlt := b.deref(&fe, "key_alt", fe.str(d, "key_alt"))
		var pair []*tls.Certificate
		if len(fe) == 0 {
			if c, err := keyPair(cert, key); err != nil {
				fe.add("cert", err.Error())
			} else {
				pair = append(pair, c)
			}
			if certAlt != "" || keyAlt != "" {
				if c, err := keyPair(certAlt, keyAlt); err != nil {
					fe.add("cert_alt", err.Error())
				} else {
					pair = append(pair, c)
				}
			}
		}
		if len(fe) > 0 {
			b.errs.entity("certificates", d, "", fe)
			continue
		}
		b.certByID[id] = pair
	}
	b.c.certs = newCertStore()
	for _, d := range b.list("snis") {
		var fe fieldErrors
		name := fe.str(d, "name")
		certID := fe.fk(d, "certificate")
		if len(fe) == 0 {
			if cs, ok := b.certByID[certID]; !ok {
				fe.add("certificate", fmt.Sprintf("certificate %q does not exist", certID))
			} else if err := b.c.certs.add(name, cs); err != nil {
				fe.add("name", err.Error())
			}
		}
		if len(fe) > 0 {
			b.errs.entity("snis", d, "name", fe)
		}
	}
	b.caByID = make(map[string]*x509.Certificate)
	for _, d := range b.list("ca_certificates") {
		var fe fieldErrors
		id := fe.str(d, "id")
		c, err := parseCACert(fe.str(d, "cert"))
		if err != nil {
			fe.add("cert", err.Error())
		}
		if len(fe) > 0 {
			b.errs.entity("ca_certificates", d, "", fe)
			continue
		}
		b.caByID[id] = c
	}
	return nil
}

func (b *builder) upstreams() error {
	targetsOf := make(map[string][]doc)
	for _, t := range b.list("targets") {
		up, err := t.fk("upstream")
		if err != nil || up == "" {
			b.errs.one("targets", t, "target", "upstream", "required field missing")
			continue
		}
		targetsOf[up] = append(targetsOf[up], t)
	}
	b.upSpecs = make(map[string]*upstreamSpec)
	known := make(map[string]bool)
	for _, d := range b.list("upstreams") {
		id, _ := d.str("id")
		known[id] = true
		s, fe := parseUpstream(d, targetsOf[id])
		if len(fe) > 0 {
			b.errs.entity("upstreams", d, "name", fe)
			continue
		}
		if _, dup := b.upSpecs[s.name]; dup {
			b.errs.one("upstreams", d, "name", "name", "another upstream has this name")
			continue
		}
		b.upSpecs[s.name] = s
		b.upOrder = append(b.upOrder, s)
	}
	for up, ts := range targetsOf {
		if !known[up] {
			for _, t := range ts {
				b.errs.one("targets", t, "target", "upstream", fmt.Sprintf("upstream %q does not exist", up))
			}
		}
	}
	return nil
}

// finishUpstreams updates the health registry with the revision's upstreams
// and builds their balancers over the registry's targets, then attaches
// them to services. It runs only when every entity compiled.
func (b *builder) finishUpstreams() error {
	specs := make([]health.Upstream, len(b.upOrder))
	for i, s := range b.upOrder {
		specs[i] = s.health
	}
	if err := b.opts.Health.Update(specs); err != nil {
		if errors.Is(err, health.ErrClosed) {
			return fmt.Errorf("compile: %w", err)
		}
		// Compile validated what the registry checks; attribute anything
		// left to the upstreams it names.
		b.errs.errs = append(b.errs.errs, wire.EntityError{EntityType: "upstreams", Message: err.Error()})
		return fmt.Errorf("compile: health registry: %w", err)
	}
	byName := make(map[string]*Upstream, len(b.upOrder))
	for _, s := range b.upOrder {
		u, err := s.build(b.opts.Health)
		if err != nil {
			return fmt.Errorf("compile: upstream %s: %w", s.name, err)
		}
		byName[s.name] = u
		b.c.upstreams = append(b.c.upstreams, u)
	}
	for _, svc := range b.c.services {
		u := byName[svc.Proxy.Host]
		if u == nil {
			continue
		}
		svc.Upstream = u
		svc.Proxy.Balancer = u
		if hh := hostHeaderFor(u, svc.Proxy.Host); hh != svc.Proxy.Host {
			svc.Proxy.Host = hh
			if err := svc.Proxy.Prepare(); err != nil {
				return fmt.Errorf("compile: service %s: %w", svc.ID, err)
			}
		}
	}
	return nil
}

func (b *builder) services() error {
	b.svcByID = make(map[string]*Service)
	b.disabled = make(map[string]bool)
	for _, d := range b.list("services") {
		var fe fieldErrors
		s := &Service{TLSVerifyDepth: -1}
		s.ID = fe.str(d, "id")
		s.Name = fe.str(d, "name")
		if !fe.boolean(d, "enabled", true) {
			b.disabled[s.ID] = true
			continue
		}
		s.Protocol = fe.str(d, "protocol")
		if s.Protocol == "" {
			s.Protocol = "http"
		}
		s.Path = fe.str(d, "path")
		host := fe.str(d, "host")
		port := fe.integer(d, "port", 80)
		if d["port"] == nil && s.Protocol == "https" {
			port = 443
		}
		ms := func(name string) time.Duration {
			return time.Duration(fe.integer(d, name, 60000)) * time.Millisecond
		}
		proto := s.Protocol
		switch proto {
		case "http", "https":
		case "grpc":
			proto = "http"
		case "grpcs":
			proto = "https"
		case "tcp", "tls", "tls_passthrough", "udp":
			// Stream services are served by the stream proxy, which this
			// runtime does not have; their routes are stream routes and
			// never reach the HTTP router.
			continue
		}
		s.Proxy = &proxy.Service{ID: s.ID, Name: s.Name, Protocol: proto, Host: host, Port: port,
			Retries: fe.integer(d, "retries", 5), ConnectTimeout: ms("connect_timeout"),
			WriteTimeout: ms("write_timeout"), ReadTimeout: ms("read_timeout")}
		if d["tls_verify"] != nil {
			v := fe.boolean(d, "tls_verify", false)
			s.TLSVerify = &v
			s.Proxy.TLSVerify = v
		}
		// Kong's null tls_verify_depth is nginx's proxy_ssl_verify_depth
		// default, 1.
		s.Proxy.TLSVerifyDepth = 1
		if d["tls_verify_depth"] != nil {
			s.TLSVerifyDepth = fe.integer(d, "tls_verify_depth", -1)
			s.Proxy.TLSVerifyDepth = s.TLSVerifyDepth
		}
		for _, ca := range fe.strings(d, "ca_certificates") {
			c, ok := b.caByID[ca]
			if !ok {
				fe.add("ca_certificates", fmt.Sprintf("ca_certificate %q does not exist", ca))
				continue
			}
			if s.CACertificates == nil {
				s.CACertificates = x509.NewCertPool()
			}
			s.CACertificates.AddCert(c)
			s.Proxy.CACertificates = append(s.Proxy.CACertificates, c)
		}
		if cc := fe.fk(d, "client_certificate"); cc != "" {
			if cs, ok := b.certByID[cc]; ok {
				s.ClientCertificate = cs[0]
				s.Proxy.ClientCertificate = cs[0]
			} else {
				fe.add("client_certificate", fmt.Sprintf("certificate %q does not exist", cc))
			}
		}
		if err := s.Proxy.Prepare(); err != nil {
			fe.add("", err.Error())
		}
		if len(fe) > 0 {
			b.errs.entity("services", d, "name", fe)
			continue
		}
		b.svcByID[s.ID] = s
		b.c.services = append(b.c.services, s)
	}
	return nil
}

func (b *builder) routes() error {
	ds := b.list("routes")
	rs := make([]router.Route[*Route], 0, len(ds))
	docByID := make(map[string]doc, len(ds))
	b.routeByID = make(map[string]*Route, len(ds))
	for _, d := range ds {
		var fe fieldErrors
		rt := &Route{}
		rt.ID = fe.str(d, "id")
		rt.Name = fe.str(d, "name")
		svcID := fe.fk(d, "service")
		if b.disabled[svcID] {
			continue // Kong leaves out routes of disabled services.
		}
		if svcID != "" {
			rt.Service = b.svcByID[svcID]
			if rt.Service == nil {
				fe.add("service", fmt.Sprintf("service %q does not exist", svcID))
			}
		}
		rt.stripPath = fe.boolean(d, "strip_path", true)
		rt.pathHandling = fe.str(d, "path_handling")
		rt.preserveHost = fe.boolean(d, "preserve_host", false)
		headers, err := d.headerMap("headers")
		if err != nil {
			fe.addErr(err)
		}
		r := router.Route[*Route]{
			ID:                      rt.ID,
			Protocols:               fe.strings(d, "protocols"),
			Methods:                 fe.strings(d, "methods"),
			Hosts:                   fe.strings(d, "hosts"),
			Paths:                   fe.strings(d, "paths"),
			Headers:                 headers,
			SNIs:                    fe.strings(d, "snis"),
			RegexPriority:           fe.integer(d, "regex_priority", 0),
			StripPath:               rt.stripPath,
			PathHandling:            rt.pathHandling,
			PreserveHost:            rt.preserveHost,
			HTTPSRedirectStatusCode: fe.integer(d, "https_redirect_status_code", 426),
			Value:                   rt,
		}
		if len(fe) > 0 {
			b.errs.entity("routes", d, "name", fe)
			continue
		}
		if _, dup := b.routeByID[rt.ID]; dup {
			b.errs.one("routes", d, "name", "id", "another route has this id")
			continue
		}
		for _, h := range r.Hosts {
			if _, _, err := net.SplitHostPort(h); err == nil {
				b.c.needPort = true
			}
		}
		b.routeByID[rt.ID] = rt
		docByID[rt.ID] = d
		rs = append(rs, r)
	}
	rtr, rerrs, err := router.Build(b.ctx, router.Options[*Route]{Routes: rs})
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	for _, re := range rerrs {
		d := docByID[re.ID]
		if d == nil {
			d = doc{"id": re.ID}
		}
		b.errs.one("routes", d, "name", "", re.Err.Error())
		delete(b.routeByID, re.ID)
	}
	b.c.router = rtr
	for i := range rs {
		if _, ok := b.routeByID[rs[i].ID]; ok {
			b.c.routes = append(b.c.routes, rs[i].Value)
		}
	}
	return nil
}

func (b *builder) consumers() error {
	var opts plugin.MemEnvOptions
	b.consumerIDs = make(map[string]bool)
	usernames := make(map[string]bool)
	customIDs := make(map[string]bool)
	for _, d := range b.list("consumers") {
		var fe fieldErrors
		c := plugin.Consumer{ID: fe.str(d, "id"), Username: fe.str(d, "username"), CustomID: fe.str(d, "custom_id")}
		switch {
		case c.ID == "":
			fe.add("id", "required field missing")
		case b.consumerIDs[c.ID]:
			fe.add("id", "another consumer has this id")
		case c.Username != "" && usernames[c.Username]:
			fe.add("username", "another consumer has this username")
		case c.CustomID != "" && customIDs[c.CustomID]:
			fe.add("custom_id", "another consumer has this custom_id")
		}
		if len(fe) > 0 {
			b.errs.entity("consumers", d, "username", fe)
			continue
		}
		b.consumerIDs[c.ID], usernames[c.Username], customIDs[c.CustomID] = true, true, true
		opts.Consumers = append(opts.Consumers, c)
	}
	b.groups = make(map[string]bool)
	for _, d := range b.list("consumer_groups") {
		var fe fieldErrors
		g := plugin.ConsumerGroup{ID: fe.str(d, "id"), Name: fe.str(d, "name")}
		if g.ID == "" || b.groups[g.ID] {
			fe.add("id", "missing or duplicate id")
		}
		if len(fe) > 0 {
			b.errs.entity("consumer_groups", d, "name", fe)
			continue
		}
		b.groups[g.ID] = true
		opts.ConsumerGroups = append(opts.ConsumerGroups, g)
	}
	for _, d := range b.list("consumer_group_consumers") {
		var fe fieldErrors
		m := plugin.ConsumerGroupMember{ConsumerID: fe.fk(d, "consumer"), ConsumerGroupID: fe.fk(d, "consumer_group")}
		b.needConsumer(&fe, m.ConsumerID)
		if !b.groups[m.ConsumerGroupID] {
			fe.add("consumer_group", fmt.Sprintf("consumer group %q does not exist", m.ConsumerGroupID))
		}
		if len(fe) > 0 {
			b.errs.entity("consumer_group_consumers", d, "", fe)
			continue
		}
		opts.ConsumerGroupMembers = append(opts.ConsumerGroupMembers, m)
	}
	// Credentials: each needs its consumer and a unique lookup key. Key
	// values are secrets, so they never appear in an error.
	opts.KeyAuths = credentials(b, "keyauth_credentials", "", "key", "required field missing", "another key-auth credential has this key",
		func(fe *fieldErrors, d doc) (plugin.KeyAuthCredential, string, string) {
			k := plugin.KeyAuthCredential{ID: fe.str(d, "id"), ConsumerID: fe.fk(d, "consumer"), Key: fe.str(d, "key")}
			if ttl := fe.integer(d, "ttl", 0); ttl > 0 {
				created := fe.integer(d, "created_at", 0)
				k.ExpiresAt = time.Unix(int64(created+ttl), 0)
			}
			return k, k.ConsumerID, k.Key
		})
	opts.BasicAuths = credentials(b, "basicauth_credentials", "username", "username", "missing or duplicate username", "missing or duplicate username",
		func(fe *fieldErrors, d doc) (plugin.BasicAuthCredential, string, string) {
			c := plugin.BasicAuthCredential{ID: fe.str(d, "id"), ConsumerID: fe.fk(d, "consumer"), Username: fe.str(d, "username"), Password: fe.str(d, "password")}
			return c, c.ConsumerID, c.Username
		})
	opts.JWTs = credentials(b, "jwt_secrets", "", "key", "missing or duplicate key", "missing or duplicate key",
		func(fe *fieldErrors, d doc) (plugin.JWTCredential, string, string) {
			c := plugin.JWTCredential{ID: fe.str(d, "id"), ConsumerID: fe.fk(d, "consumer"), Key: fe.str(d, "key"),
				Secret: fe.str(d, "secret"), RSAPublicKey: fe.str(d, "rsa_public_key"), Algorithm: fe.str(d, "algorithm")}
			return c, c.ConsumerID, c.Key
		})
	opts.HMACAuths = credentials(b, "hmacauth_credentials", "username", "username", "missing or duplicate username", "missing or duplicate username",
		func(fe *fieldErrors, d doc) (plugin.HMACAuthCredential, string, string) {
			c := plugin.HMACAuthCredential{ID: fe.str(d, "id"), ConsumerID: fe.fk(d, "consumer"), Username: fe.str(d, "username"), Secret: fe.str(d, "secret")}
			return c, c.ConsumerID, c.Username
		})
	for _, d := range b.list("acls") {
		var fe fieldErrors
		a := plugin.ACLGroup{ID: fe.str(d, "id"), ConsumerID: fe.fk(d, "consumer"), Group: fe.str(d, "group")}
		b.needConsumer(&fe, a.ConsumerID)
		if a.Group == "" {
			fe.add("group", "required field missing")
		}
		if len(fe) > 0 {
			b.errs.entity("acls", d, "", fe)
			continue
		}
		opts.ACLs = append(opts.ACLs, a)
	}
	opts.Vaults = b.vaultList
	opts.Keys = b.keyList
	opts.Logger = b.opts.Logger
	opts.State = b.opts.State
	opts.LookupEnv = b.opts.LookupEnv
	// Invalid entities were left out above, so the environment builds even
	// for a revision that will be rejected: plugins still compile against
	// it and report their own errors alongside.
	env, err := plugin.NewMemEnv(opts)
	if err != nil {
		return fmt.Errorf("compile: plugin environment: %w", err)
	}
	b.c.env = env
	return nil
}

// credentials compiles the credentials of one kind (collection): parse reads a document into a
// credential, its consumer id and its lookup key. The key must be present (else missing, on
// keyField) and unique among the kind's credentials that compiled (else dup); a credential with
// any error is reported under its collection (named by nameField) and left out.
func credentials[T any](b *builder, collection, nameField, keyField, missing, dup string, parse func(fe *fieldErrors, d doc) (T, string, string)) []T {
	var out []T
	seen := make(map[string]bool)
	for _, d := range b.list(collection) {
		var fe fieldErrors
		c, consumerID, key := parse(&fe, d)
		b.needConsumer(&fe, consumerID)
		switch {
		case key == "":
			fe.add(keyField, missing)
		case seen[key]:
			fe.add(keyField, dup)
		}
		if len(fe) > 0 {
			b.errs.entity(collection, d, nameField, fe)
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out
}

func (b *builder) needConsumer(fe *fieldErrors, id string) {
	if id == "" {
		fe.add("consumer", "required field missing")
	} else if !b.consumerIDs[id] {
		fe.add("consumer", fmt.Sprintf("consumer %q does not exist", id))
	}
}

func (b *builder) keys() error {
	b.c.keySets = make(map[string]string)
	for _, d := range b.list("key_sets") {
		id, _ := d.str("id")
		name, _ := d.str("name")
		b.c.keySets[id] = name
	}
	b.c.keys = make(map[string]*Key)
	kids := make(map[string]bool) // set id + NUL + kid
	for _, d := range b.list("keys") {
		var fe fieldErrors
		k := &Key{ID: fe.str(d, "id"), Name: fe.str(d, "name"), Kid: fe.str(d, "kid"), SetID: fe.fk(d, "set")}
		k.JWK = b.deref(&fe, "jwk", fe.str(d, "jwk"))
		if p := fe.rec(d, "pem"); p != nil {
			k.PrivateKey = b.deref(&fe, "pem.private_key", fe.str(p, "private_key"))
			k.PublicKey = b.deref(&fe, "pem.public_key", fe.str(p, "public_key"))
		}
		if k.SetID != "" {
			if _, ok := b.c.keySets[k.SetID]; !ok {
				fe.add("set", fmt.Sprintf("key set %q does not exist", k.SetID))
			}
		}
		if kids[k.SetID+"\x00"+k.Kid] {
			fe.add("kid", "another key of the same key set has this kid")
		}
		if k.JWK != "" && !json.Valid([]byte(k.JWK)) {
			fe.add("jwk", "not valid JSON")
		}
		if len(fe) > 0 {
			b.errs.entity("keys", d, "name", fe)
			continue
		}
		b.c.keys[k.ID] = k
		kids[k.SetID+"\x00"+k.Kid] = true
		b.keyList = append(b.keyList, plugin.Key{ID: k.ID, Name: k.Name, Kid: k.Kid, SetID: k.SetID, SetName: b.c.keySets[k.SetID],
			JWK: k.JWK, PublicKey: k.PublicKey, PrivateKey: k.PrivateKey})
	}
	return nil
}

func (b *builder) plugins() error {
	var ents []plugin.PluginEntity
	docByID := make(map[string]doc)
	for _, d := range b.list("plugins") {
		var fe fieldErrors
		p := plugin.PluginEntity{ID: fe.str(d, "id"), Name: fe.str(d, "name"), InstanceName: fe.str(d, "instance_name"),
			Enabled: fe.boolean(d, "enabled", true), RouteID: fe.fk(d, "route"), ServiceID: fe.fk(d, "service"),
			ConsumerID: fe.fk(d, "consumer"), ConsumerGroupID: fe.fk(d, "consumer_group")}
		if !p.Enabled || b.disabled[p.ServiceID] {
			continue
		}
		if p.RouteID != "" {
			if rt, ok := b.routeByID[p.RouteID]; !ok {
				fe.add("route", fmt.Sprintf("route %q does not exist", p.RouteID))
			} else if rt.Service != nil && b.disabled[rt.Service.ID] {
				continue
			}
		}
		if p.ServiceID != "" && b.svcByID[p.ServiceID] == nil {
			fe.add("service", fmt.Sprintf("service %q does not exist", p.ServiceID))
		}
		if p.ConsumerID != "" && !b.consumerIDs[p.ConsumerID] {
			fe.add("consumer", fmt.Sprintf("consumer %q does not exist", p.ConsumerID))
		}
		if p.ConsumerGroupID != "" && !b.groups[p.ConsumerGroupID] {
			fe.add("consumer_group", fmt.Sprintf("consumer group %q does not exist", p.ConsumerGroupID))
		}
		if o := d["ordering"]; o != nil {
			raw, _ := json.Marshal(o)
			p.Ordering = new(plugin.Ordering)
			if err := json.Unmarshal(raw, p.Ordering); err != nil {
				fe.add("ordering", err.Error())
			}
		}
		if len(fe) == 0 {
			cfg, sfe := pluginConfig(d, p.Name, b.resolver)
			fe = append(fe, sfe...)
			p.Config = cfg
		}
		if len(fe) > 0 {
			b.errs.entity("plugins", d, "name", fe)
			continue
		}
		docByID[p.ID] = d
		ents = append(ents, p)
	}
	refs := make([]plugin.RouteRef, len(b.c.routes))
	for i, rt := range b.c.routes {
		refs[i].ID, refs[i].Name = rt.ID, rt.Name
		if rt.Service != nil {
			// Kong's metrics name a service by its name, else its host.
			refs[i].ServiceID, refs[i].ServiceName = rt.Service.ID, rt.Service.Name
			if refs[i].ServiceName == "" && rt.Service.Proxy != nil {
				refs[i].ServiceName = rt.Service.Proxy.Host
			}
		}
	}
	set, err := plugin.Compile(b.ctx, plugin.CompileOptions{Plugins: ents, Routes: refs, Env: b.c.env, Registry: b.opts.Plugins})
	if err != nil {
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			return fmt.Errorf("compile: %w", ctxErr)
		}
		for _, e := range flatten(err) {
			var pe *plugin.EntityError
			if errors.As(e, &pe) {
				d := docByID[pe.PluginID]
				if d == nil {
					d = doc{"id": pe.PluginID, "name": pe.Name}
				}
				b.errs.one("plugins", d, "name", "", pe.Err.Error())
				continue
			}
			b.errs.errs = append(b.errs.errs, wire.EntityError{EntityType: "plugins", Message: e.Error()})
		}
		return nil
	}
	b.c.plugins = set
	for _, rt := range b.c.routes {
		rt.Chain = set.Route(rt.ID)
		if len(rt.Chain.Plugins()) > 0 {
			rt.proxyChain = rt.Chain
		}
	}
	if len(set.NoRoute().Plugins()) > 0 {
		b.c.global = set
	}
	return nil
}

// pluginConfig fills the plugin's config defaults and validates it with the
// plugin's schema, as Kong's data plane does when it loads a declarative
// configuration. Plugins without a schema here get their config as is.
func pluginConfig(d doc, name string, vaults *plugin.VaultResolver) (json.RawMessage, fieldErrors) {
	cfg, _ := d["config"].(map[string]any)
	ps, ok := schema.LookupPlugin(name)
	if !ok {
		var fe fieldErrors
		resolved := resolveRefs(cfg, "config", vaults, &fe)
		if len(fe) > 0 {
			return nil, fe
		}
		raw, err := json.Marshal(resolved)
		if err != nil {
			return nil, fieldErrors{{"config", err.Error()}}
		}
		if cfg == nil {
			raw = []byte("{}")
		}
		return raw, nil
	}
	in := map[string]any{"name": name}
	if cfg != nil {
		in["config"] = cfg
	}
	for _, fk := range []string{"route", "service", "consumer", "consumer_group"} {
		if id, _ := doc(d).fk(fk); id != "" {
			in[fk] = map[string]any{"id": id}
		}
	}
	if p, ok := d["protocols"]; ok && p != nil {
		in["protocols"] = p
	}
	out, _, serr := ps.Process(schema.OpCreate, in, nil)
	if serr != nil {
		return nil, schemaFieldErrors(serr)
	}
	// References are resolved here rather than by the plugin compiler so
	// that a failure names the field.
	var fe fieldErrors
	resolved := resolveRefs(out["config"], "config", vaults, &fe)
	if len(fe) > 0 {
		return nil, fe
	}
	raw, err := json.Marshal(resolved)
	if err != nil {
		return nil, fieldErrors{{"config", err.Error()}}
	}
	return raw, nil
}

// resolveRefs returns v with every vault reference replaced by its secret,
// recording each reference that does not resolve against its dotted path.
// v is not modified.
func resolveRefs(v any, path string, vaults *plugin.VaultResolver, fe *fieldErrors) any {
	switch t := v.(type) {
	case string:
		if plugin.IsReference(t) {
			s, err := vaults.Resolve(t)
			if err != nil {
				fe.add(path, err.Error())
				return t
			}
			return s
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = resolveRefs(e, path+"."+k, vaults, fe)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = resolveRefs(e, path, vaults, fe)
		}
		return out
	}
	return v
}

// flatten unwraps a joined error into its parts.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// reqPool recycles router requests: the router keeps a pointer to the
// request during a lookup, which makes a stack value escape.
var reqPool = sync.Pool{New: func() any { return new(router.Request) }}

// Match routes r. It is the router lookup Resolve uses, exported so a
// caller can act on a protocol rejection (Match.Reject) before proxying.
func (c *Compiled) Match(r *http.Request) (router.Match[*Route], bool) {
	if c == nil || c.router == nil {
		return router.Match[*Route]{}, false
	}
	req := reqPool.Get().(*router.Request)
	*req = router.Request{Scheme: "http", Method: r.Method, Host: r.Host, Target: r.RequestURI,
		Headers: r.Header, HTTPMajor: r.ProtoMajor}
	if req.Target == "" || req.Target[0] != '/' {
		req.Target = r.URL.RequestURI()
	}
	if r.TLS != nil {
		req.Scheme, req.SNI = "https", r.TLS.ServerName
	}
	if c.needPort {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ta, ok := a.(*net.TCPAddr); ok {
				req.Port = ta.Port
			} else if _, p, err := net.SplitHostPort(a.String()); err == nil {
				req.Port, _ = strconv.Atoi(p)
			}
		}
	}
	m, ok := c.router.Match(req)
	*req = router.Request{} // drop references to r before pooling
	reqPool.Put(req)
	return m, ok
}

// Resolve implements proxy.Resolver: it matches r and fills m with the
// route's service and the upstream path (Kong's path_handling v0 or v1,
// strip_path, service path). A route without a service, or no match, leaves
// m.Service nil. A route matched over a protocol it refuses sets m.Reject.
func (c *Compiled) Resolve(r *http.Request, m *proxy.Match) {
	mt, ok := c.Match(r)
	if !ok {
		return
	}
	if mt.Reject.Status != 0 {
		m.Reject = rejection(mt.Reject)
		return
	}
	rt := mt.Route.Value
	svc := rt.Service
	if svc == nil {
		return
	}
	m.Service = svc.Proxy
	m.RouteID = rt.ID
	m.Plugins = rt.proxyChain
	if rt.proxyChain != nil && mt.Captures.Len() > 0 {
		m.URICaptures = mt.Captures
	}
	m.PreserveHost = rt.preserveHost
	strip := rt.stripPath && mt.MatchedPath != ""
	if !strip && (svc.Path == "" || svc.Path == "/") {
		// The common case: the normalized client path goes up unchanged,
		// without building a new string.
		m.Path = router.EscapePath(mt.Path)
	} else {
		m.Path = router.UpstreamPath(svc.Path, router.StripQuery(r.RequestURI), mt.MatchedPath, rt.stripPath, rt.pathHandling)
	}
	if strip {
		m.Prefix = mt.MatchedPath
	}
}

// Plugins returns the compiled plugin set (global rewrite phase, per-route
// chains, the no-route chain).
func (c *Compiled) Plugins() *plugin.Set { return c.plugins }

// Global returns the plugin set for the proxy's Config.Global: the set when
// some plugin is global (only global plugins run before routing), nil
// otherwise so requests skip the rewrite phase entirely.
func (c *Compiled) Global() *plugin.Set { return c.global }

// Env returns the plugin environment: consumers, credentials, groups.
func (c *Compiled) Env() *plugin.MemEnv { return c.env }

// Certificates returns the SNI certificate store.
func (c *Compiled) Certificates() *CertStore { return c.certs }

// Routes returns the compiled routes in configuration order. The slice must
// not be modified.
func (c *Compiled) Routes() []*Route { return c.routes }

// Services returns the compiled services in configuration order. The slice
// must not be modified.
func (c *Compiled) Services() []*Service { return c.services }

// Key returns a keys entity by id, or nil.
func (c *Compiled) Key(id string) *Key { return c.keys[id] }

// Close releases the plugin instances' resources. It is idempotent; the
// caller guarantees no request still uses c (the gateway drains first).
func (c *Compiled) Close() error {
	c.closeOnce.Do(func() {
		if c.plugins != nil {
			c.closeErr = c.plugins.Close()
		}
	})
	return c.closeErr
}
