package store

import (
	"context"
	"errors"
	"time"
)

// ErrPredefinedTeam means the operation would delete or rename a predefined team.
var ErrPredefinedTeam = errors.New("predefined team")

// ErrLastOrgAdmin means the operation would leave the organization without an active member of
// its Organization Admin team, and so without anyone able to manage identities.
var ErrLastOrgAdmin = errors.New("last organization admin")

// PredefinedTeam describes a team every organization has from bootstrap on.
type PredefinedTeam struct {
	Duty        string
	Name        string
	Description string
}

// PredefinedTeams are created in every organization at bootstrap; they cannot be deleted or
// renamed. The Runtime Admin team holds the role assignment RuntimeAdminAssignment.
var PredefinedTeams = []PredefinedTeam{
	{TeamOrganizationAdmin, "Organization Admin", "Everything in the organization, including users, teams, system accounts and roles."},
	{TeamRuntimeAdmin, "Runtime Admin", "Admin on every runtime group of the organization."},
}

// RuntimeAdminAssignment is the role the Runtime Admin team holds: Admin on every runtime group
// of every region. Bootstrap keeps it in place.
var RuntimeAdminAssignment = struct{ RoleName, EntityTypeName, EntityID, EntityRegion string }{"Admin", "Runtime Groups", "*", "*"}

// Team is a set of users and system accounts that share roles. Name is unique per organization.
type Team struct {
	ID          string
	OrgID       string
	Name        string
	Description string
	// Predefined is "" for teams made through the API, else the team's fixed duty
	// (TeamOrganizationAdmin, TeamRuntimeAdmin).
	Predefined string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Session is a console login. ID is the hex SHA-256 of the secret the session cookie carries; the
// secret itself is never stored. The session ends at ExpiresAt, or earlier when it was not used
// for the idle limit the server runs with (measured from LastSeenAt).
type Session struct {
	ID            string
	OrgID         string
	UserID        string
	CSRFToken     string
	SourceAddress string
	UserAgent     string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	ExpiresAt     time.Time
}

// IdentityQuery selects a page of users, system accounts or teams of one organization.
type IdentityQuery struct {
	OrgID string
	// Kind selects users (KindUser) or system accounts (KindSystemAccount); ignored for teams.
	Kind string
	// TeamID, when set, keeps only members of that team (for users and system accounts).
	TeamID string
	// Filters use Op "eq", "neq", "contains" (case-insensitive for email) or "oeq". Fields: for
	// users "id", "email", "full_name", "active"; for system accounts "id", "name"; for teams
	// "id", "name". "active" takes "true" or "false".
	Filters []GroupFilter
	// PageSize is at least 1; PageNumber starts at 1. Rows come oldest first, ties by id.
	PageSize   int
	PageNumber int
}

// IdentityStore holds users, system accounts, teams, team membership and console sessions.
// Identities of another organization are reported as ErrNotFound.
type IdentityStore interface {
	// CreateUser adds a user or system account (u.Kind). A user's email is stored lowercased; a
	// taken email (users) or name (system accounts) is ErrConflict.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the identity of that kind ("" for either) and id.
	GetUser(ctx context.Context, orgID, kind, id string) (User, error)
	// UsersByEmail returns the users of every organization with that email (compared
	// lowercased), for login.
	UsersByEmail(ctx context.Context, email string) ([]User, error)
	ListUsers(ctx context.Context, q IdentityQuery) (users []User, total int, err error)
	// UpdateUser reads the identity of that kind, lets fn change it, and writes it back in one
	// transaction; ID, OrgID, Kind and CreatedAt cannot change.
	UpdateUser(ctx context.Context, orgID, kind, id string, fn func(*User) error) (User, error)
	// DeleteUser removes the identity of that kind with its tokens, sessions, team memberships
	// and role assignments, in one transaction.
	DeleteUser(ctx context.Context, orgID, kind, id string) error

	// CreateTeam adds a team; a taken name is ErrConflict.
	CreateTeam(ctx context.Context, t Team) error
	GetTeam(ctx context.Context, orgID, id string) (Team, error)
	ListTeams(ctx context.Context, q IdentityQuery) (teams []Team, total int, err error)
	// UpdateTeam is UpdateUser for teams; renaming a predefined team is ErrPredefinedTeam.
	UpdateTeam(ctx context.Context, orgID, id string, fn func(*Team) error) (Team, error)
	// DeleteTeam removes the team, its memberships and its role assignments; a predefined team
	// is ErrPredefinedTeam.
	DeleteTeam(ctx context.Context, orgID, id string) error
	// AddTeamMember adds the identity of that kind to the team; an identity or team that does
	// not exist in orgID is ErrNotFound, an existing member ErrConflict.
	AddTeamMember(ctx context.Context, orgID, teamID, kind, userID string, at time.Time) error
	// RemoveTeamMember removes it; ErrNotFound when it is not a member of that kind.
	RemoveTeamMember(ctx context.Context, orgID, teamID, kind, userID string) error
	// UserTeams returns the teams the identity is a member of, by name.
	UserTeams(ctx context.Context, orgID, userID string) ([]Team, error)

	CreateSession(ctx context.Context, s Session) error
	// LookupSession returns the session with that id and the identity it belongs to, whatever
	// its state; callers check expiry and the identity's Active flag.
	LookupSession(ctx context.Context, id string) (Session, User, error)
	// TouchSession records use of the session at at.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// DeleteSession ends a session; a session that does not exist is not an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions ends every session of the user but keep ("" for none), and returns how
	// many; a changed password or a deactivation ends the other logins.
	DeleteUserSessions(ctx context.Context, userID, keep string) (int, error)
	// DeleteSessions removes sessions that expired before now, or were last seen before
	// idleBefore, and returns how many.
	DeleteSessions(ctx context.Context, now, idleBefore time.Time) (int, error)

	// LookupTokenUser finds a token by hash, whatever its state, with the identity it acts as.
	LookupTokenUser(ctx context.Context, hash string) (Token, User, error)
}
