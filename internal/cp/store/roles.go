package store

import (
	"context"
	"errors"
	"time"
)

// MaxRoleAssignments bounds the direct assignments of one subject, so that the grants the policy
// loads per identity, and the group filter built from them, stay small.
const MaxRoleAssignments = 500

// ErrTooManyAssignments means a subject already holds the most role assignments allowed.
var ErrTooManyAssignments = errors.New("too many role assignments")

// Subject types of role assignments. System accounts live in the users table, so their
// assignments have SubjectUser too.
const (
	SubjectUser = "user"
	SubjectTeam = "team"
)

// Predefined teams, by their fixed duty (the teams.predefined column).
const (
	TeamOrganizationAdmin = "organization_admin"
	TeamRuntimeAdmin      = "runtime_admin"
)

// RoleAssignment is one role held by a user, system account or team on one runtime group (or
// every group, "*"), in one region (or every region, "*").
type RoleAssignment struct {
	ID          string
	OrgID       string
	SubjectType string // SubjectUser or SubjectTeam
	SubjectID   string
	// SubjectKind, when set on creation, is the kind (KindUser, KindSystemAccount) the subject
	// of type SubjectUser must have; it is checked, not stored.
	SubjectKind    string
	RoleName       string
	EntityTypeName string // policy.EntityRuntimeGroups or policy.EntityAuditLogs
	EntityID       string // a group id or "*"
	EntityRegion   string // a region or "*"
	CreatedAt      time.Time
}

// Grants is what the policy needs to know of one identity: its role assignments, direct and
// through its teams, and whether it belongs to the Organization Admin team.
type Grants struct {
	OrgAdmin    bool
	Assignments []RoleAssignment
}

// Roles stores role assignments. Deleting a group removes the assignments naming it, and deleting
// a user, system account or team removes its own, in the same transaction.
type Roles interface {
	// CreateRoleAssignment adds a; an identical assignment of the same subject is ErrConflict, a
	// subject that does not exist in a.OrgID is ErrNotFound.
	CreateRoleAssignment(ctx context.Context, a RoleAssignment) error
	// ListRoleAssignments lists a subject's direct assignments, oldest first.
	ListRoleAssignments(ctx context.Context, orgID, subjectType, subjectID string) ([]RoleAssignment, error)
	// DeleteRoleAssignment removes one assignment of a subject; ErrNotFound if it has none by id.
	DeleteRoleAssignment(ctx context.Context, orgID, subjectType, subjectID, id string) error
	// GrantsOf returns the assignments of a user or system account and of every team it belongs
	// to, and whether one of those teams is the Organization Admin team.
	GrantsOf(ctx context.Context, orgID, userID string) (Grants, error)
	// CreateGroupWithAdmin creates g and assigns a (the Admin role on g, for its creator) in one
	// transaction.
	CreateGroupWithAdmin(ctx context.Context, g RuntimeGroup, a RoleAssignment) error
}
