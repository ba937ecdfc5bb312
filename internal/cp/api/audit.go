package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/redact"
)

// Audit trail of requests. Every authenticated request with an unsafe method (POST, PUT, PATCH,
// DELETE) carries a pending store.AuditEntry in its context, filled here with what the request
// says (actor, authentication method and token, method, path, request id, source address, user
// agent). The write paths complete it (action, group, entity, before and after) and insert it in
// the same transaction as their change (sqlstore.Store.RecordAudit), so an entry exists exactly
// when a change committed.
//
// Status. The entry is inserted before the handler answers, so the write records the status a
// successful write of its kind answers (POST 201, DELETE 204, others 200, or what the write path
// says). When the handler then answers another status, the entry is corrected after the answer;
// a process that dies in between leaves the predicted status.
//
// Failures. A request that fails writes nothing, and so records nothing, except a request
// refused with 403: that is recorded as its own entry (action "denied", status 403, the group of
// its route if any) outside any transaction, because attempts to do what one may not are part of
// the trail.
// Requests refused with 401 are not recorded: they name no actor, and recording them would let
// anyone fill the log; failed logins are recorded by the login endpoint itself.

// RequestAudit returns an audit entry describing r: the actor of its principal (when it passed
// authentication), its method, path, request id, source address and user agent, and the current
// time. Handlers of events outside a write transaction (logins, logouts) complete it with Action
// (and, for a login, the actor) and append it with store.AuditLog.AppendAudit.
func RequestAudit(r *http.Request) store.AuditEntry {
	e := store.AuditEntry{
		Timestamp: time.Now().UTC(),
		Method:    r.Method,
		// A key-auth credential may be addressed by its key: the path is redacted too.
		Path:      ClientText(redact.Path(r.URL.Path), maxAuditPath),
		RequestID: requestID(r),
		SourceAddr: func() string {
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				return host
			}
			return r.RemoteAddr
		}(),
		UserAgent: ClientText(r.UserAgent(), maxAuditUserAgent),
	}
	if p, ok := PrincipalFrom(r.Context()); ok {
		e.OrgID, e.ActorID, e.ActorName, e.AuthMethod, e.TokenID = p.OrgID, p.UserID, p.Name, p.Method, p.TokenID
		e.ActorType = p.Kind
		if e.ActorType == "" {
			e.ActorType = store.KindUser
		}
	}
	return e
}

// Bounds of the client-chosen text an audit entry keeps, in bytes.
const (
	maxAuditPath      = 2048
	maxAuditUserAgent = 512
)

// ClientText makes client-chosen bytes (a header, a path, a name) fit a text column: invalid
// UTF-8 is replaced (PostgreSQL refuses it, which would fail the write the text belongs to), and
// the result is cut to at most n bytes, between characters.
func ClientText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// audited attaches the pending audit entry to unsafe requests and, after the answer, corrects
// its status or records a refusal (see above). It sits after authentication, so the actor is
// known, and before authorization, so refusals pass through it.
func (a *API) audited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.auditLog == nil || !unsafeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		e := RequestAudit(r)
		rec := &auditRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(store.WithPendingAudit(r.Context(), &e)))
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		// The answer is sent: what follows must not depend on the client still being there.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		switch {
		case e.ID != "" && e.Status != status:
			if err := a.auditLog.SetAuditStatus(ctx, e.ID, status); err != nil {
				a.log.WarnContext(ctx, "cannot correct the status of an audit entry", "entry", e.ID, "status", status, "err", err)
			}
		case e.ID == "" && status == http.StatusForbidden:
			// A refused request names its group when its route has one (a group the caller may
			// not see answers 404, so a 403 never reveals one).
			e.Action, e.Status, e.GroupID = store.ActionDenied, status, r.PathValue("groupId")
			if err := a.auditLog.AppendAudit(ctx, e); err != nil {
				a.log.WarnContext(ctx, "cannot record a refused request in the audit log", "request_id", e.RequestID, "err", err)
			}
		}
	})
}

// auditRecorder remembers the status a handler answered.
type auditRecorder struct {
	http.ResponseWriter
	status int
}

func (s *auditRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *auditRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *auditRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
