// Package identity serves the identity API: console login and logout (/v3/authenticate,
// /v3/logout), users (/v3/users), teams and their members (/v3/teams) and system accounts with
// their access tokens (/v3/system-accounts). Authentication of the other routes (tokens and the
// session cookie this package issues) lives in package api; who may call what is decided there
// too, not here.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Mounter is where the routes go: *api.API satisfies it. Mount must authenticate.
type Mounter interface {
	Mount(pattern string, h http.Handler)
	MountPublic(pattern string, h http.Handler)
	// Now is the API's clock; SessionLimits its session idle timeout and maximum age.
	Now() time.Time
	SessionLimits() (idle, maxAge time.Duration)
	// InvalidateGrants tells the authorization layer that teams or memberships changed.
	InvalidateGrants()
}

var _ Mounter = (*api.API)(nil)

// Options configure New.
type Options struct {
	Store  store.Store // required
	Logger *slog.Logger
	// Audit, if set, records logins, logouts and failed logins, which are no write of an entity
	// and so are not recorded by a write transaction. It is called after the answer is decided
	// and must not block for long.
	Audit func(ctx context.Context, e store.AuditEntry)
	// LoginLimits bound failed logins; zero fields take DefaultLoginLimits'.
	LoginLimits LoginLimits
}

// Service serves the identity routes. Build it with New and register its routes with Mount.
type Service struct {
	store   store.Store
	log     *slog.Logger
	audit   func(ctx context.Context, e store.AuditEntry)
	limiter *limiter
	// verifySlots bounds concurrent password verifications: each holds Memory KiB (19 MiB) for
	// its duration, so a burst of logins waits here instead of exhausting memory.
	verifySlots chan struct{}
	m           Mounter
	// lastPrune is the Unix second of the last sweep of ended sessions.
	lastPrune atomic.Int64
}

// New checks opts and builds the service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("identity: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: opts.Store, log: opts.Logger.With("component", "identity"), audit: opts.Audit, limiter: newLimiter(opts.LoginLimits),
		verifySlots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}, nil
}

// route is one mounted route: its ServeMux pattern and whether it needs authentication.
type route struct {
	pattern string
	public  bool
	handler func(s *Service) http.HandlerFunc
}

var routes = []route{
	{"POST /v3/authenticate", true, func(s *Service) http.HandlerFunc { return s.login }},
	{"POST /v3/logout", false, func(s *Service) http.HandlerFunc { return s.logout }},

	{"GET /v3/users", false, func(s *Service) http.HandlerFunc { return s.listUsers }},
	{"POST /v3/users", false, func(s *Service) http.HandlerFunc { return s.createUser }},
	{"GET /v3/users/me", false, func(s *Service) http.HandlerFunc { return s.getMe }},
	{"PATCH /v3/users/me", false, func(s *Service) http.HandlerFunc { return s.patchMe }},
	{"GET /v3/users/{userId}", false, func(s *Service) http.HandlerFunc { return s.getUser }},
	{"PATCH /v3/users/{userId}", false, func(s *Service) http.HandlerFunc { return s.patchUser }},
	{"DELETE /v3/users/{userId}", false, func(s *Service) http.HandlerFunc { return s.deleteUser }},

	{"GET /v3/teams", false, func(s *Service) http.HandlerFunc { return s.listTeams }},
	{"POST /v3/teams", false, func(s *Service) http.HandlerFunc { return s.createTeam }},
	{"GET /v3/teams/{teamId}", false, func(s *Service) http.HandlerFunc { return s.getTeam }},
	{"PATCH /v3/teams/{teamId}", false, func(s *Service) http.HandlerFunc { return s.patchTeam }},
	{"DELETE /v3/teams/{teamId}", false, func(s *Service) http.HandlerFunc { return s.deleteTeam }},
	{"GET /v3/teams/{teamId}/users", false, func(s *Service) http.HandlerFunc { return s.listMembers(store.KindUser) }},
	{"POST /v3/teams/{teamId}/users", false, func(s *Service) http.HandlerFunc { return s.addMember(store.KindUser) }},
	{"DELETE /v3/teams/{teamId}/users/{userId}", false, func(s *Service) http.HandlerFunc { return s.removeMember(store.KindUser, "userId") }},
	{"GET /v3/teams/{teamId}/system-accounts", false, func(s *Service) http.HandlerFunc { return s.listMembers(store.KindSystemAccount) }},
	{"POST /v3/teams/{teamId}/system-accounts", false, func(s *Service) http.HandlerFunc { return s.addMember(store.KindSystemAccount) }},
	{"DELETE /v3/teams/{teamId}/system-accounts/{accountId}", false, func(s *Service) http.HandlerFunc { return s.removeMember(store.KindSystemAccount, "accountId") }},

	{"GET /v3/system-accounts", false, func(s *Service) http.HandlerFunc { return s.listAccounts }},
	{"POST /v3/system-accounts", false, func(s *Service) http.HandlerFunc { return s.createAccount }},
	{"GET /v3/system-accounts/{accountId}", false, func(s *Service) http.HandlerFunc { return s.getAccount }},
	{"PATCH /v3/system-accounts/{accountId}", false, func(s *Service) http.HandlerFunc { return s.patchAccount }},
	{"DELETE /v3/system-accounts/{accountId}", false, func(s *Service) http.HandlerFunc { return s.deleteAccount }},
	{"GET /v3/system-accounts/{accountId}/access-tokens", false, func(s *Service) http.HandlerFunc { return s.listAccountTokens }},
	{"POST /v3/system-accounts/{accountId}/access-tokens", false, func(s *Service) http.HandlerFunc { return s.createAccountToken }},
	{"GET /v3/system-accounts/{accountId}/access-tokens/{tokenId}", false, func(s *Service) http.HandlerFunc { return s.getAccountToken }},
	{"DELETE /v3/system-accounts/{accountId}/access-tokens/{tokenId}", false, func(s *Service) http.HandlerFunc { return s.revokeAccountToken }},
}

// Patterns returns the ServeMux patterns Mount registers, public ones included.
func Patterns() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.pattern
	}
	return out
}

// Mount registers the identity routes on m: POST /v3/authenticate without authentication, every
// other route behind m's authentication. See Patterns for the list.
func (s *Service) Mount(m Mounter) {
	s.m = m
	for _, rt := range routes {
		if rt.public {
			m.MountPublic(rt.pattern, rt.handler(s))
		} else {
			m.Mount(rt.pattern, rt.handler(s))
		}
	}
}

func (s *Service) now() time.Time { return s.m.Now().UTC() }

// caller returns the authenticated principal; Mount guarantees one on authenticated routes.
func caller(r *http.Request) api.Principal {
	p, _ := api.PrincipalFrom(r.Context())
	return p
}

// fail answers the identity routes' own errors, and hands the rest to api.Fail.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrPredefinedTeam):
		msg := strings.TrimSuffix(err.Error(), ": "+store.ErrPredefinedTeam.Error())
		err = &api.Problem{Status: http.StatusBadRequest, Detail: upperFirst(msg) + ": the predefined teams Organization Admin and Runtime Admin always exist under their names."}
	case errors.Is(err, store.ErrLastOrgAdmin):
		err = &api.Problem{Status: http.StatusConflict, Detail: "The organization needs at least one active user in the Organization Admin team: add another before removing this one."}
	}
	api.Fail(w, r, s.log, err)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func badRequest(detail string, params ...api.InvalidParameter) *api.Problem {
	return &api.Problem{Status: http.StatusBadRequest, Detail: detail, InvalidParameters: params}
}

func notFound(what, id string) *api.Problem {
	return &api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("No %s with id %q.", what, id)}
}

// recordAudit hands e to the Audit hook with the request's details filled in.
func (s *Service) recordAudit(w http.ResponseWriter, r *http.Request, e store.AuditEntry) {
	if s.audit == nil {
		return
	}
	e.Timestamp = s.now()
	e.Method, e.Path = r.Method, r.URL.Path
	e.RequestID = w.Header().Get("X-Request-Id")
	e.SourceAddr = sourceAddress(r)
	e.UserAgent = api.ClientText(r.UserAgent(), maxUserAgent)
	s.audit(context.WithoutCancel(r.Context()), e)
}

// maxUserAgent bounds the user agent kept with a session or an audit entry.
const maxUserAgent = 512

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
