// Package api serves the control plane's HTTP API: the Konnect-shaped management API
// (/v2/runtime-groups, tokens, organizations), health and metrics. Later packages mount the
// per-group Kong Admin API and node catalogue on the same server through Mount.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/metrics/labels"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure New.
type Options struct {
	Store  store.Store // required
	Logger *slog.Logger
	// Region is the deployment this control plane serves; groups of other regions are invisible.
	Region string // required
	// ClusterEndpoint and TelemetryEndpoint are the URLs runtime instances connect to, reported in
	// each group's config.
	ClusterEndpoint   string
	TelemetryEndpoint string
	// Now returns the current time; tests may replace it.
	Now func() time.Time
	// OnGroupDeleted, if set, is called after a runtime group was deleted (its instances are then
	// told they are orphaned).
	OnGroupDeleted func(groupID string)
	// InstanceCounts, if set, returns per group id how many runtime instances are in each status
	// ("in_sync", "behind", …); the counts are shown with each group.
	InstanceCounts func(ctx context.Context, groupIDs []string) map[string]map[string]int
	// Traffic, if set, returns per group id its traffic over the last 24 hours, for all the
	// listed groups at once; it is shown with each group as requests_24h and error_rate_24h.
	// Groups absent from the map had no requests.
	Traffic func(ctx context.Context, groupIDs []string) map[string]GroupTraffic
	// Backup, if set, returns a backup of one group (its name, description, labels, pinned
	// certificates and declarative configuration, in the format `gantry backup` writes, so that
	// `gantry restore` reads it). DELETE of a group with ?backup=true answers it before the group
	// goes; without Backup that query is refused.
	Backup func(ctx context.Context, g store.RuntimeGroup) (any, error)
	// GrantsTTL is how long an identity's roles are reused before being read again; 0 means
	// DefaultGrantsTTL.
	GrantsTTL time.Duration
	// SessionIdleTimeout ends a console session that was not used for this long; zero takes
	// DefaultSessionIdleTimeout.
	SessionIdleTimeout time.Duration
	// SessionMaxAge ends a console session this long after login, however it is used; zero
	// takes DefaultSessionMaxAge.
	SessionMaxAge time.Duration
}

// GroupTraffic is a group's traffic over the last 24 hours, as shown with the group.
type GroupTraffic struct {
	// Requests24h counts the requests of the 24 hour buckets ending with the current hour.
	Requests24h int64 `json:"requests_24h"`
	// ErrorRate24h is the share (0–1) of those answered 4XX or 5XX; null without requests.
	ErrorRate24h *float64 `json:"error_rate_24h"`
}

// API is the control plane's HTTP handler. Build it with New.
type API struct {
	store  store.Store
	log    *slog.Logger
	region string
	opts   Options
	now    func() time.Time

	// auditLog is the store's audit log when it keeps one (see audited); nil records nothing.
	auditLog store.AuditLog

	mux    *http.ServeMux
	grants grantsCache
	// routesMu guards routes, the patterns mounted behind authentication.
	routesMu sync.Mutex
	routes   []string
	reg      *prometheus.Registry
	reqs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New checks opts and builds the API with every management route registered.
func New(opts Options) (*API, error) {
	if opts.Store == nil {
		return nil, errors.New("api: Store is required")
	}
	if opts.Region == "" {
		return nil, errors.New("api: Region is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GrantsTTL < 0 {
		return nil, errors.New("api: GrantsTTL must not be negative")
	}
	if opts.GrantsTTL == 0 {
		opts.GrantsTTL = DefaultGrantsTTL
	}
	a := &API{
		store: opts.Store, log: opts.Logger.With("component", "api"), region: opts.Region, opts: opts, now: opts.Now,
		mux: http.NewServeMux(), reg: prometheus.NewRegistry(),
	}
	a.auditLog, _ = opts.Store.(store.AuditLog)
	a.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gantry_http_requests_total", Help: "HTTP requests answered by the control plane API, by route pattern, method (OTHER for unknown ones) and status code.",
	}, []string{"route", "method", "code"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gantry_http_request_duration_seconds", Help: "Time to answer control plane API requests, by route pattern and method.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	}, []string{"route", "method"})
	a.reg.MustRegister(a.reqs, a.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))

	a.Mount("GET /v2/organizations/me", http.HandlerFunc(a.getOrganization))
	a.Mount("GET /v2/users/me", http.HandlerFunc(a.getMe))
	a.Mount("GET /v2/users/me/personal-access-tokens", http.HandlerFunc(a.listTokens))
	a.Mount("POST /v2/users/me/personal-access-tokens", http.HandlerFunc(a.createToken))
	a.Mount("GET /v2/users/me/personal-access-tokens/{tokenId}", http.HandlerFunc(a.getToken))
	a.Mount("DELETE /v2/users/me/personal-access-tokens/{tokenId}", http.HandlerFunc(a.revokeToken))
	for _, base := range GroupBasePaths {
		a.Mount("GET "+base, http.HandlerFunc(a.listGroups))
		a.Mount("POST "+base, http.HandlerFunc(a.createGroup))
		a.Mount("GET "+base+"/{groupId}", http.HandlerFunc(a.getGroup))
		a.Mount("PATCH "+base+"/{groupId}", http.HandlerFunc(a.patchGroup))
		a.Mount("DELETE "+base+"/{groupId}", http.HandlerFunc(a.deleteGroup))
	}
	a.mountRoles()
	return a, nil
}

// GroupBasePaths are the two names of the runtime-group collection: Gantry's and Konnect's
// current one.
var GroupBasePaths = []string{"/v2/runtime-groups", "/v2/control-planes"}

// Mount registers h at pattern (ServeMux syntax) behind authentication and the policy's
// authorization of the pattern's rule (see routeRules). Unsafe requests carry a pending audit
// entry, attached after authentication (the actor is known) and before authorization (so that
// refusals are recorded; see audited).
func (a *API) Mount(pattern string, h http.Handler) {
	a.routesMu.Lock()
	a.routes = append(a.routes, pattern)
	a.routesMu.Unlock()
	a.mux.Handle(pattern, a.authenticate(a.audited(a.authorize(pattern, h))))
}

// MountPublic registers h at pattern (ServeMux syntax) without authentication, for routes that
// hold no secret (the runtime binary and the install script); they still get request ids,
// metrics and problem+json for unknown routes from Handler.
func (a *API) MountPublic(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
}

// Registry returns the Prometheus registry served at /metrics, for other components' metrics.
func (a *API) Registry() *prometheus.Registry { return a.reg }

// Handler returns the root handler: request ids, metrics and problem+json for unknown routes.
// The request metrics are labelled only with bounded values (the registered route pattern or
// "unmatched", the method or OTHER, the status code or "other"; see package labels), so no
// client can add series by inventing methods or paths.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if _, pattern := a.mux.Handler(r); pattern == "" {
			a.unrouted(rec, r)
		} else {
			a.mux.ServeHTTP(rec, r)
		}
		// r.Pattern is a registered pattern, never the path the client sent.
		route := r.Pattern
		if route == "" {
			route = labels.Unmatched
		} else if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		method := labels.Method(r.Method)
		a.reqs.WithLabelValues(route, method, labels.StatusCode(rec.status)).Inc()
		a.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// unrouted answers requests that match no pattern with problem+json: 405 with Allow when the path
// exists for other methods, else 404.
func (a *API) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		WriteProblem(w, r, problem(http.StatusMethodNotAllowed, "Method "+r.Method+" is not allowed here; allowed: "+probe.header.Get("Allow")+"."))
		return
	}
	WriteProblem(w, r, problem(http.StatusNotFound, "No API route matches "+r.Method+" "+r.URL.Path+"."))
}

// headerProbe captures what ServeMux's built-in 404/405 handler would answer, without sending it.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type requestIDKey struct{}

// validRequestID reports whether a client's X-Request-Id may be kept: 1 to 128 bytes of
// printable ASCII, so that it can be echoed, logged and stored as text unchanged.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return ""
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := a.store.Ready(ctx); err != nil {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": a.store.Dialect()})
}

// Principal is who an authenticated request acts for.
type Principal struct {
	OrgID string
	// UserID is the acting user's or system account's id (both live in the users table).
	UserID string
	// Kind is store.KindUser or store.KindSystemAccount.
	Kind string
	// Name is the user's email, or the system account's name, as the audit log shows it.
	Name string
	// Method is how the request authenticated: store.AuthSession, store.AuthPersonalToken or
	// store.AuthSystemToken.
	Method string
	// TokenID is the token's id for token authentication, "" for sessions.
	TokenID string
	// SessionID is the session's id (the hash of its cookie) for session authentication.
	SessionID string
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller of a request that passed Mount's authentication.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// authenticate requires a valid bearer token (a user's personal access token or a system
// account's token) or, without an Authorization header, a valid session cookie (see
// sessionPrincipal, which also checks the CSRF token of unsafe requests). Every token failure is
// the same 401 so that callers cannot tell unknown tokens from revoked ones or from tokens of a
// deactivated identity by the answer (the log says which).
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unauthorized := func(reason, logReason string) {
			a.log.InfoContext(r.Context(), "refused request", "reason", logReason, "path", r.URL.Path, "request_id", requestID(r))
			w.Header().Set("WWW-Authenticate", `Bearer realm="gantry"`)
			WriteProblem(w, r, problem(http.StatusUnauthorized, reason))
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
				p, ok := a.sessionPrincipal(w, r, c.Value)
				if ok {
					next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
				}
				return
			}
			unauthorized("Authentication is required: send Authorization: Bearer <token>, or log in with POST /v3/authenticate.", "no Authorization header")
			return
		}
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			unauthorized("The Authorization header must be 'Bearer <token>'.", "malformed Authorization header")
			return
		}
		t, u, err := a.store.LookupTokenUser(r.Context(), auth.HashToken(strings.TrimSpace(tok)))
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				a.fail(w, r, err)
				return
			}
			unauthorized("The token is invalid, expired or revoked.", "unknown token")
			return
		}
		now := a.now()
		if !t.Active(now) || !u.Active {
			why := "expired token"
			switch {
			case t.RevokedAt != nil:
				why = "revoked token"
			case !u.Active:
				why = "token of an inactive " + identityKind(u)
			}
			unauthorized("The token is invalid, expired or revoked.", why)
			return
		}
		// Record use at most once a minute per token, to keep reads from turning into writes.
		if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
			if err := a.store.TouchToken(r.Context(), t.ID, now); err != nil {
				a.log.WarnContext(r.Context(), "record token use", "err", err)
			}
		}
		method := store.AuthPersonalToken
		if identityKind(u) == store.KindSystemAccount {
			method = store.AuthSystemToken
		}
		p := Principal{OrgID: t.OrgID, UserID: t.UserID, Kind: identityKind(u), Name: identityName(u), Method: method, TokenID: t.ID}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// principal returns the caller; Mount guarantees it exists.
func principal(r *http.Request) Principal {
	p, _ := PrincipalFrom(r.Context())
	return p
}

func (a *API) getOrganization(w http.ResponseWriter, r *http.Request) {
	org, err := a.store.GetOrganization(r.Context(), principal(r).OrgID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"id": org.ID, "name": org.Name, "created_at": org.CreatedAt, "updated_at": org.UpdatedAt})
}

func (a *API) getMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	WriteJSON(w, http.StatusOK, map[string]any{"id": p.UserID, "organization_id": p.OrgID})
}
