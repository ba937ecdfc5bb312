package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
)

// Scoping levels, best first. Kong Enterprise's order with consumer groups:
// consumer+route+service > group+route+service > consumer+route >
// consumer+service > group+route > group+service > route+service > consumer
// > group > route > service > global. Without consumer groups this is OSS
// Kong's order.
const (
	levelConsumerRouteService = iota
	levelGroupRouteService
	levelConsumerRoute
	levelConsumerService
	levelGroupRoute
	levelGroupService
	levelRouteService
	levelConsumer
	levelGroup
	levelRoute
	levelService
	levelGlobal
	levelNone
)

// instance is a built plugin entity with its phase methods looked up once.
type instance struct {
	meta     Meta
	priority int
	ordering *Ordering
	impl     Instance

	rewrite  Rewriter
	access   Accesser
	header   HeaderFilterer
	body     BodyFilterer
	wantBody BodyWanter
	log      LogHandler
}

// EntityError is a plugin entity that failed to build.
type EntityError struct {
	// PluginID and Name identify the entity.
	PluginID string
	Name     string
	Err      error
}

// Error implements error, naming the plugin.
func (e *EntityError) Error() string {
	return fmt.Sprintf("plugin %s (%s): %v", e.Name, e.PluginID, e.Err)
}

// Unwrap returns Err.
func (e *EntityError) Unwrap() error { return e.Err }

// CompileOptions are the inputs of [Compile].
type CompileOptions struct {
	// Plugins are all configured plugin entities.
	Plugins []PluginEntity
	// Routes are the routes chains are precomputed for.
	Routes []RouteRef
	// Env is required.
	Env Env
	// Registry defaults to [DefaultRegistry].
	Registry *Registry
}

// Set is a compiled plugin configuration: every instance built, and one
// [Chain] per route. It is immutable and safe for concurrent use; [Set.Close]
// releases the instances' resources once no request uses it.
type Set struct {
	env       Env
	logger    *slog.Logger
	instances []*instance
	// rewriters are the global instances with a rewrite phase, in priority
	// order.
	rewriters []*instance
	routes    map[string]*Chain
	noRoute   *Chain
}

// Compile builds every enabled plugin entity and precomputes the chain of
// each route. Any entity that fails to build, and any dynamic-ordering cycle,
// is reported (entity errors as [*EntityError], joined) and no Set is
// returned: a chain missing, say, an auth plugin must not serve.
func Compile(ctx context.Context, opts CompileOptions) (*Set, error) {
	if opts.Env == nil {
		return nil, errors.New("plugin compile: Env is required")
	}
	reg := opts.Registry
	if reg == nil {
		reg = DefaultRegistry
	}
	s := &Set{env: opts.Env, logger: opts.Env.Logger(), routes: make(map[string]*Chain, len(opts.Routes))}
	var errs []error
	seen := make(map[string]bool)
	for i := range opts.Plugins {
		if err := ctx.Err(); err != nil {
			_ = s.Close() // the cancellation is the error to report
			return nil, err
		}
		p := &opts.Plugins[i]
		if !p.Enabled {
			continue
		}
		in, err := build(p, reg, opts.Env)
		if err != nil {
			errs = append(errs, &EntityError{PluginID: p.ID, Name: p.Name, Err: err})
			continue
		}
		scope := p.Name + "\x00" + p.RouteID + "\x00" + p.ServiceID + "\x00" + p.ConsumerID + "\x00" + p.ConsumerGroupID
		if seen[scope] {
			errs = append(errs, &EntityError{PluginID: p.ID, Name: p.Name, Err: errors.New("another plugin of this name has the same scope")})
			_ = closeInstance(in) // the duplicate is the error to report
			continue
		}
		seen[scope] = true
		s.instances = append(s.instances, in)
	}
	sort.SliceStable(s.instances, func(i, j int) bool { return runsBefore(s.instances[i], s.instances[j]) })
	for _, in := range s.instances {
		if in.rewrite != nil && isGlobal(in.meta) {
			s.rewriters = append(s.rewriters, in)
		}
	}
	if len(errs) == 0 {
		var err error
		if s.noRoute, err = s.buildChain(RouteRef{}); err != nil {
			errs = append(errs, err)
		}
		for _, r := range opts.Routes {
			ch, err := s.buildChain(r)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", r.ID, err))
				continue
			}
			s.routes[r.ID] = ch
		}
	}
	if len(errs) > 0 {
		_ = s.Close() // the build errors are the ones to report
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func build(p *PluginEntity, reg *Registry, env Env) (*instance, error) {
	r, ok := reg.Lookup(p.Name)
	if !ok {
		return nil, fmt.Errorf("plugin %q is not available", p.Name)
	}
	if p.ConsumerID != "" && p.ConsumerGroupID != "" {
		return nil, errors.New("a plugin cannot be scoped to both a consumer and a consumer group")
	}
	if p.ConsumerID != "" && p.Ordering != nil && (len(p.Ordering.Before) > 0 || len(p.Ordering.After) > 0) {
		return nil, errors.New("dynamic ordering is not supported for consumer-scoped plugins")
	}
	cfg, err := resolveConfig(p.Config, env.Resolve)
	if err != nil {
		return nil, err
	}
	meta := Meta{ID: p.ID, Name: p.Name, InstanceName: p.InstanceName, RouteID: p.RouteID,
		ServiceID: p.ServiceID, ConsumerID: p.ConsumerID, ConsumerGroupID: p.ConsumerGroupID}
	impl, err := r.New(cfg, metaEnv{Env: env, meta: meta})
	if err != nil {
		return nil, err
	}
	in := &instance{meta: meta, priority: r.Priority, ordering: p.Ordering, impl: impl}
	in.rewrite, _ = impl.(Rewriter)
	in.access, _ = impl.(Accesser)
	in.header, _ = impl.(HeaderFilterer)
	in.body, _ = impl.(BodyFilterer)
	in.wantBody, _ = impl.(BodyWanter)
	in.log, _ = impl.(LogHandler)
	return in, nil
}

// runsBefore is Kong's order: higher priority first, ties by name
// descending.
func runsBefore(a, b *instance) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.meta.Name > b.meta.Name
}

func isGlobal(m Meta) bool {
	return m.RouteID == "" && m.ServiceID == "" && m.ConsumerID == "" && m.ConsumerGroupID == ""
}

// level returns how specifically m matches a route and service, or
// levelNone when it does not apply.
func level(m Meta, routeID, serviceID string) int {
	if m.RouteID != "" && m.RouteID != routeID {
		return levelNone
	}
	if m.ServiceID != "" && m.ServiceID != serviceID {
		return levelNone
	}
	r, s := m.RouteID != "", m.ServiceID != ""
	switch {
	case m.ConsumerID != "":
		switch {
		case r && s:
			return levelConsumerRouteService
		case r:
			return levelConsumerRoute
		case s:
			return levelConsumerService
		}
		return levelConsumer
	case m.ConsumerGroupID != "":
		switch {
		case r && s:
			return levelGroupRouteService
		case r:
			return levelGroupRoute
		case s:
			return levelGroupService
		}
		return levelGroup
	}
	switch {
	case r && s:
		return levelRouteService
	case r:
		return levelRoute
	case s:
		return levelService
	}
	return levelGlobal
}

type ranked struct {
	in    *instance
	level int
}

// slot is one plugin name in a chain with every candidate instance for it,
// indexed so a request resolves it with at most a few map lookups.
type slot struct {
	name string
	// def is the best candidate that does not depend on the consumer.
	def ranked
	// byConsumer and byGroup hold the best consumer- and group-scoped
	// candidate per consumer id and group id; nil when there are none.
	byConsumer map[string]ranked
	byGroup    map[string]ranked
}

// resolve picks the instance of this slot for the request, or nil.
func (s *slot) resolve(c *Ctx) *instance {
	best := s.def
	if c.Consumer != nil {
		if s.byConsumer != nil {
			if r, ok := s.byConsumer[c.Consumer.ID]; ok && r.level < best.level {
				best = r
			}
		}
		if s.byGroup != nil {
			// Groups are sorted by name, so on equal levels the group
			// first in alphabetical order wins.
			for _, g := range c.ConsumerGroups {
				if r, ok := s.byGroup[g.ID]; ok && r.level < best.level {
					best = r
				}
			}
		}
	}
	return best.in
}

// Chain is the precomputed plugin chain of one route: one slot per plugin
// name that may apply, in priority order, and the access-phase order after
// dynamic ordering. It is immutable and safe for concurrent use.
type Chain struct {
	set       *Set
	routeID   string
	serviceID string
	// routeName and serviceName are what Access copies into the Ctx.
	routeName   string
	serviceName string
	slots       []slot
	// accessOrder lists slot indexes in access-phase order.
	accessOrder []int
}

func (s *Set) buildChain(r RouteRef) (*Chain, error) {
	ch := &Chain{set: s, routeID: r.ID, serviceID: r.ServiceID, routeName: r.Name, serviceName: r.ServiceName}
	if ch.routeName == "" {
		ch.routeName = r.ID
	}
	index := make(map[string]int)
	for _, in := range s.instances { // priority order
		lv := level(in.meta, r.ID, r.ServiceID)
		if lv == levelNone {
			continue
		}
		i, ok := index[in.meta.Name]
		if !ok {
			i = len(ch.slots)
			index[in.meta.Name] = i
			ch.slots = append(ch.slots, slot{name: in.meta.Name, def: ranked{level: levelNone}})
		}
		sl := &ch.slots[i]
		rk := ranked{in: in, level: lv}
		switch {
		case in.meta.ConsumerID != "":
			if sl.byConsumer == nil {
				sl.byConsumer = make(map[string]ranked)
			}
			if cur, ok := sl.byConsumer[in.meta.ConsumerID]; !ok || lv < cur.level {
				sl.byConsumer[in.meta.ConsumerID] = rk
			}
		case in.meta.ConsumerGroupID != "":
			if sl.byGroup == nil {
				sl.byGroup = make(map[string]ranked)
			}
			if cur, ok := sl.byGroup[in.meta.ConsumerGroupID]; !ok || lv < cur.level {
				sl.byGroup[in.meta.ConsumerGroupID] = rk
			}
		default:
			if lv < sl.def.level {
				sl.def = rk
			}
		}
	}
	order, err := accessOrder(ch.slots)
	if err != nil {
		return nil, err
	}
	ch.accessOrder = order
	return ch, nil
}

// accessOrder applies dynamic ordering to the priority order of slots.
// Constraints come from the consumer-independent
// instance of each slot; names not in the chain are ignored.
func accessOrder(slots []slot) ([]int, error) {
	n := len(slots)
	index := make(map[string]int, n)
	for i := range slots {
		index[slots[i].name] = i
	}
	succ := make([][]int, n)
	edges := 0
	addEdge := func(from, to int) {
		succ[from] = append(succ[from], to)
		edges++
	}
	for i := range slots {
		in := slots[i].def.in
		if in == nil || in.ordering == nil {
			continue
		}
		for _, name := range in.ordering.Before["access"] {
			if j, ok := index[name]; ok && j != i {
				addEdge(i, j)
			}
		}
		for _, name := range in.ordering.After["access"] {
			if j, ok := index[name]; ok && j != i {
				addEdge(j, i)
			}
		}
	}
	order := make([]int, 0, n)
	if edges == 0 {
		for i := range slots {
			order = append(order, i)
		}
		return order, nil
	}
	// Walk in priority order; before emitting a plugin, emit everything
	// that must run before it. A plugin asked to run before another thus
	// moves up to just ahead of it, and the rest keep priority order.
	pred := make([][]int, n)
	for from, tos := range succ {
		for _, to := range tos {
			pred[to] = append(pred[to], from)
		}
	}
	for i := range pred {
		sort.Ints(pred[i])
	}
	const (
		unvisited = iota
		visiting
		emitted
	)
	state := make([]int, n)
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case emitted:
			return nil
		case visiting:
			return fmt.Errorf("dynamic ordering has a cycle involving plugin %s", slots[i].name)
		}
		state[i] = visiting
		for _, p := range pred[i] {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[i] = emitted
		order = append(order, i)
		return nil
	}
	for i := 0; i < n; i++ {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Route returns the chain of a route given to [Compile]; an unknown route
// gets the chain of requests that matched no route (global plugins only).
func (s *Set) Route(routeID string) *Chain {
	if ch, ok := s.routes[routeID]; ok {
		return ch
	}
	return s.noRoute
}

// NoRoute returns the chain for requests that matched no route.
func (s *Set) NoRoute() *Chain { return s.noRoute }

// Rewrite runs the rewrite phase of global plugins. A short-circuit here
// skips routing and access; the caller then runs [Chain.HeaderFilter] and
// [Chain.Log] of the no-route chain.
func (s *Set) Rewrite(c *Ctx) {
	c.store = s.env
	for _, in := range s.rewriters {
		if c.exited {
			return
		}
		if err := in.rewrite.Rewrite(c); err != nil {
			s.fail(c, in, "rewrite", err)
		}
	}
}

func (s *Set) fail(c *Ctx, in *instance, phase string, err error) {
	s.logger.Error("plugin failed", "plugin", in.meta.Name, "plugin_id", in.meta.ID, "phase", phase, "error", err)
	if phase == "access" || phase == "rewrite" {
		c.Error(500, "An unexpected error occurred", nil)
	}
}

// Close closes every instance implementing io.Closer.
func (s *Set) Close() error {
	var errs []error
	for _, in := range s.instances {
		if err := closeInstance(in); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func closeInstance(in *instance) error {
	if c, ok := in.impl.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Access runs the access phase: for each plugin in access order it resolves
// the instance for the request's route, service and current consumer
// (consumer-scoped instances only apply once an earlier plugin
// authenticated), and runs it. After a short-circuit the remaining plugins
// are still collected so their header and log phases run. It sets
// c.RouteID, c.ServiceID, c.RouteName and c.ServiceName from the chain.
func (ch *Chain) Access(c *Ctx) {
	c.chain = ch
	c.store = ch.set.env
	c.RouteID, c.ServiceID = ch.routeID, ch.serviceID
	c.RouteName, c.ServiceName = ch.routeName, ch.serviceName
	n := len(ch.slots)
	if cap(c.picked) < n {
		c.picked = make([]*instance, n)
	} else {
		c.picked = c.picked[:n]
	}
	for _, i := range ch.accessOrder {
		in := ch.slots[i].resolve(c)
		c.picked[i] = in
		if in == nil || in.access == nil || c.exited {
			continue
		}
		if err := in.access.Access(c); err != nil {
			ch.set.fail(c, in, "access", err)
		}
	}
}

// collected reports whether c went through this chain's access phase.
func (ch *Chain) collected(c *Ctx) bool {
	return c.chain == ch && len(c.picked) == len(ch.slots)
}

// HeaderFilter applies headers set during access to c.Response.Header and
// runs the header phase of collected plugins in priority order. The caller
// sets c.Response.Status and Header first (unless a plugin exited).
func (ch *Chain) HeaderFilter(c *Ctx) {
	c.applyPending()
	if !ch.collected(c) {
		return
	}
	for _, in := range c.picked {
		if in != nil && in.header != nil {
			if err := in.header.HeaderFilter(c); err != nil {
				ch.set.fail(c, in, "header_filter", err)
			}
		}
	}
}

// WantsBody reports whether some collected plugin needs the response body
// buffered in c.Response.Body before [Chain.BodyFilter].
func (ch *Chain) WantsBody(c *Ctx) bool {
	if !ch.collected(c) {
		return false
	}
	for _, in := range c.picked {
		if in != nil && in.body != nil && (in.wantBody == nil || in.wantBody.WantsBody(c)) {
			return true
		}
	}
	return false
}

// BodyFilter runs the body phase of collected plugins in priority order.
func (ch *Chain) BodyFilter(c *Ctx) {
	if !ch.collected(c) {
		return
	}
	for _, in := range c.picked {
		if in != nil && in.body != nil && (in.wantBody == nil || in.wantBody.WantsBody(c)) {
			if err := in.body.BodyFilter(c); err != nil {
				ch.set.fail(c, in, "body_filter", err)
			}
		}
	}
}

// Log runs the log phase of collected plugins in priority order.
func (ch *Chain) Log(c *Ctx) {
	if !ch.collected(c) {
		return
	}
	for _, in := range c.picked {
		if in != nil && in.log != nil {
			in.log.Log(c)
		}
	}
}

// Plugins returns the names of the plugins that may run on this chain, in
// access order; for tests and diagnostics.
func (ch *Chain) Plugins() []string {
	names := make([]string, 0, len(ch.accessOrder))
	for _, i := range ch.accessOrder {
		names = append(names, ch.slots[i].name)
	}
	return names
}

// Picked returns the plugin ids collected for c, in priority order; for
// tests and diagnostics.
func (ch *Chain) Picked(c *Ctx) []string {
	var ids []string
	if !ch.collected(c) {
		return nil
	}
	for _, in := range c.picked {
		if in != nil {
			ids = append(ids, in.meta.ID)
		}
	}
	return ids
}
