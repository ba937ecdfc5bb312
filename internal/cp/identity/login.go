package identity

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/password"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// LoginLimits bound failed logins. Within each Window, an account (the username sent) may fail
// PerAccount times and a source address PerAddress times; further attempts are answered 429 with
// Retry-After until the window that counted them ends, whether or not the password is right. A
// successful login clears its account's count, not its address's.
type LoginLimits struct {
	PerAccount int
	PerAddress int
	Window     time.Duration
	// MaxEntries bounds how many accounts, and separately how many addresses, are tracked; when
	// full, ended windows are dropped first, then the oldest.
	MaxEntries int
}

// DefaultLoginLimits allow five failures per account and twenty per address in fifteen minutes,
// tracking at most 10,000 of each.
var DefaultLoginLimits = LoginLimits{PerAccount: 5, PerAddress: 20, Window: 15 * time.Minute, MaxEntries: 10000}

type loginCounter struct {
	failures int
	start    time.Time
}

// limiter counts failed logins in fixed windows, in memory: each control plane process counts
// its own, so with several processes behind one address the bound multiplies by their number.
type limiter struct {
	lim LoginLimits
	// mu guards accounts and addresses.
	mu        sync.Mutex
	accounts  map[string]*loginCounter
	addresses map[string]*loginCounter
}

func newLimiter(l LoginLimits) *limiter {
	d := DefaultLoginLimits
	if l.PerAccount <= 0 {
		l.PerAccount = d.PerAccount
	}
	if l.PerAddress <= 0 {
		l.PerAddress = d.PerAddress
	}
	if l.Window <= 0 {
		l.Window = d.Window
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	return &limiter{lim: l, accounts: map[string]*loginCounter{}, addresses: map[string]*loginCounter{}}
}

// blocked returns how long until account and address may try again, or 0 when they may now.
func (l *limiter) blocked(now time.Time, account, address string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	check := func(m map[string]*loginCounter, key string, limit int) {
		c := m[key]
		if c == nil || now.Sub(c.start) >= l.lim.Window || c.failures < limit {
			return
		}
		wait = max(wait, c.start.Add(l.lim.Window).Sub(now))
	}
	check(l.accounts, account, l.lim.PerAccount)
	check(l.addresses, address, l.lim.PerAddress)
	return wait
}

// fail counts a failed login of account from address.
func (l *limiter) fail(now time.Time, account, address string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(l.accounts, account, now)
	l.count(l.addresses, address, now)
}

func (l *limiter) count(m map[string]*loginCounter, key string, now time.Time) {
	c := m[key]
	if c != nil && now.Sub(c.start) < l.lim.Window {
		c.failures++
		return
	}
	if c == nil && len(m) >= l.lim.MaxEntries {
		l.evict(m, now)
	}
	m[key] = &loginCounter{failures: 1, start: now}
}

// evict makes room in a full map: ended windows go first, else the oldest entry.
func (l *limiter) evict(m map[string]*loginCounter, now time.Time) {
	var oldest string
	var oldestStart time.Time
	for k, c := range m {
		if now.Sub(c.start) >= l.lim.Window {
			delete(m, k)
			continue
		}
		if oldest == "" || c.start.Before(oldestStart) {
			oldest, oldestStart = k, c.start
		}
	}
	if len(m) >= l.lim.MaxEntries && oldest != "" {
		delete(m, oldest)
	}
}

// succeed clears account's failures.
func (l *limiter) succeed(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, account)
}

// sourceAddress is the request's peer address without its port. Forwarding headers are not
// trusted: a client could set them to dodge the per-address limit.
func sourceAddress(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

type loginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

// maxEmail bounds emails (RFC 5321's path limit).
const maxEmail = 254

// loginFailedDetail is the one answer to every failed login, so that it does not tell an unknown
// account from a wrong password or a deactivated user.
const loginFailedDetail = "The email or password is not correct."

// pruneInterval is how often a login sweeps ended sessions from the database.
const pruneInterval = 10 * time.Minute

// login checks a user's email and password and starts a console session: the cookie carries the
// session's secret, the answer the user and the session's CSRF token.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var bad []api.InvalidParameter
	if req.Username == nil || *req.Username == "" {
		bad = append(bad, api.InvalidParameter{Field: "username", Rule: "required", Reason: "is required: the user's email", Source: "body"})
	}
	if req.Password == nil || *req.Password == "" {
		bad = append(bad, api.InvalidParameter{Field: "password", Rule: "required", Reason: "is required", Source: "body"})
	}
	if len(bad) > 0 {
		s.fail(w, r, badRequest("The login request is not valid.", bad...))
		return
	}
	account := api.ClientText(strings.ToLower(strings.TrimSpace(*req.Username)), maxEmail)
	addr := sourceAddress(r)
	now := s.now()
	if wait := s.limiter.blocked(now, account, addr); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		s.log.WarnContext(r.Context(), "login refused: too many failed attempts", "account", account, "source", addr)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.recordAudit(w, r, store.AuditEntry{ID: uuid.NewString(), ActorType: "anonymous", ActorName: account, Action: "login_failed", EntityType: "sessions", Status: http.StatusTooManyRequests})
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusTooManyRequests, Detail: "Too many failed logins for this account or from this address; try again in " + strconv.Itoa(secs) + " seconds."})
		return
	}
	user, ok, err := s.checkPassword(r, account, *req.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ok {
		s.limiter.fail(now, account, addr)
		s.log.InfoContext(r.Context(), "failed login", "account", account, "source", addr)
		e := store.AuditEntry{ID: uuid.NewString(), ActorType: "anonymous", ActorName: account, Action: "login_failed", EntityType: "sessions", Status: http.StatusUnauthorized}
		if user.ID != "" {
			e.OrgID = user.OrgID
		}
		s.recordAudit(w, r, e)
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusUnauthorized, Detail: loginFailedDetail})
		return
	}
	s.limiter.succeed(account)
	_, maxAge := s.m.SessionLimits()
	secret := api.NewSessionSecret()
	se := store.Session{
		ID: api.SessionID(secret), OrgID: user.OrgID, UserID: user.ID, CSRFToken: api.NewSessionSecret(),
		SourceAddress: addr, UserAgent: api.ClientText(r.UserAgent(), maxUserAgent),
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(maxAge),
	}
	if err := s.store.CreateSession(r.Context(), se); err != nil {
		s.fail(w, r, err)
		return
	}
	s.pruneSessions(r, now)
	api.SetSessionCookie(w, r, secret, se.ExpiresAt, now)
	s.log.InfoContext(r.Context(), "login", "user", user.ID, "source", addr)
	s.recordAudit(w, r, store.AuditEntry{ID: uuid.NewString(), OrgID: user.OrgID, ActorType: store.KindUser, ActorID: user.ID, ActorName: user.Email,
		AuthMethod: store.AuthSession, Action: "login", EntityType: "sessions", Status: http.StatusOK})
	view := userView(user)
	view.CSRFToken = se.CSRFToken
	view.SessionExpiresAt = &se.ExpiresAt
	api.WriteJSON(w, http.StatusOK, view)
}

// checkPassword finds the user with that email whose password matches. ok is false for an
// unknown email, a wrong password, a user without a password and a deactivated user alike; user
// is then the user of that email, if any, for the audit log. Unknown emails cost a hash too, so
// the answer's timing does not tell them apart.
func (s *Service) checkPassword(r *http.Request, email, pw string) (user store.User, ok bool, err error) {
	users, err := s.store.UsersByEmail(r.Context(), email)
	if err != nil {
		return store.User{}, false, err
	}
	select {
	case s.verifySlots <- struct{}{}:
		defer func() { <-s.verifySlots }()
	case <-r.Context().Done():
		return store.User{}, false, r.Context().Err()
	}
	if len(users) == 0 {
		password.VerifyDummy(pw)
		return store.User{}, false, nil
	}
	for _, u := range users {
		if u.PasswordHash == "" {
			password.VerifyDummy(pw)
			continue
		}
		err := password.Verify(pw, u.PasswordHash)
		switch {
		case err == nil:
			return u, u.Active, nil
		case !errors.Is(err, password.ErrMismatch):
			s.log.ErrorContext(r.Context(), "unreadable password hash", "user", u.ID, "err", err)
		}
	}
	return users[0], false, nil
}

// pruneSessions deletes ended sessions, at most once per pruneInterval.
func (s *Service) pruneSessions(r *http.Request, now time.Time) {
	last := s.lastPrune.Load()
	if now.Unix()-last < int64(pruneInterval/time.Second) || !s.lastPrune.CompareAndSwap(last, now.Unix()) {
		return
	}
	idle, _ := s.m.SessionLimits()
	if n, err := s.store.DeleteSessions(r.Context(), now, now.Add(-idle)); err != nil {
		s.log.WarnContext(r.Context(), "delete ended sessions", "err", err)
	} else if n > 0 {
		s.log.InfoContext(r.Context(), "deleted ended sessions", "count", n)
	}
}

// logout ends the request's session and clears its cookie. A request authenticated by a token
// has no session; it is answered the same (204) and nothing changes.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	api.ClearSessionCookie(w, r)
	if p.Method == store.AuthSession {
		if err := s.store.DeleteSession(r.Context(), p.SessionID); err != nil {
			s.fail(w, r, err)
			return
		}
		s.recordAudit(w, r, store.AuditEntry{ID: uuid.NewString(), OrgID: p.OrgID, ActorType: p.Kind, ActorID: p.UserID, ActorName: p.Name,
			AuthMethod: p.Method, Action: "logout", EntityType: "sessions", Status: http.StatusNoContent})
	}
	w.WriteHeader(http.StatusNoContent)
}
