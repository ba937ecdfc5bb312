// Package adminapi serves each runtime group's gateway configuration through an API that behaves
// like Kong Gateway 3.x's Admin API, mounted per group at
// /v2/runtime-groups/{groupId}/core-entities/ (and /v2/control-planes/{groupId}/core-entities/), so
// that decK, go-kong and other Kong tools work against a group unchanged.
//
// Every entity type is served by the same generic handlers, driven by internal/config/schema:
// collections, entities by id or endpoint key, nested collections for every foreign key, Kong's
// verbs, paging, tag filters and error bodies. Writes go through internal/cp/entitystore, one
// transaction per request, so each committed write request bumps the group's revision once.
package adminapi

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// DefaultMaxBodyBytes bounds request bodies when Options.MaxBodyBytes is zero (8 MiB, enough for
// certificates with long chains and large plugin configurations).
const DefaultMaxBodyBytes = 8 << 20

// GroupLookup resolves the runtime group a request addresses, enforcing that the caller may see
// it. (*api.API).LookupGroup has this signature; its errors for unknown groups are *api.Problem.
type GroupLookup func(r *http.Request, id string) (store.RuntimeGroup, error)

// Options configure New.
type Options struct {
	// Entities is the configuration store; required.
	Entities *entitystore.Store
	// Groups resolves {groupId}; required.
	Groups GroupLookup
	// Logger receives unexpected errors; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (bytes); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Hostname and NodeID are reported by GET / ; empty values take the OS hostname and a random
	// id.
	Hostname string
	NodeID   string
}

// Handler serves the Admin API of every runtime group. It is safe for concurrent use; it keeps no
// state between requests beyond its immutable options.
type Handler struct {
	es       *entitystore.Store
	groups   GroupLookup
	log      *slog.Logger
	maxBody  int64
	hostname string
	nodeID   string
}

// New checks opts and builds the handler.
func New(opts Options) (*Handler, error) {
	if opts.Entities == nil {
		return nil, errors.New("adminapi: Entities is required")
	}
	if opts.Groups == nil {
		return nil, errors.New("adminapi: Groups is required")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, errors.New("adminapi: MaxBodyBytes must not be negative")
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.NodeID == "" {
		opts.NodeID = uuid.NewString()
	}
	return &Handler{
		es: opts.Entities, groups: opts.Groups, log: opts.Logger.With("component", "adminapi"),
		maxBody: opts.MaxBodyBytes, hostname: opts.Hostname, nodeID: opts.NodeID,
	}, nil
}

// Mount registers h on a under both group base paths (api.GroupBasePaths), behind a's bearer-token
// authentication.
func Mount(a *api.API, h *Handler) {
	for _, base := range api.GroupBasePaths {
		a.Mount(base+"/{groupId}/core-entities", h)
		a.Mount(base+"/{groupId}/core-entities/", h)
	}
}

// Register builds a handler on es with a's group lookup and mounts it: the one call the server
// makes.
func Register(a *api.API, es *entitystore.Store, log *slog.Logger) error {
	h, err := New(Options{Entities: es, Groups: a.LookupGroup, Logger: log})
	if err != nil {
		return err
	}
	Mount(a, h)
	return nil
}

const mountSegment = "/core-entities"

// call is one request being answered.
type call struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	group string
	// base is the URL path up to and including /core-entities; next links start with it.
	base string
	segs []string
}

// endpoint maps the methods a path accepts to their handlers.
type endpoint map[string]func(c *call) error

// ServeHTTP answers one Admin API request. The path must contain /core-entities after the group
// id, as Mount arranges.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g, err := h.groups(r, r.PathValue("groupId"))
	if err != nil {
		// Unknown groups stay management API problems; everything inside speaks Kong.
		var p *api.Problem
		if errors.As(err, &p) {
			api.WriteProblem(w, r, p)
			return
		}
		h.writeError(w, r, err)
		return
	}
	path := r.URL.Path
	i := strings.Index(path, mountSegment)
	if i < 0 {
		h.writeError(w, r, errNotFound)
		return
	}
	base, rest := path[:i+len(mountSegment)], path[i+len(mountSegment):]
	var segs []string
	for _, s := range strings.Split(rest, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	c := &call{h: h, w: w, r: r, group: g.ID, base: base, segs: segs}
	ep := h.route(segs)
	if ep == nil {
		h.writeError(w, r, errNotFound)
		return
	}
	if r.Method == http.MethodOptions {
		allow := ep.allow()
		w.Header().Set("Allow", allow)
		w.Header().Set("Access-Control-Allow-Methods", allow)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	fn := ep[method]
	if fn == nil {
		w.Header().Set("Allow", ep.allow())
		h.writeError(w, r, errMethodNotAllowed)
		return
	}
	if err := fn(c); err != nil {
		h.writeError(w, r, err)
	}
}

func (ep endpoint) allow() string {
	ms := make([]string, 0, len(ep)+1)
	for m := range ep {
		ms = append(ms, m)
	}
	ms = append(ms, http.MethodOptions)
	if ep[http.MethodGet] != nil {
		ms = append(ms, http.MethodHead)
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// ok writes a 200 (or status) JSON answer.
func (c *call) reply(status int, v any) error {
	writeJSON(c.w, status, v)
	return nil
}

func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// relPath is the request path below base, for next links of nested lists.
func (c *call) relPath(segs ...string) string {
	return c.base + "/" + strings.Join(segs, "/")
}
