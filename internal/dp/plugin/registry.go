package plugin

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
)

// Instance is a built plugin. It implements any subset of the phase
// interfaces ([Rewriter], [Accesser], [HeaderFilterer], [BodyFilterer],
// [BodyWanter], [LogHandler]) and optionally io.Closer, which is called when
// its configuration generation is closed. It is shared by concurrent
// requests.
type Instance any

// Factory builds an instance from a configuration that already holds every
// schema default, with vault references already resolved. Every
// configuration error must be returned here, never at request time.
type Factory func(cfg json.RawMessage, env Env) (Instance, error)

// Rewriter runs in the rewrite phase, before routing; only global plugins
// get it.
type Rewriter interface {
	Rewrite(c *Ctx) error
}

// Accesser runs in the access phase. It may short-circuit with
// [Ctx.Exit]/[Ctx.Error]. A returned error becomes a 500 response.
type Accesser interface {
	Access(c *Ctx) error
}

// HeaderFilterer runs once the response status and headers are known
// (upstream or exit response) and may change c.Response.Status and
// c.Response.Header.
type HeaderFilterer interface {
	HeaderFilter(c *Ctx) error
}

// BodyFilterer transforms the buffered response body in c.Response.Body.
type BodyFilterer interface {
	BodyFilter(c *Ctx) error
}

// BodyWanter lets a [BodyFilterer] say, after the header phase, whether it
// needs the body of this response; without it a BodyFilterer always does.
type BodyWanter interface {
	WantsBody(c *Ctx) bool
}

// LogHandler runs after the response was sent. It must not block and must
// copy anything it keeps: the Ctx is reused after the phase returns.
type LogHandler interface {
	Log(c *Ctx)
}

// Registration is one plugin type.
type Registration struct {
	// Name is the plugin name used in configuration.
	Name string
	// Priority orders plugins: higher runs first (Kong's PRIORITY).
	Priority int
	// New builds instances.
	New Factory
}

// Registry maps plugin names to factories. The zero value is not usable;
// use [NewRegistry] or the process-wide [DefaultRegistry].
type Registry struct {
	mu     sync.RWMutex // guards byName
	byName map[string]Registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: make(map[string]Registration)} }

// DefaultRegistry holds the bundled plugins, which register themselves in
// init().
var DefaultRegistry = NewRegistry()

// Register adds a plugin to [DefaultRegistry]; it panics on a duplicate
// name, which is a programming error.
func Register(name string, priority int, factory Factory) {
	if err := DefaultRegistry.Add(Registration{Name: name, Priority: priority, New: factory}); err != nil {
		panic(err)
	}
}

// Add registers a plugin type.
func (r *Registry) Add(reg Registration) error {
	if reg.Name == "" || reg.New == nil {
		return fmt.Errorf("plugin registration needs a name and a factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byName[reg.Name]; dup {
		return fmt.Errorf("plugin %q registered twice", reg.Name)
	}
	r.byName[reg.Name] = reg
	return nil
}

// Lookup returns the registration of name.
func (r *Registry) Lookup(name string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.byName[name]
	return reg, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
