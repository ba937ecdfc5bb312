package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Console sessions: POST /v3/authenticate (package identity) stores a session row and sets the
// session cookie; authenticate accepts the cookie on every route mounted with Mount.
const (
	// SessionCookie names the cookie that carries a console session's secret.
	SessionCookie = "gantry_session"
	// CSRFHeader carries the session's CSRF token on unsafe requests authenticated by the
	// session cookie.
	CSRFHeader = "X-CSRF-Token"
	// DefaultSessionIdleTimeout ends a session that was not used for this long.
	DefaultSessionIdleTimeout = 30 * time.Minute
	// DefaultSessionMaxAge ends a session this long after login, however it is used.
	DefaultSessionMaxAge = 12 * time.Hour
	// sessionTouchInterval is how often a session's last use is written: at most once a minute,
	// so that reads do not all turn into writes. A session may therefore end up to this much
	// before its idle timeout has fully passed since its last use.
	sessionTouchInterval = time.Minute
)

// SessionLimits returns the idle timeout and the maximum age of console sessions.
func (a *API) SessionLimits() (idle, maxAge time.Duration) {
	idle, maxAge = a.opts.SessionIdleTimeout, a.opts.SessionMaxAge
	if idle <= 0 {
		idle = DefaultSessionIdleTimeout
	}
	if maxAge <= 0 {
		maxAge = DefaultSessionMaxAge
	}
	return idle, maxAge
}

// Now returns the API's current time (Options.Now), for packages that mount routes on it.
func (a *API) Now() time.Time { return a.now() }

// NewSessionSecret returns a fresh random secret for a session cookie or a CSRF token: 32 bytes,
// base64url.
func NewSessionSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: system random source failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SessionID returns the id a session is stored under: the hex SHA-256 of its cookie secret.
func SessionID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SetSessionCookie sends the session cookie: HttpOnly, SameSite=Lax, Path=/, Secure when the
// request came over TLS, expiring with the session.
func SetSessionCookie(w http.ResponseWriter, r *http.Request, secret string, expires time.Time, now time.Time) {
	// Secure follows the request: a cookie marked Secure would never come back over plain HTTP.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure is set for TLS requests, see above
		Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
		Expires: expires, MaxAge: max(int(expires.Sub(now).Seconds()), 1),
	})
}

// ClearSessionCookie tells the browser to drop the session cookie.
func ClearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", //nolint:gosec // as SetSessionCookie
		Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: -1})
}

// unsafeMethod reports whether a request may change state and so needs the CSRF token when
// authenticated by cookie.
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// sessionPrincipal authenticates a request by its session cookie's secret. On failure it has
// answered the request and returns false: 401 for an unknown, expired or idle session or an
// inactive user (the cookie is cleared), 403 for an unsafe request without the right CSRF token.
func (a *API) sessionPrincipal(w http.ResponseWriter, r *http.Request, secret string) (Principal, bool) {
	ctx := r.Context()
	refuse := func(logReason string) {
		a.log.InfoContext(ctx, "refused request", "reason", logReason, "path", r.URL.Path, "request_id", requestID(r))
		ClearSessionCookie(w, r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="gantry"`)
		WriteProblem(w, r, problem(http.StatusUnauthorized, "The session has ended or is not valid: log in again (POST /v3/authenticate)."))
	}
	id := SessionID(secret)
	se, u, err := a.store.LookupSession(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			refuse("unknown session")
		} else {
			a.fail(w, r, err)
		}
		return Principal{}, false
	}
	now := a.now()
	idle, _ := a.SessionLimits()
	expired, idled := !now.Before(se.ExpiresAt), now.Sub(se.LastSeenAt) >= idle
	if expired || idled || !u.Active {
		why := "inactive user"
		switch {
		case expired:
			why = "session past its maximum age"
		case idled:
			why = "session idle too long"
		}
		if expired || idled {
			if err := a.store.DeleteSession(context.WithoutCancel(ctx), id); err != nil {
				a.log.WarnContext(ctx, "delete ended session", "err", err)
			}
		}
		refuse(why)
		return Principal{}, false
	}
	if unsafeMethod(r.Method) {
		tok := r.Header.Get(CSRFHeader)
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(se.CSRFToken)) != 1 {
			detail := "This request changes state and is authenticated by the session cookie, so it needs the session's CSRF token in the " + CSRFHeader + " header (from POST /v3/authenticate or GET /v3/users/me)."
			if tok != "" {
				detail = "The " + CSRFHeader + " header does not match this session's CSRF token (from POST /v3/authenticate or GET /v3/users/me)."
			}
			a.log.InfoContext(ctx, "refused request", "reason", "missing or wrong CSRF token", "path", r.URL.Path, "request_id", requestID(r))
			WriteProblem(w, r, problem(http.StatusForbidden, detail))
			return Principal{}, false
		}
	}
	if now.Sub(se.LastSeenAt) >= sessionTouchInterval {
		if err := a.store.TouchSession(ctx, id, now); err != nil {
			a.log.WarnContext(ctx, "record session use", "err", err)
		}
	}
	return Principal{OrgID: u.OrgID, UserID: u.ID, Kind: identityKind(u), Name: identityName(u), Method: store.AuthSession, SessionID: id}, true
}

// identityKind returns u's kind, KindUser for rows from before kinds existed.
func identityKind(u store.User) string {
	if u.Kind == "" {
		return store.KindUser
	}
	return u.Kind
}

// identityName is the name the audit log shows for u: a user's email (its name when it has
// none), a system account's name.
func identityName(u store.User) string {
	if u.Kind != store.KindSystemAccount && u.Email != "" {
		return u.Email
	}
	return u.Name
}
