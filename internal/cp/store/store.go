// Package store defines the control plane's persistence contract: organizations, users, tokens,
// runtime groups and (in later migrations) each group's gateway entities. Implementations enforce
// identity, uniqueness and references in the database itself, inside transactions, so that callers
// never rely on an in-memory index that could drift from what is stored.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned (wrapped) by every implementation. The HTTP layer maps them to API
// errors in one place.
var (
	// ErrNotFound means the addressed row does not exist or is not visible to the caller's
	// organization. Cross-organization reads report ErrNotFound, never a permission error, so that
	// one tenant cannot learn about another's objects.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a uniqueness constraint was violated.
	ErrConflict = errors.New("conflict")
	// ErrForeignKey means a reference does not resolve, or a row is still referenced.
	ErrForeignKey = errors.New("foreign key violation")
	// ErrDefaultGroup means the operation would delete the default runtime group or change its
	// default status; every organization keeps exactly one per region.
	ErrDefaultGroup = errors.New("default runtime group")
)

// Organization is a tenant. Everything else belongs to exactly one.
type Organization struct {
	ID        string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// User is a person or system account of an organization who owns tokens. Both kinds share one
// table so that tokens, team membership and role assignments refer to one kind of row.
type User struct {
	ID    string
	OrgID string
	// Kind is KindUser or KindSystemAccount; empty means KindUser when creating.
	Kind string
	// Name is the system account's name (unique per organization among system accounts); for a
	// user it repeats the email, so that older readers of the name still show who it is.
	Name string
	// Role is "admin" for the administrator made at bootstrap and "" for everyone else; what an
	// identity may do comes from its teams and role assignments.
	Role string
	// Email is lowercased and unique per organization among users; "" for system accounts.
	Email       string
	FullName    string
	Description string
	// Active is false for a deactivated identity, which cannot authenticate at all.
	Active bool
	// PasswordHash is the argon2id PHC string of the user's password, "" when none is set.
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Token is a personal access token. The secret itself is never stored: Hash is the hex SHA-256 of
// the whole token string, and Hint is its recognizable prefix plus a few characters, safe to show.
type Token struct {
	ID         string
	OrgID      string
	UserID     string
	Name       string
	Hash       string
	Hint       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time // nil: never expires.
	RevokedAt  *time.Time // nil: active.
	LastUsedAt *time.Time
}

// Active reports whether the token authenticates at instant now.
func (t Token) Active(now time.Time) bool {
	if t.RevokedAt != nil {
		return false
	}
	return t.ExpiresAt == nil || now.Before(*t.ExpiresAt)
}

// RuntimeGroup is one control plane: its own configuration, instances, certificates and
// permissions. Name is unique per organization and region; exactly one group per organization and
// region has IsDefault set, and that flag never changes.
type RuntimeGroup struct {
	ID          string
	OrgID       string
	Region      string
	Name        string
	Description string
	Labels      map[string]string
	ClusterType string
	AuthType    string
	IsDefault   bool
	// Revision is the number of the group's newest committed configuration revision; it is a
	// database counter bumped in the same transaction as every configuration write.
	Revision  int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GroupFilter is one condition of a runtime-group listing. Field is "id", "name" or
// "cluster_type"; Op is "eq", "neq", "contains" or "oeq" (Value then holds comma-separated
// alternatives).
type GroupFilter struct {
	Field string
	Op    string
	Value string
}

// GroupQuery selects a page of runtime groups of one organization and region.
type GroupQuery struct {
	OrgID   string
	Region  string
	Filters []GroupFilter
	// Labels keeps groups that carry every listed key with the given value; an empty value
	// matches any value of that key.
	Labels map[string]string
	// Sort is a column ("name", "created_at", "updated_at") and Desc its direction. Ties are
	// broken by id so pages are stable.
	Sort string
	Desc bool
	// Restricted limits the listing to the groups whose ids are in IDs (none when IDs is
	// empty): the groups a caller without a role on every group may see.
	Restricted bool
	IDs        []string
	// PageSize is at least 1; PageNumber starts at 1.
	PageSize   int
	PageNumber int
}

// BootstrapParams describes the first organization, its default group and administrator.
type BootstrapParams struct {
	OrgName   string
	Region    string
	AdminName string
	// AdminEmail is the administrator's login; it is set when the administrator has none yet.
	AdminEmail string
	// AdminPasswordHash is the administrator's password hash (argon2id PHC string); it is set
	// only when the administrator has no password yet (first start, or first start after the
	// upgrade that introduced passwords). BootstrapResult.PasswordSet reports whether it was.
	AdminPasswordHash string
	// AdminToken is the administrator's first token (its Hash and Hint set by the caller).
	AdminToken Token
}

// BootstrapResult tells what Bootstrap found or made.
type BootstrapResult struct {
	// Created is true only for the one call that created the organization.
	Created bool
	Org     Organization
	Admin   User
	Group   RuntimeGroup
	// PasswordSet is true when this call stored AdminPasswordHash (only one of several processes
	// starting together does).
	PasswordSet bool
}

// Store is the control plane's database. Every method is safe for concurrent use; methods that
// write do so in one transaction, so a failed call leaves nothing half-written.
type Store interface {
	Roles

	// Bootstrap creates the first organization, its administrator, the administrator's token and
	// the default group of p.Region, exactly once even when several processes call it at the same
	// moment on one database. Later calls return the existing organization with Created false, and
	// create the default group of p.Region if that region has none yet.
	//
	// Every call also makes sure each organization has its predefined teams (see
	// PredefinedTeams), with the Runtime Admin team holding Admin on every runtime group and the
	// administrator a member of the Organization Admin team when that team is created.
	Bootstrap(ctx context.Context, p BootstrapParams) (BootstrapResult, error)

	// CreateOrganization adds a tenant with its administrator and the default group of region.
	CreateOrganization(ctx context.Context, name, region string, admin User) (Organization, User, RuntimeGroup, error)
	GetOrganization(ctx context.Context, id string) (Organization, error)

	CreateToken(ctx context.Context, t Token) error
	// LookupToken finds a token by hash, whatever its state; callers check Active.
	LookupToken(ctx context.Context, hash string) (Token, error)
	ListTokens(ctx context.Context, orgID, userID string) ([]Token, error)
	RevokeToken(ctx context.Context, orgID, userID, id string, at time.Time) error
	TouchToken(ctx context.Context, id string, at time.Time) error

	CreateGroup(ctx context.Context, g RuntimeGroup) error
	GetGroup(ctx context.Context, orgID, id string) (RuntimeGroup, error)
	ListGroups(ctx context.Context, q GroupQuery) (groups []RuntimeGroup, total int, err error)
	// UpdateGroup reads the group, lets fn change it, and writes it back in one transaction.
	UpdateGroup(ctx context.Context, orgID, id string, fn func(*RuntimeGroup) error) (RuntimeGroup, error)
	// DeleteGroup removes the group and, through the database's cascading foreign keys,
	// everything that belongs to it.
	DeleteGroup(ctx context.Context, orgID, id string) error

	IdentityStore

	// Ready reports an error unless the database answers and every migration is applied.
	Ready(ctx context.Context) error
	// Dialect names the backing database: "sqlite" or "postgres".
	Dialect() string
	Close() error
}
