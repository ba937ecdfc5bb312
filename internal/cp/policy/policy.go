// Package policy decides what an identity may do: one pure function, Decide, answers every
// request of the control plane's APIs from (identity, action, runtime group, entity type). It
// holds the catalogue of predefined roles and knows nothing of HTTP or storage; the API maps each
// route to a Request and the store supplies each identity's grants.
package policy

import (
	"slices"
	"strings"
)

// Entity type names of role assignments. Konnect renamed runtime groups to control planes; both
// names are accepted and stored as EntityRuntimeGroups.
const (
	EntityRuntimeGroups = "Runtime Groups"
	EntityControlPlanes = "Control Planes"
	// EntityAuditLogs is the entity type of the Audit Viewer role, which is not about groups.
	EntityAuditLogs = "Audit Logs"
)

// Wildcard as a grant's group or region means every group or every region.
const Wildcard = "*"

// Action is what a request does. Read and Write address one runtime group; the others are
// organization-wide.
type Action string

const (
	// Read sees a group and reads its configuration, instances, revisions and analytics.
	Read Action = "read"
	// Write changes one entity type of a group (Request.EntityType).
	Write Action = "write"
	// CreateGroup creates a runtime group.
	CreateGroup Action = "create_group"
	// ManageIdentity manages users, teams, system accounts and role assignments.
	ManageIdentity Action = "manage_identity"
	// ReadAudit reads the audit log and its webhook settings.
	ReadAudit Action = "read_audit"
	// ManageAudit changes the audit log's webhook.
	ManageAudit Action = "manage_audit"
	// ViewFleet lists the control-plane processes, which serve every group.
	ViewFleet Action = "view_fleet"
)

// Entity types that are not Kong Admin API entities but are written through other routes of a
// group. Only Admin writes them.
const (
	// TypeGroup is the group itself: its name, description, labels, deletion.
	TypeGroup = "runtime_group"
	// TypeNodes are the group's runtime instances (deleting one from the catalogue).
	TypeNodes = "nodes"
	// TypeClusterCertificates are the certificates the group's instances connect with, and the
	// enrollment tokens that issue them.
	TypeClusterCertificates = "dp_client_certificates"
	// TypeConfig is the group's whole configuration at once: declarative import, POST /config,
	// rollback to a revision.
	TypeConfig = "config"
)

// Role is one predefined role of the catalogue.
type Role struct {
	// Name is the role's name in assignments, e.g. "Route Admin".
	Name string
	// EntityType is the entity type its assignments name (EntityRuntimeGroups or EntityAuditLogs).
	EntityType string
	// Description says what the role grants, for GET /v3/roles.
	Description string
	// Writes lists the entity types the role may write in its group (Kong Admin API entity names
	// and the Type* constants); "*" writes everything. Every role on a group also reads it,
	// except Creator.
	Writes []string
	// Reads is false for roles that do not see the group they are assigned on (Creator).
	Reads bool
}

// credentials are the entity types written through /consumers/{c}/…: they belong to consumers.
var credentials = []string{"keyauth_credentials", "basicauth_credentials", "jwt_secrets", "hmacauth_credentials", "acls"}

// Roles is the catalogue, in the order GET /v3/roles lists it.
var Roles = []Role{
	{Name: "Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"*"},
		Description: "Full access to the runtime group: its settings, configuration, instances, certificates and revisions."},
	{Name: "Creator", EntityType: EntityRuntimeGroups,
		Description: "Create new runtime groups; the creator becomes Admin of each group it creates. No access to existing groups."},
	{Name: "Viewer", EntityType: EntityRuntimeGroups, Reads: true,
		Description: "Read-only access to the runtime group's configuration, instances, revisions and analytics."},
	{Name: "Deployer", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"services", "routes"},
		Description: "Deploy gateway services to the runtime group: write services and routes, read the rest."},
	{Name: "Certificate Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"certificates", "snis", "ca_certificates"},
		Description: "Write the runtime group's certificates, SNIs and CA certificates; read the rest."},
	{Name: "Consumer Admin", EntityType: EntityRuntimeGroups, Reads: true,
		Writes:      append([]string{"consumers", "consumer_groups", "consumer_group_consumers"}, credentials...),
		Description: "Write the runtime group's consumers, their credentials and consumer groups; read the rest."},
	{Name: "Gateway Service Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"services"},
		Description: "Write the runtime group's gateway services; read the rest."},
	{Name: "Route Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"routes"},
		Description: "Write the runtime group's routes; read the rest."},
	{Name: "Plugin Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"plugins"},
		Description: "Write the runtime group's plugins; read the rest."},
	{Name: "Upstream Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"upstreams", "targets"},
		Description: "Write the runtime group's upstreams and their targets; read the rest."},
	{Name: "SNI Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"snis"},
		Description: "Write the runtime group's SNIs; read the rest."},
	{Name: "Key Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"keys", "key_sets"},
		Description: "Write the runtime group's keys and key sets; read the rest."},
	{Name: "Vault Admin", EntityType: EntityRuntimeGroups, Reads: true, Writes: []string{"vaults"},
		Description: "Write the runtime group's vaults; read the rest."},
	{Name: "Audit Viewer", EntityType: EntityAuditLogs,
		Description: "Read the organization's audit log."},
}

// LookupRole finds a role of the catalogue by name (case-insensitive) for an entity type (either
// name of runtime groups is accepted).
func LookupRole(name, entityType string) (Role, bool) {
	et := NormalizeEntityType(entityType)
	for _, r := range Roles {
		if strings.EqualFold(r.Name, name) && r.EntityType == et {
			return r, true
		}
	}
	return Role{}, false
}

// NormalizeEntityType maps Konnect's current name "Control Planes" to "Runtime Groups", the name
// stored; other names are returned as given.
func NormalizeEntityType(t string) string {
	if strings.EqualFold(t, EntityControlPlanes) || strings.EqualFold(t, EntityRuntimeGroups) {
		return EntityRuntimeGroups
	}
	if strings.EqualFold(t, EntityAuditLogs) {
		return EntityAuditLogs
	}
	return t
}

// Grant is one role an identity holds, directly or through a team: on one group (GroupID) or on
// every group (Wildcard), in one region or every region (Wildcard).
type Grant struct {
	Role    string
	GroupID string
	Region  string
}

// Subject is an identity as the policy sees it: whether it is an organization admin (a member of
// the Organization Admin team), and the union of its direct and team grants.
type Subject struct {
	OrgAdmin bool
	Grants   []Grant
}

// Request is one thing an identity asks to do. GroupID and Region name the group of Read and
// Write; EntityType names what Write changes.
type Request struct {
	Action     Action
	GroupID    string
	Region     string
	EntityType string
}

// Decision is Decide's answer.
type Decision struct {
	// Allowed is true when the request may proceed.
	Allowed bool
	// Visible is false when the request addresses a group the identity may not see at all: the
	// API then answers as if the group did not exist.
	Visible bool
	// Need names the missing permission of a refused request, e.g. "write routes"; Roles lists
	// the roles that would grant it.
	Need  string
	Roles []string
}

// matches reports whether g applies to the group id in region.
func (g Grant) matches(groupID, region string) bool {
	return (g.GroupID == Wildcard || g.GroupID == groupID) && (g.Region == Wildcard || g.Region == region)
}

// role returns the catalogue entry of a grant; unknown names (a role removed from the
// catalogue) grant nothing.
func role(name string) (Role, bool) {
	for i := range Roles {
		if Roles[i].Name == name {
			return Roles[i], true
		}
	}
	return Role{}, false
}

// Sees reports whether s may see the group id of region: an organization admin sees every group,
// others the groups on which they hold a role that reads.
func (s *Subject) Sees(groupID, region string) bool {
	if s.OrgAdmin {
		return true
	}
	for _, g := range s.Grants {
		if r, ok := role(g.Role); ok && r.Reads && r.EntityType == EntityRuntimeGroups && g.matches(groupID, region) {
			return true
		}
	}
	return false
}

// SeesAll reports whether s sees every group of region, so that a listing needs no filter.
func (s *Subject) SeesAll(region string) bool {
	if s.OrgAdmin {
		return true
	}
	for _, g := range s.Grants {
		if r, ok := role(g.Role); ok && r.Reads && r.EntityType == EntityRuntimeGroups && g.GroupID == Wildcard && (g.Region == Wildcard || g.Region == region) {
			return true
		}
	}
	return false
}

// VisibleGroups lists the ids of the groups s sees through grants naming one group, for a listing
// when SeesAll is false. The list has no duplicates.
func (s *Subject) VisibleGroups(region string) []string {
	var ids []string
	for _, g := range s.Grants {
		if r, ok := role(g.Role); ok && r.Reads && r.EntityType == EntityRuntimeGroups && g.GroupID != Wildcard &&
			(g.Region == Wildcard || g.Region == region) && !slices.Contains(ids, g.GroupID) {
			ids = append(ids, g.GroupID)
		}
	}
	return ids
}

// Decide answers req for s. It is pure and allocates only when refusing.
func Decide(s *Subject, req Request) Decision {
	if s.OrgAdmin {
		return Decision{Allowed: true, Visible: true}
	}
	switch req.Action {
	case Read:
		if s.Sees(req.GroupID, req.Region) {
			return Decision{Allowed: true, Visible: true}
		}
		return Decision{Need: "read this runtime group", Roles: rolesReading()}
	case Write:
		if !s.Sees(req.GroupID, req.Region) {
			return Decision{Need: "read this runtime group", Roles: rolesReading()}
		}
		for _, g := range s.Grants {
			if !g.matches(req.GroupID, req.Region) {
				continue
			}
			if r, ok := role(g.Role); ok && r.EntityType == EntityRuntimeGroups && writes(r, req.EntityType) {
				return Decision{Allowed: true, Visible: true}
			}
		}
		return Decision{Visible: true, Need: "write " + req.EntityType, Roles: rolesWriting(req.EntityType)}
	case CreateGroup:
		for _, g := range s.Grants {
			if (g.Role == "Creator" || g.Role == "Admin" && g.GroupID == Wildcard) && (g.Region == Wildcard || g.Region == req.Region) {
				return Decision{Allowed: true, Visible: true}
			}
		}
		return Decision{Visible: true, Need: "create runtime groups", Roles: []string{"Creator", "Admin (on every group)", "Organization Admin"}}
	case ViewFleet:
		if s.SeesAll(req.Region) {
			return Decision{Allowed: true, Visible: true}
		}
		return Decision{Visible: true, Need: "view the control plane's processes", Roles: []string{"Admin or Viewer (on every group)", "Organization Admin"}}
	case ReadAudit:
		for _, g := range s.Grants {
			if g.Role == "Audit Viewer" {
				return Decision{Allowed: true, Visible: true}
			}
		}
		return Decision{Visible: true, Need: "read the audit log", Roles: []string{"Audit Viewer", "Organization Admin"}}
	default: // ManageIdentity, ManageAudit and anything unknown: organization admins only.
		return Decision{Visible: true, Need: string(req.Action), Roles: []string{"Organization Admin"}}
	}
}

func writes(r Role, entityType string) bool {
	for _, w := range r.Writes {
		if w == "*" || w == entityType {
			return true
		}
	}
	return false
}

func rolesReading() []string {
	var out []string
	for _, r := range Roles {
		if r.Reads {
			out = append(out, r.Name)
		}
	}
	return out
}

func rolesWriting(entityType string) []string {
	var out []string
	for _, r := range Roles {
		if r.EntityType == EntityRuntimeGroups && writes(r, entityType) {
			out = append(out, r.Name)
		}
	}
	return out
}
