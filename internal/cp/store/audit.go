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

// Audit actions of writes; other actions name what they record ("login", "token_create", …).
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
	// ActionDenied records a request refused with 403: nothing was written, but the attempt is
	// part of the trail.
	ActionDenied = "denied"
)

// AuditChange is what a write transaction tells the audit log about its change; the request's
// pending entry supplies the rest (actor, method, path, …).
type AuditChange struct {
	Action     string
	GroupID    string
	EntityType string
	EntityID   string
	EntityName string
	// Before and After are the entity before and after the change, nil for none. A
	// json.RawMessage or []byte is taken as JSON; any other value is encoded with encoding/json.
	// Secrets are redacted on the way in (package redact), whatever the caller passed.
	Before, After any
	// Status, when set, is the status the request answers once the change committed; 0 takes
	// the pending entry's Status, or else the usual answer of its method (POST 201, DELETE
	// 204, others 200).
	Status int
}

// AuditQuery selects a page of an organization's audit log, newest first. Empty filters match
// everything.
type AuditQuery struct {
	OrgID      string
	ActorID    string
	GroupID    string
	EntityType string
	Action     string
	// Since and Until bound the entries' timestamps, both inclusive; zero values are unbounded.
	Since, Until time.Time
	// After is the cursor a previous page returned: the page resumes with older entries.
	After string
	// Limit is the page size, at least 1.
	Limit int
}

// AuditLog appends entries outside a write transaction: logins, logouts, failed logins and
// refused requests, which change nothing else. SetAuditStatus corrects the status of an entry
// recorded in a write's transaction when the request answered another one than the entry
// predicted (see AuditChange.Status).
type AuditLog interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
	SetAuditStatus(ctx context.Context, id string, status int) error
}
