package store

import (
	"context"
	"encoding/json"
	"time"
)

// Authentication methods recorded with each request's principal and audit entry.
const (
	AuthSession       = "session"        // the console's session cookie
	AuthPersonalToken = "personal_token" // a user's personal access token (gpat_)
	AuthSystemToken   = "system_token"   // a system account's access token (gsat_)
)

// Identity kinds: users and system accounts share the users table.
const (
	KindUser          = "user"
	KindSystemAccount = "system_account"
)

// AuditEntry is one row of the audit log: who did what to which entity, through which request,
// with what result. Before and After hold the entity as JSON with its secrets already redacted;
// either is nil when there is no such side (a create has no Before, a delete no After, a login
// neither).
type AuditEntry struct {
	ID         string
	OrgID      string
	Timestamp  time.Time
	ActorType  string // KindUser, KindSystemAccount, or "anonymous" (failed logins)
	ActorID    string
	ActorName  string // the user's email or the system account's name
	AuthMethod string // AuthSession, AuthPersonalToken, AuthSystemToken, or ""
	TokenID    string
	// Action names what happened: "create", "update", "delete", "login", "login_failed",
	// "logout", "token_create", "token_revoke", "role_assign", "role_remove", …
	Action     string
	GroupID    string // the runtime group touched, "" for organization-level changes
	EntityType string // e.g. "routes", "runtime_groups", "users", "teams", "role_assignments"
	EntityID   string
	EntityName string
	Method     string // HTTP method
	Path       string // HTTP path, without the query
	Status     int    // HTTP status answered
	RequestID  string
	SourceAddr string
	UserAgent  string
	Before     json.RawMessage
	After      json.RawMessage
}

// pendingAuditKey carries the audit entry of the request a context belongs to.
type pendingAuditKey struct{}

// WithPendingAudit returns a context whose write transactions append e to the audit log in the
// same transaction as their change. The API attaches one per unsafe request; write paths fill in
// the entity fields before they commit.
func WithPendingAudit(ctx context.Context, e *AuditEntry) context.Context {
	return context.WithValue(ctx, pendingAuditKey{}, e)
}

// PendingAudit returns the entry WithPendingAudit attached, or nil.
func PendingAudit(ctx context.Context) *AuditEntry {
	e, _ := ctx.Value(pendingAuditKey{}).(*AuditEntry)
	return e
}
