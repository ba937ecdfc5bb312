package plugin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
)

// Meta identifies the plugin entity a factory is building. RouteID,
// ServiceID, ConsumerID and ConsumerGroupID are empty when unscoped.
type Meta struct {
	ID              string
	Name            string
	InstanceName    string
	RouteID         string
	ServiceID       string
	ConsumerID      string
	ConsumerGroupID string
}

// Store answers the entity lookups plugins need. Implementations are
// immutable for the lifetime of one configuration generation, safe for
// concurrent use, and return nil (or an empty slice) when nothing matches.
// Lookups are on the request path and must not allocate.
type Store interface {
	ConsumerByID(id string) *Consumer
	ConsumerByUsername(username string) *Consumer
	ConsumerByCustomID(customID string) *Consumer
	// ConsumerGroupsOf returns the consumer's groups sorted by name.
	ConsumerGroupsOf(consumerID string) []*ConsumerGroup
	KeyAuthByKey(key string) *KeyAuthCredential
	BasicAuthByUsername(username string) *BasicAuthCredential
	JWTByKey(key string) *JWTCredential
	HMACAuthByUsername(username string) *HMACAuthCredential
	// ACLGroupsOf returns the consumer's acl groups in configuration order.
	ACLGroupsOf(consumerID string) []string
	// KeysByKid returns the keys entities whose kid is kid, in
	// configuration order (one per key set at most, and one in no set).
	KeysByKid(kid string) []*Key
}

// Env is what a plugin may read when it is built. A plugin may keep it and
// use the [Store] lookups at request time.
type Env interface {
	Store
	// Plugin describes the entity being built.
	Plugin() Meta
	// Logger is never nil.
	Logger() *slog.Logger
	// State survives configuration swaps; see [StateRegistry].
	State() *StateRegistry
	// Resolve resolves a vault reference such as {vault://env/NAME}.
	Resolve(ref string) (string, error)
}

// StateRegistry holds plugin state that must survive configuration swaps
// (rate-limit counters, cache stores, connection pools), keyed by a string
// the plugin chooses (typically its plugin instance id, or a key shared on
// purpose). It is safe for concurrent use.
type StateRegistry struct {
	mu    sync.Mutex // guards items
	items map[string]any
}

// NewStateRegistry returns an empty registry.
func NewStateRegistry() *StateRegistry {
	return &StateRegistry{items: make(map[string]any)}
}

// LoadOrCreate returns the state stored under key, creating it with create
// when absent. create runs under the registry lock and must be quick; an
// error from it is returned and nothing is stored.
func (s *StateRegistry) LoadOrCreate(key string, create func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.items[key]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	s.items[key] = v
	return v, nil
}

// Prune removes and closes (when they implement io.Closer) the states whose
// key keep rejects. Call it after a configuration swap with the keys the new
// generation uses.
func (s *StateRegistry) Prune(keep func(key string) bool) error {
	s.mu.Lock()
	var drop []any
	for k, v := range s.items {
		if !keep(k) {
			drop = append(drop, v)
			delete(s.items, k)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, v := range drop {
		if c, ok := v.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Keys returns the stored keys, sorted.
func (s *StateRegistry) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.items))
	for k := range s.items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MemEnvOptions are the entities a [MemEnv] is built from.
type MemEnvOptions struct {
	Consumers            []Consumer
	ConsumerGroups       []ConsumerGroup
	ConsumerGroupMembers []ConsumerGroupMember
	KeyAuths             []KeyAuthCredential
	BasicAuths           []BasicAuthCredential
	JWTs                 []JWTCredential
	HMACAuths            []HMACAuthCredential
	ACLs                 []ACLGroup
	Vaults               []VaultEntity
	// Keys are the keys entities; KeysByKid indexes them.
	Keys []Key
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// State defaults to a new registry; pass the previous generation's to
	// keep counters across swaps.
	State *StateRegistry
	// LookupEnv reads the process environment for env vaults; defaults to
	// os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// MemEnv is an in-memory [Env] built from plain entity slices, with maps for
// every lookup. It is immutable after [NewMemEnv] and safe for concurrent
// use.
type MemEnv struct {
	logger *slog.Logger
	state  *StateRegistry
	vault  *VaultResolver

	consumers        map[string]*Consumer
	consumersByName  map[string]*Consumer
	consumersByCID   map[string]*Consumer
	groupsOf         map[string][]*ConsumerGroup
	keyAuths         map[string]*KeyAuthCredential
	basicAuths       map[string]*BasicAuthCredential
	jwts             map[string]*JWTCredential
	hmacAuths        map[string]*HMACAuthCredential
	aclGroupsOf      map[string][]string
	consumerGroupIDs map[string]*ConsumerGroup
	keysByKid        map[string][]*Key
}

var _ Env = (*MemEnv)(nil)

// NewMemEnv indexes the entities. Duplicate unique keys (consumer username
// or custom_id, key-auth key, basic-auth/hmac-auth username, jwt key) and
// references to missing consumers or groups are errors.
func NewMemEnv(opts MemEnvOptions) (*MemEnv, error) {
	e := &MemEnv{
		logger:           opts.Logger,
		state:            opts.State,
		consumers:        make(map[string]*Consumer, len(opts.Consumers)),
		consumersByName:  make(map[string]*Consumer),
		consumersByCID:   make(map[string]*Consumer),
		groupsOf:         make(map[string][]*ConsumerGroup),
		keyAuths:         make(map[string]*KeyAuthCredential, len(opts.KeyAuths)),
		basicAuths:       make(map[string]*BasicAuthCredential, len(opts.BasicAuths)),
		jwts:             make(map[string]*JWTCredential, len(opts.JWTs)),
		hmacAuths:        make(map[string]*HMACAuthCredential, len(opts.HMACAuths)),
		aclGroupsOf:      make(map[string][]string),
		consumerGroupIDs: make(map[string]*ConsumerGroup),
		keysByKid:        make(map[string][]*Key),
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.state == nil {
		e.state = NewStateRegistry()
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var err error
	if e.vault, err = NewVaultResolver(VaultResolverOptions{Vaults: opts.Vaults, LookupEnv: lookup}); err != nil {
		return nil, err
	}
	for i := range opts.Consumers {
		c := &opts.Consumers[i]
		if c.ID == "" {
			return nil, fmt.Errorf("consumer %d: missing id", i)
		}
		if _, dup := e.consumers[c.ID]; dup {
			return nil, fmt.Errorf("consumer %s: duplicate id", c.ID)
		}
		e.consumers[c.ID] = c
		if c.Username != "" {
			if _, dup := e.consumersByName[c.Username]; dup {
				return nil, fmt.Errorf("consumer %s: duplicate username %q", c.ID, c.Username)
			}
			e.consumersByName[c.Username] = c
		}
		if c.CustomID != "" {
			if _, dup := e.consumersByCID[c.CustomID]; dup {
				return nil, fmt.Errorf("consumer %s: duplicate custom_id %q", c.ID, c.CustomID)
			}
			e.consumersByCID[c.CustomID] = c
		}
	}
	needConsumer := func(kind, id, consumerID string) error {
		if _, ok := e.consumers[consumerID]; !ok {
			return fmt.Errorf("%s %s: consumer %q does not exist", kind, id, consumerID)
		}
		return nil
	}
	for i := range opts.ConsumerGroups {
		g := &opts.ConsumerGroups[i]
		if _, dup := e.consumerGroupIDs[g.ID]; dup {
			return nil, fmt.Errorf("consumer group %s: duplicate id", g.ID)
		}
		e.consumerGroupIDs[g.ID] = g
	}
	for _, m := range opts.ConsumerGroupMembers {
		if err := needConsumer("consumer group member", m.ConsumerGroupID, m.ConsumerID); err != nil {
			return nil, err
		}
		g, ok := e.consumerGroupIDs[m.ConsumerGroupID]
		if !ok {
			return nil, fmt.Errorf("consumer group member: group %q does not exist", m.ConsumerGroupID)
		}
		e.groupsOf[m.ConsumerID] = append(e.groupsOf[m.ConsumerID], g)
	}
	for _, gs := range e.groupsOf {
		sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	}
	for i := range opts.KeyAuths {
		k := &opts.KeyAuths[i]
		if err := needConsumer("key-auth credential", k.ID, k.ConsumerID); err != nil {
			return nil, err
		}
		if _, dup := e.keyAuths[k.Key]; dup {
			return nil, fmt.Errorf("key-auth credential %s: duplicate key", k.ID)
		}
		e.keyAuths[k.Key] = k
	}
	for i := range opts.BasicAuths {
		b := &opts.BasicAuths[i]
		if err := needConsumer("basic-auth credential", b.ID, b.ConsumerID); err != nil {
			return nil, err
		}
		if _, dup := e.basicAuths[b.Username]; dup {
			return nil, fmt.Errorf("basic-auth credential %s: duplicate username %q", b.ID, b.Username)
		}
		e.basicAuths[b.Username] = b
	}
	for i := range opts.JWTs {
		j := &opts.JWTs[i]
		if err := needConsumer("jwt credential", j.ID, j.ConsumerID); err != nil {
			return nil, err
		}
		if _, dup := e.jwts[j.Key]; dup {
			return nil, fmt.Errorf("jwt credential %s: duplicate key %q", j.ID, j.Key)
		}
		e.jwts[j.Key] = j
	}
	for i := range opts.HMACAuths {
		h := &opts.HMACAuths[i]
		if err := needConsumer("hmac-auth credential", h.ID, h.ConsumerID); err != nil {
			return nil, err
		}
		if _, dup := e.hmacAuths[h.Username]; dup {
			return nil, fmt.Errorf("hmac-auth credential %s: duplicate username %q", h.ID, h.Username)
		}
		e.hmacAuths[h.Username] = h
	}
	for i := range opts.Keys {
		k := &opts.Keys[i]
		for _, o := range e.keysByKid[k.Kid] {
			if o.SetID == k.SetID {
				return nil, fmt.Errorf("key %s: kid %q is already used in its key set by key %s", k.ID, k.Kid, o.ID)
			}
		}
		e.keysByKid[k.Kid] = append(e.keysByKid[k.Kid], k)
	}
	for _, a := range opts.ACLs {
		if err := needConsumer("acl", a.ID, a.ConsumerID); err != nil {
			return nil, err
		}
		e.aclGroupsOf[a.ConsumerID] = append(e.aclGroupsOf[a.ConsumerID], a.Group)
	}
	return e, nil
}

// Plugin returns the zero Meta: a MemEnv describes no plugin by itself;
// [Compile] wraps it per entity.
func (e *MemEnv) Plugin() Meta { return Meta{} }

// Logger implements [Env].
func (e *MemEnv) Logger() *slog.Logger { return e.logger }

// State implements [Env].
func (e *MemEnv) State() *StateRegistry { return e.state }

// Resolve implements [Env].
func (e *MemEnv) Resolve(ref string) (string, error) { return e.vault.Resolve(ref) }

// ConsumerByID implements [Store].
func (e *MemEnv) ConsumerByID(id string) *Consumer { return e.consumers[id] }

// ConsumerByUsername implements [Store].
func (e *MemEnv) ConsumerByUsername(u string) *Consumer { return e.consumersByName[u] }

// ConsumerByCustomID implements [Store].
func (e *MemEnv) ConsumerByCustomID(id string) *Consumer { return e.consumersByCID[id] }

// ConsumerGroupsOf implements [Store].
func (e *MemEnv) ConsumerGroupsOf(consumerID string) []*ConsumerGroup {
	return e.groupsOf[consumerID]
}

// KeyAuthByKey implements [Store].
func (e *MemEnv) KeyAuthByKey(key string) *KeyAuthCredential { return e.keyAuths[key] }

// BasicAuthByUsername implements [Store].
func (e *MemEnv) BasicAuthByUsername(u string) *BasicAuthCredential { return e.basicAuths[u] }

// JWTByKey implements [Store].
func (e *MemEnv) JWTByKey(key string) *JWTCredential { return e.jwts[key] }

// HMACAuthByUsername implements [Store].
func (e *MemEnv) HMACAuthByUsername(u string) *HMACAuthCredential { return e.hmacAuths[u] }

// ACLGroupsOf implements [Store].
func (e *MemEnv) ACLGroupsOf(consumerID string) []string { return e.aclGroupsOf[consumerID] }

// KeysByKid implements [Store].
func (e *MemEnv) KeysByKid(kid string) []*Key { return e.keysByKid[kid] }

// metaEnv scopes a base Env to one plugin entity.
type metaEnv struct {
	Env
	meta Meta
}

func (m metaEnv) Plugin() Meta { return m.meta }

// LoadConsumer finds a consumer by id, then by username, as Kong does for
// the `anonymous` setting of auth plugins.
func LoadConsumer(s Store, idOrUsername string) *Consumer {
	if c := s.ConsumerByID(idOrUsername); c != nil {
		return c
	}
	return s.ConsumerByUsername(idOrUsername)
}
