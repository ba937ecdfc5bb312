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
// Each entity document is decoded once, into the typed struct of its
// collection (entities.go), whose defaults are the schema's
// (internal/config/schema; see decode.go); compiling reads typed values
// only. Any entity that fails to decode or compile rejects the whole
// revision (see [ErrRejected]); every entity error is reported, not only
// the first, with the path of the field it concerns.
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
	"github.com/gantry-gw/gantry/internal/dp/h1"
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
	// Every document is decoded first, once; the steps read typed values.
	// keys come before consumers: the plugin environment built there
	// carries them (jwt verifies with them).
	steps := []func() error{b.decode, b.vaults, b.certificates, b.upstreams, b.services, b.routes, b.keys, b.consumers, b.plugins}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return b.fail(fmt.Errorf("compile: %w", err))
		}
		if err := step(); err != nil {
			return b.fail(err)
		}
	}
	if len(b.errs.errs) > 0 {
		return b.reject()
	}
	if err := b.finishUpstreams(); err != nil {
		if len(b.errs.errs) > 0 {
			return b.reject()
		}
		return b.fail(err)
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
	// in is cfg decoded, by the first step.
	in config

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

// config is a configuration decoded: the entities of every collection
// compile reads, in configuration order.
type config struct {
	vaults                 []decoded[vaultEntity]
	certificates           []decoded[certificateEntity]
	snis                   []decoded[sniEntity]
	caCertificates         []decoded[caCertificateEntity]
	upstreams              []decoded[upstreamEntity]
	targets                []decoded[targetEntity]
	services               []decoded[serviceEntity]
	routes                 []decoded[routeEntity]
	keySets                []decoded[keySetEntity]
	keys                   []decoded[keyEntity]
	consumers              []decoded[consumerEntity]
	consumerGroups         []decoded[consumerGroupEntity]
	consumerGroupConsumers []decoded[consumerGroupMember]
	keyAuths               []decoded[keyAuthEntity]
	basicAuths             []decoded[basicAuthEntity]
	jwtSecrets             []decoded[jwtSecretEntity]
	hmacAuths              []decoded[hmacAuthEntity]
	acls                   []decoded[aclEntity]
	plugins                []decoded[pluginEntity]
}

// fail releases what was built and returns err.
func (b *builder) fail(err error) (*Compiled, []wire.EntityError, error) {
	_ = b.c.Close() // nothing was served from it; err says what matters
	return nil, nil, err
}

// reject releases what was built and returns the entity errors.
func (b *builder) reject() (*Compiled, []wire.EntityError, error) {
	_ = b.c.Close() // nothing was served from it; the entity errors say what matters
	errs := b.errs.sorted()
	return nil, errs, fmt.Errorf("compile: %w: %d entity errors", ErrRejected, len(errs))
}

// decode decodes every collection compile reads.
func (b *builder) decode() error {
	c := &collections
	b.in = config{
		vaults:                 read(b, c.vaults),
		certificates:           read(b, c.certificates),
		snis:                   read(b, c.snis),
		caCertificates:         read(b, c.caCertificates),
		upstreams:              read(b, c.upstreams),
		targets:                read(b, c.targets),
		services:               read(b, c.services),
		routes:                 read(b, c.routes),
		keySets:                read(b, c.keySets),
		keys:                   read(b, c.keys),
		consumers:              read(b, c.consumers),
		consumerGroups:         read(b, c.consumerGroups),
		consumerGroupConsumers: read(b, c.consumerGroupConsumers),
		keyAuths:               read(b, c.keyAuths),
		basicAuths:             read(b, c.basicAuths),
		jwtSecrets:             read(b, c.jwtSecrets),
		hmacAuths:              read(b, c.hmacAuths),
		acls:                   read(b, c.acls),
		plugins:                read(b, c.plugins),
	}
	return nil
}

// list returns the documents of one collection, reporting a malformed
// collection as an error of that collection.
func (b *builder) list(collection string) []map[string]any {
	ds, err := documents(b.cfg, collection)
	if err != nil {
		b.errs.collection(collection, err.Error())
		return nil
	}
	b.c.counts[collection] = len(ds)
	return ds
}

func (b *builder) vaults() error {
	for i := range b.in.vaults {
		v, fe := &b.in.vaults[i].v, b.in.vaults[i].errs
		ve := plugin.VaultEntity{ID: v.ID, Name: v.Name, Prefix: v.Prefix, EnvPrefix: v.Config.Prefix}
		if len(fe) == 0 {
			if _, err := plugin.NewVaultResolver(plugin.VaultResolverOptions{Vaults: []plugin.VaultEntity{ve}, LookupEnv: b.opts.LookupEnv}); err != nil {
				fe.add(nil, err.Error())
			}
		}
		if len(fe) > 0 {
			b.errs.entity("vaults", v, fe)
			continue
		}
		b.vaultList = append(b.vaultList, ve)
	}
	r, err := plugin.NewVaultResolver(plugin.VaultResolverOptions{Vaults: b.vaultList, LookupEnv: b.opts.LookupEnv})
	if err != nil {
		return fmt.Errorf("compile: vaults: %w", err)
	}
	b.resolver = r
	return nil
}

// deref resolves a vault reference in a referenceable field, recording a
// failure against the field at path.
func (b *builder) deref(fe *fieldErrors, path []string, v string) string {
	if !plugin.IsReference(v) {
		return v
	}
	s, err := b.resolver.Resolve(v)
	if err != nil {
		fe.add(path, err.Error())
		return ""
	}
	return s
}

func (b *builder) certificates() error {
	b.certByID = make(map[string][]*tls.Certificate)
	for i := range b.in.certificates {
		c, fe := &b.in.certificates[i].v, b.in.certificates[i].errs
		cert := b.deref(&fe, at("cert"), c.Cert)
		key := b.deref(&fe, at("key"), c.Key)
		certAlt := b.deref(&fe, at("cert_alt"), c.CertAlt)
		keyAlt := b.deref(&fe, at("key_alt"), c.KeyAlt)
		var pair []*tls.Certificate
		if len(fe) == 0 {
			if tc, err := keyPair(cert, key); err != nil {
				fe.add(at("cert"), err.Error())
			} else {
				pair = append(pair, tc)
			}
			if certAlt != "" || keyAlt != "" {
				if tc, err := keyPair(certAlt, keyAlt); err != nil {
					fe.add(at("cert_alt"), err.Error())
				} else {
					pair = append(pair, tc)
				}
			}
		}
		if len(fe) > 0 {
			b.errs.entity("certificates", c, fe)
			continue
		}
		b.certByID[c.ID] = pair
	}
	b.c.certs = newCertStore()
	for i := range b.in.snis {
		s, fe := &b.in.snis[i].v, b.in.snis[i].errs
		if len(fe) == 0 {
			if cs, ok := b.certByID[string(s.Certificate)]; !ok {
				fe.add(at("certificate"), fmt.Sprintf("certificate %q does not exist", s.Certificate))
			} else if err := b.c.certs.add(s.Name, cs); err != nil {
				fe.add(at("name"), err.Error())
			}
		}
		if len(fe) > 0 {
			b.errs.entity("snis", s, fe)
		}
	}
	b.caByID = make(map[string]*x509.Certificate)
	for i := range b.in.caCertificates {
		ca, fe := &b.in.caCertificates[i].v, b.in.caCertificates[i].errs
		c, err := parseCACert(ca.Cert)
		if err != nil {
			fe.add(at("cert"), err.Error())
		}
		if len(fe) > 0 {
			b.errs.entity("ca_certificates", ca, fe)
			continue
		}
		b.caByID[ca.ID] = c
	}
	return nil
}

func (b *builder) upstreams() error {
	targetsOf := make(map[ref][]*targetEntity)
	for i := range b.in.targets {
		t, fe := &b.in.targets[i].v, b.in.targets[i].errs
		if len(fe) == 0 && t.Upstream == "" {
			fe.add(at("upstream"), "required field missing")
		}
		if len(fe) > 0 {
			b.errs.entity("targets", t, fe)
			continue
		}
		targetsOf[t.Upstream] = append(targetsOf[t.Upstream], t)
	}
	b.upSpecs = make(map[string]*upstreamSpec)
	known := make(map[ref]bool)
	for i := range b.in.upstreams {
		u, fe := &b.in.upstreams[i].v, b.in.upstreams[i].errs
		known[ref(u.ID)] = true
		s, fe := parseUpstream(u, fe, targetsOf[ref(u.ID)])
		if len(fe) > 0 {
			b.errs.entity("upstreams", u, fe)
			continue
		}
		if _, dup := b.upSpecs[s.name]; dup {
			b.errs.one("upstreams", u, at("name"), "another upstream has this name")
			continue
		}
		b.upSpecs[s.name] = s
		b.upOrder = append(b.upOrder, s)
	}
	for up, ts := range targetsOf {
		if !known[up] {
			for _, t := range ts {
				b.errs.one("targets", t, at("upstream"), fmt.Sprintf("upstream %q does not exist", up))
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
		b.errs.collection("upstreams", err.Error())
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

// ms converts a schema timeout, in milliseconds, to a Duration.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func (b *builder) services() error {
	b.svcByID = make(map[string]*Service)
	b.disabled = make(map[string]bool)
	for i := range b.in.services {
		sv, fe := &b.in.services[i].v, b.in.services[i].errs
		if !sv.Enabled {
			b.disabled[sv.ID] = true
			continue
		}
		s := &Service{ID: sv.ID, Name: sv.Name, Protocol: sv.Protocol, Path: sv.Path, TLSVerify: sv.TLSVerify, TLSVerifyDepth: -1}
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
		s.Proxy = &proxy.Service{ID: s.ID, Name: s.Name, Protocol: proto, Host: sv.Host, Port: sv.Port,
			Retries: sv.Retries, ConnectTimeout: ms(sv.ConnectTimeout),
			WriteTimeout: ms(sv.WriteTimeout), ReadTimeout: ms(sv.ReadTimeout)}
		if sv.TLSVerify != nil {
			s.Proxy.TLSVerify = *sv.TLSVerify
		}
		// Kong's null tls_verify_depth is nginx's proxy_ssl_verify_depth
		// default, 1.
		s.Proxy.TLSVerifyDepth = 1
		if sv.TLSVerifyDepth != nil {
			s.TLSVerifyDepth = *sv.TLSVerifyDepth
			s.Proxy.TLSVerifyDepth = s.TLSVerifyDepth
		}
		for _, ca := range sv.CACertificates {
			c, ok := b.caByID[ca]
			if !ok {
				fe.add(at("ca_certificates"), fmt.Sprintf("ca_certificate %q does not exist", ca))
				continue
			}
			if s.CACertificates == nil {
				s.CACertificates = x509.NewCertPool()
			}
			s.CACertificates.AddCert(c)
			s.Proxy.CACertificates = append(s.Proxy.CACertificates, c)
		}
		if cc := string(sv.ClientCertificate); cc != "" {
			if cs, ok := b.certByID[cc]; ok {
				s.ClientCertificate = cs[0]
				s.Proxy.ClientCertificate = cs[0]
			} else {
				fe.add(at("client_certificate"), fmt.Sprintf("certificate %q does not exist", cc))
			}
		}
		if err := s.Proxy.Prepare(); err != nil {
			fe.add(nil, err.Error())
		}
		if len(fe) > 0 {
			b.errs.entity("services", sv, fe)
			continue
		}
		b.svcByID[s.ID] = s
		b.c.services = append(b.c.services, s)
	}
	return nil
}

func (b *builder) routes() error {
	ds := b.in.routes
	rs := make([]router.Route[*Route], 0, len(ds))
	byID := make(map[string]*routeEntity, len(ds))
	b.routeByID = make(map[string]*Route, len(ds))
	for i := range ds {
		r, fe := &ds[i].v, ds[i].errs
		if b.disabled[string(r.Service)] {
			continue // Kong leaves out routes of disabled services.
		}
		rt := &Route{ID: r.ID, Name: r.Name, stripPath: r.StripPath, pathHandling: r.PathHandling, preserveHost: r.PreserveHost}
		if r.Service != "" {
			rt.Service = b.svcByID[string(r.Service)]
			if rt.Service == nil {
				fe.add(at("service"), fmt.Sprintf("service %q does not exist", r.Service))
			}
		}
		if len(fe) > 0 {
			b.errs.entity("routes", r, fe)
			continue
		}
		if _, dup := b.routeByID[rt.ID]; dup {
			b.errs.one("routes", r, at("id"), "another route has this id")
			continue
		}
		for _, h := range r.Hosts {
			if _, _, err := net.SplitHostPort(h); err == nil {
				b.c.needPort = true
			}
		}
		b.routeByID[rt.ID] = rt
		byID[rt.ID] = r
		rs = append(rs, router.Route[*Route]{
			ID:                      rt.ID,
			Protocols:               r.Protocols,
			Methods:                 r.Methods,
			Hosts:                   r.Hosts,
			Paths:                   r.Paths,
			Headers:                 r.Headers,
			SNIs:                    r.SNIs,
			RegexPriority:           r.RegexPriority,
			StripPath:               r.StripPath,
			PathHandling:            r.PathHandling,
			PreserveHost:            r.PreserveHost,
			HTTPSRedirectStatusCode: r.HTTPSRedirectStatusCode,
			Value:                   rt,
		})
	}
	rtr, rerrs, err := router.Build(b.ctx, router.Options[*Route]{Routes: rs})
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	for _, re := range rerrs {
		r := byID[re.ID]
		if r == nil {
			r = &routeEntity{ID: re.ID}
		}
		b.errs.one("routes", r, nil, re.Err.Error())
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
	for i := range b.in.consumers {
		cv, fe := &b.in.consumers[i].v, b.in.consumers[i].errs
		c := plugin.Consumer{ID: cv.ID, Username: cv.Username, CustomID: cv.CustomID}
		switch {
		case c.ID == "":
			fe.add(at("id"), "required field missing")
		case b.consumerIDs[c.ID]:
			fe.add(at("id"), "another consumer has this id")
		case c.Username != "" && usernames[c.Username]:
			fe.add(at("username"), "another consumer has this username")
		case c.CustomID != "" && customIDs[c.CustomID]:
			fe.add(at("custom_id"), "another consumer has this custom_id")
		}
		if len(fe) > 0 {
			b.errs.entity("consumers", cv, fe)
			continue
		}
		b.consumerIDs[c.ID], usernames[c.Username], customIDs[c.CustomID] = true, true, true
		opts.Consumers = append(opts.Consumers, c)
	}
	b.groups = make(map[string]bool)
	for i := range b.in.consumerGroups {
		gv, fe := &b.in.consumerGroups[i].v, b.in.consumerGroups[i].errs
		g := plugin.ConsumerGroup{ID: gv.ID, Name: gv.Name}
		if g.ID == "" || b.groups[g.ID] {
			fe.add(at("id"), "missing or duplicate id")
		}
		if len(fe) > 0 {
			b.errs.entity("consumer_groups", gv, fe)
			continue
		}
		b.groups[g.ID] = true
		opts.ConsumerGroups = append(opts.ConsumerGroups, g)
	}
	for i := range b.in.consumerGroupConsumers {
		mv, fe := &b.in.consumerGroupConsumers[i].v, b.in.consumerGroupConsumers[i].errs
		m := plugin.ConsumerGroupMember{ConsumerID: string(mv.Consumer), ConsumerGroupID: string(mv.ConsumerGroup)}
		b.needConsumer(&fe, mv.Consumer)
		if !b.groups[m.ConsumerGroupID] {
			fe.add(at("consumer_group"), fmt.Sprintf("consumer group %q does not exist", m.ConsumerGroupID))
		}
		if len(fe) > 0 {
			b.errs.entity("consumer_group_consumers", mv, fe)
			continue
		}
		opts.ConsumerGroupMembers = append(opts.ConsumerGroupMembers, m)
	}
	// Credentials: each needs its consumer and a unique lookup key. Key
	// values are secrets, so they never appear in an error.
	opts.KeyAuths = credentials(b, "keyauth_credentials", b.in.keyAuths, "key", "required field missing", "another key-auth credential has this key",
		func(c *keyAuthEntity) (plugin.KeyAuthCredential, ref, string) {
			k := plugin.KeyAuthCredential{ID: c.ID, ConsumerID: string(c.Consumer), Key: c.Key}
			if c.TTL > 0 {
				k.ExpiresAt = time.Unix(schema.TTLExpiry(int64(c.TTL), int64(c.CreatedAt)), 0)
			}
			return k, c.Consumer, c.Key
		})
	opts.BasicAuths = credentials(b, "basicauth_credentials", b.in.basicAuths, "username", "missing or duplicate username", "missing or duplicate username",
		func(c *basicAuthEntity) (plugin.BasicAuthCredential, ref, string) {
			return plugin.BasicAuthCredential{ID: c.ID, ConsumerID: string(c.Consumer), Username: c.Username, Password: c.Password}, c.Consumer, c.Username
		})
	opts.JWTs = credentials(b, "jwt_secrets", b.in.jwtSecrets, "key", "missing or duplicate key", "missing or duplicate key",
		func(c *jwtSecretEntity) (plugin.JWTCredential, ref, string) {
			return plugin.JWTCredential{ID: c.ID, ConsumerID: string(c.Consumer), Key: c.Key,
				Secret: c.Secret, RSAPublicKey: c.RSAPublicKey, Algorithm: c.Algorithm}, c.Consumer, c.Key
		})
	opts.HMACAuths = credentials(b, "hmacauth_credentials", b.in.hmacAuths, "username", "missing or duplicate username", "missing or duplicate username",
		func(c *hmacAuthEntity) (plugin.HMACAuthCredential, ref, string) {
			return plugin.HMACAuthCredential{ID: c.ID, ConsumerID: string(c.Consumer), Username: c.Username, Secret: c.Secret}, c.Consumer, c.Username
		})
	for i := range b.in.acls {
		av, fe := &b.in.acls[i].v, b.in.acls[i].errs
		a := plugin.ACLGroup{ID: av.ID, ConsumerID: string(av.Consumer), Group: av.Group}
		b.needConsumer(&fe, av.Consumer)
		if a.Group == "" {
			fe.add(at("group"), "required field missing")
		}
		if len(fe) > 0 {
			b.errs.entity("acls", av, fe)
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

// credentials compiles the credentials of one kind (collection, decoded as
// ds): conv turns one into the plugin environment's credential, its
// consumer and its lookup key. The key must be present (else missing, on
// keyField) and unique among the kind's credentials that compiled (else
// dup); a credential with any error is reported and left out.
func credentials[E any, PE interface {
	*E
	entity
}, T any](b *builder, collection string, ds []decoded[E], keyField, missing, dup string, conv func(PE) (T, ref, string)) []T {
	var out []T
	seen := make(map[string]bool)
	for i := range ds {
		e, fe := PE(&ds[i].v), ds[i].errs
		c, consumerID, key := conv(e)
		b.needConsumer(&fe, consumerID)
		switch {
		case key == "":
			fe.add(at(keyField), missing)
		case seen[key]:
			fe.add(at(keyField), dup)
		}
		if len(fe) > 0 {
			b.errs.entity(collection, e, fe)
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out
}

func (b *builder) needConsumer(fe *fieldErrors, id ref) {
	if id == "" {
		fe.add(at("consumer"), "required field missing")
	} else if !b.consumerIDs[string(id)] {
		fe.add(at("consumer"), fmt.Sprintf("consumer %q does not exist", id))
	}
}

func (b *builder) keys() error {
	b.c.keySets = make(map[string]string)
	for i := range b.in.keySets {
		ks := &b.in.keySets[i].v
		if fe := b.in.keySets[i].errs; len(fe) > 0 {
			b.errs.entity("key_sets", ks, fe)
			continue
		}
		b.c.keySets[ks.ID] = ks.Name
	}
	b.c.keys = make(map[string]*Key)
	kids := make(map[string]bool) // set id + NUL + kid
	for i := range b.in.keys {
		kv, fe := &b.in.keys[i].v, b.in.keys[i].errs
		k := &Key{ID: kv.ID, Name: kv.Name, Kid: kv.Kid, SetID: string(kv.Set)}
		k.JWK = b.deref(&fe, at("jwk"), kv.JWK)
		if p := kv.PEM; p != nil {
			k.PrivateKey = b.deref(&fe, at("pem", "private_key"), p.PrivateKey)
			k.PublicKey = b.deref(&fe, at("pem", "public_key"), p.PublicKey)
		}
		if k.SetID != "" {
			if _, ok := b.c.keySets[k.SetID]; !ok {
				fe.add(at("set"), fmt.Sprintf("key set %q does not exist", k.SetID))
			}
		}
		if kids[k.SetID+"\x00"+k.Kid] {
			fe.add(at("kid"), "another key of the same key set has this kid")
		}
		if k.JWK != "" && !json.Valid([]byte(k.JWK)) {
			fe.add(at("jwk"), "not valid JSON")
		}
		if len(fe) > 0 {
			b.errs.entity("keys", kv, fe)
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
	byID := make(map[string]*pluginEntity)
	for i := range b.in.plugins {
		pv, fe := &b.in.plugins[i].v, b.in.plugins[i].errs
		p := plugin.PluginEntity{ID: pv.ID, Name: pv.Name, InstanceName: pv.InstanceName,
			Enabled: pv.Enabled, RouteID: string(pv.Route), ServiceID: string(pv.Service),
			ConsumerID: string(pv.Consumer), ConsumerGroupID: string(pv.ConsumerGroup)}
		if !p.Enabled || b.disabled[p.ServiceID] {
			continue
		}
		if p.RouteID != "" {
			if rt, ok := b.routeByID[p.RouteID]; !ok {
				fe.add(at("route"), fmt.Sprintf("route %q does not exist", p.RouteID))
			} else if rt.Service != nil && b.disabled[rt.Service.ID] {
				continue
			}
		}
		if p.ServiceID != "" && b.svcByID[p.ServiceID] == nil {
			fe.add(at("service"), fmt.Sprintf("service %q does not exist", p.ServiceID))
		}
		if p.ConsumerID != "" && !b.consumerIDs[p.ConsumerID] {
			fe.add(at("consumer"), fmt.Sprintf("consumer %q does not exist", p.ConsumerID))
		}
		if p.ConsumerGroupID != "" && !b.groups[p.ConsumerGroupID] {
			fe.add(at("consumer_group"), fmt.Sprintf("consumer group %q does not exist", p.ConsumerGroupID))
		}
		if o := pv.Ordering; o != nil {
			// Only the access phase can be reordered, as in Kong.
			p.Ordering = new(plugin.Ordering)
			if o.Before.Access != nil {
				p.Ordering.Before = map[string][]string{"access": o.Before.Access}
			}
			if o.After.Access != nil {
				p.Ordering.After = map[string][]string{"access": o.After.Access}
			}
		}
		if len(fe) == 0 {
			cfg, sfe := pluginConfig(pv, b.resolver)
			fe = append(fe, sfe...)
			p.Config = cfg
		}
		if len(fe) > 0 {
			b.errs.entity("plugins", pv, fe)
			continue
		}
		byID[p.ID] = pv
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
				pv := byID[pe.PluginID]
				if pv == nil {
					pv = &pluginEntity{ID: pe.PluginID, Name: pe.Name}
				}
				b.errs.one("plugins", pv, nil, pe.Err.Error())
				continue
			}
			b.errs.collection("plugins", e.Error())
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
// Vault references are resolved here rather than by the plugin compiler so
// that a failure names the field.
func pluginConfig(p *pluginEntity, vaults *plugin.VaultResolver) (json.RawMessage, fieldErrors) {
	cfg := any(p.Config)
	if ps, ok := schema.LookupPlugin(p.Name); ok {
		protocols := make([]any, len(p.Protocols))
		for i, s := range p.Protocols {
			protocols[i] = s
		}
		in := map[string]any{"name": p.Name, "config": p.Config, "protocols": protocols}
		for _, fk := range []struct {
			field string
			id    ref
		}{{"route", p.Route}, {"service", p.Service}, {"consumer", p.Consumer}, {"consumer_group", p.ConsumerGroup}} {
			if fk.id != "" {
				in[fk.field] = map[string]any{"id": string(fk.id)}
			}
		}
		out, _, serr := ps.Process(schema.OpCreate, in, nil)
		if serr != nil {
			return nil, schemaFieldErrors(serr)
		}
		cfg = out["config"]
	}
	var fe fieldErrors
	resolved := resolveRefs(cfg, at("config"), vaults, &fe)
	if len(fe) > 0 {
		return nil, fe
	}
	raw, err := json.Marshal(resolved)
	if err != nil {
		return nil, fieldErrors{{at("config"), err.Error()}}
	}
	return raw, nil
}

// resolveRefs returns v with every vault reference replaced by its secret,
// recording each reference that does not resolve at its path. v is not
// modified; path is only read (and copied for an error).
func resolveRefs(v any, path []string, vaults *plugin.VaultResolver, fe *fieldErrors) any {
	switch t := v.(type) {
	case string:
		if plugin.IsReference(t) {
			s, err := vaults.Resolve(t)
			if err != nil {
				fe.add(sub(path), err.Error())
				return t
			}
			return s
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = resolveRefs(e, append(path, k), vaults, fe)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = resolveRefs(e, append(path, strconv.Itoa(i)), vaults, fe)
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
	*req = router.Request{Scheme: "http", Method: r.Method, Host: r.Host, Target: h1.OriginTarget(r),
		Headers: r.Header, HTTPMajor: r.ProtoMajor}
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
// m.Service nil. A route matched over a protocol it refuses sets m.Reject
// (with the route's ids, which the proxy only records).
func (c *Compiled) Resolve(r *http.Request, m *proxy.Match) {
	mt, ok := c.Match(r)
	if !ok {
		return
	}
	if mt.Reject.Status != 0 {
		m.Reject = rejection(mt.Reject)
		// The ids say which route refused the request (for analytics);
		// the proxy answers with Reject and proxies nothing.
		m.RouteID = mt.Route.Value.ID
		if svc := mt.Route.Value.Service; svc != nil {
			m.Service = svc.Proxy
		}
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
	m.Methods = mt.Route.Methods
	strip := rt.stripPath && mt.MatchedPath != ""
	if !strip && (svc.Path == "" || svc.Path == "/") {
		// The common case: the normalized client path goes up unchanged,
		// without building a new string.
		m.Path = router.EscapePath(mt.Path)
	} else {
		m.Path = router.UpstreamPath(svc.Path, router.StripQuery(h1.OriginTarget(r)), mt.MatchedPath, rt.stripPath, rt.pathHandling)
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
