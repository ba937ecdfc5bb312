package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/policy"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// assignee is one kind of identity that holds roles, with the collection its assigned-roles
// routes hang under.
type assignee struct {
	base        string // "/v3/users"
	param       string // "userId"
	subjectType string // store.SubjectUser or store.SubjectTeam
	kind        string // the users.kind a subject of type user must have; "" for teams
}

var assignees = []assignee{
	{"/v3/users", "userId", store.SubjectUser, store.KindUser},
	{"/v3/system-accounts", "accountId", store.SubjectUser, store.KindSystemAccount},
	{"/v3/teams", "teamId", store.SubjectTeam, ""},
}

// mountRoles registers the role catalogue and the assigned-roles routes of users, system
// accounts and teams.
func (a *API) mountRoles() {
	a.Mount("GET /v3/roles", http.HandlerFunc(a.listRoles))
	for _, as := range assignees {
		p := as.base + "/{" + as.param + "}/assigned-roles"
		a.Mount("GET "+p, a.assigned(as, a.listAssigned))
		a.Mount("POST "+p, a.assigned(as, a.createAssigned))
		a.Mount("DELETE "+p+"/{roleId}", a.assigned(as, a.deleteAssigned))
	}
}

type roleJSON struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Writes      []string `json:"writes"`
}

type entityRolesJSON struct {
	Name  string              `json:"name"`
	Roles map[string]roleJSON `json:"roles"`
}

// listRoles answers the catalogue keyed by entity type, then by role key ("route_admin"), as
// Konnect's /v3/roles does; runtime-group roles are listed under both names of the entity type.
func (a *API) listRoles(w http.ResponseWriter, r *http.Request) {
	out := map[string]entityRolesJSON{}
	add := func(key, name string, role policy.Role) {
		e, ok := out[key]
		if !ok {
			e = entityRolesJSON{Name: name, Roles: map[string]roleJSON{}}
		}
		writes := append([]string{}, role.Writes...)
		e.Roles[strings.ReplaceAll(strings.ToLower(role.Name), " ", "_")] = roleJSON{Name: role.Name, Description: role.Description, Writes: writes}
		out[key] = e
	}
	for _, role := range policy.Roles {
		switch role.EntityType {
		case policy.EntityRuntimeGroups:
			add("runtime_groups", policy.EntityRuntimeGroups, role)
			add("control_planes", policy.EntityControlPlanes, role)
		case policy.EntityAuditLogs:
			add("audit_logs", policy.EntityAuditLogs, role)
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

type assignedJSON struct {
	ID             string    `json:"id"`
	RoleName       string    `json:"role_name"`
	EntityID       string    `json:"entity_id"`
	EntityTypeName string    `json:"entity_type_name"`
	EntityRegion   string    `json:"entity_region"`
	CreatedAt      time.Time `json:"created_at"`
}

func assignedView(ra store.RoleAssignment) assignedJSON {
	return assignedJSON{ID: ra.ID, RoleName: ra.RoleName, EntityID: ra.EntityID, EntityTypeName: ra.EntityTypeName, EntityRegion: ra.EntityRegion, CreatedAt: ra.CreatedAt}
}

// assigned resolves the subject of an assigned-roles route; an id that names no such subject of
// the caller's organization is 404.
func (a *API) assigned(as assignee, fn func(w http.ResponseWriter, r *http.Request, as assignee, id string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue(as.param)
		if _, err := uuid.Parse(id); err != nil {
			a.fail(w, r, problem(http.StatusNotFound, "No "+strings.TrimSuffix(strings.TrimPrefix(as.base, "/v3/"), "s")+" with id "+strconv.Quote(id)+"."))
			return
		}
		fn(w, r, as, id)
	})
}

func (a *API) listAssigned(w http.ResponseWriter, r *http.Request, as assignee, id string) {
	list, err := a.store.ListRoleAssignments(r.Context(), principal(r).OrgID, as.subjectType, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	data := make([]assignedJSON, 0, len(list))
	for _, ra := range list {
		data = append(data, assignedView(ra))
	}
	WriteList(w, 1, len(data), len(data), data)
}

type assignRequest struct {
	RoleName       string `json:"role_name"`
	EntityID       string `json:"entity_id"`
	EntityTypeName string `json:"entity_type_name"`
	EntityRegion   string `json:"entity_region"`
}

func (a *API) createAssigned(w http.ResponseWriter, r *http.Request, as assignee, id string) {
	var req assignRequest
	if err := DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	p := principal(r)
	var bad []InvalidParameter
	if req.EntityTypeName == "" {
		bad = append(bad, InvalidParameter{Field: "entity_type_name", Rule: "required", Reason: "is required: \"Runtime Groups\" (or \"Control Planes\") or \"Audit Logs\"", Source: "body"})
	}
	role, ok := policy.LookupRole(req.RoleName, req.EntityTypeName)
	if !ok && req.EntityTypeName != "" {
		bad = append(bad, InvalidParameter{Field: "role_name", Rule: "enum", Reason: "must be a role of " + strconv.Quote(req.EntityTypeName) + " listed by GET /v3/roles", Source: "body"})
	}
	if req.EntityRegion == "" {
		req.EntityRegion = policy.Wildcard
	}
	if req.EntityRegion != policy.Wildcard && (len(req.EntityRegion) > 32 || strings.ContainsAny(req.EntityRegion, " /")) {
		bad = append(bad, InvalidParameter{Field: "entity_region", Rule: "pattern", Reason: "must be a region name or *", Source: "body"})
	}
	switch {
	case req.EntityID == "":
		bad = append(bad, InvalidParameter{Field: "entity_id", Rule: "required", Reason: "is required: a runtime group's id, or * for every group", Source: "body"})
	case req.EntityID == policy.Wildcard:
	case ok && role.EntityType != policy.EntityRuntimeGroups:
		bad = append(bad, InvalidParameter{Field: "entity_id", Rule: "enum", Reason: "must be * for " + strconv.Quote(role.EntityType), Source: "body"})
	default:
		g, err := a.store.GetGroup(r.Context(), p.OrgID, req.EntityID)
		if err != nil && !isNotFound(err) {
			a.fail(w, r, err)
			return
		}
		if err != nil || (req.EntityRegion != policy.Wildcard && g.Region != req.EntityRegion) {
			bad = append(bad, InvalidParameter{Field: "entity_id", Rule: "exists", Reason: "names no runtime group of this organization in region " + strconv.Quote(req.EntityRegion), Source: "body"})
		}
	}
	if len(bad) > 0 {
		a.fail(w, r, badRequest("The role assignment is not valid.", bad...))
		return
	}
	ra := store.RoleAssignment{
		ID: uuid.NewString(), OrgID: p.OrgID, SubjectType: as.subjectType, SubjectID: id, SubjectKind: as.kind,
		RoleName: role.Name, EntityTypeName: role.EntityType, EntityID: req.EntityID, EntityRegion: req.EntityRegion, CreatedAt: a.now().UTC(),
	}
	if err := a.store.CreateRoleAssignment(r.Context(), ra); err != nil {
		switch {
		case errors.Is(err, store.ErrTooManyAssignments):
			err = problem(http.StatusConflict, fmt.Sprintf("This identity already holds %d role assignments, the most allowed; remove one first.", store.MaxRoleAssignments))
		case isConflict(err):
			err = problem(http.StatusConflict, "This identity already holds the role "+strconv.Quote(ra.RoleName)+" on "+strconv.Quote(ra.EntityID)+" in region "+strconv.Quote(ra.EntityRegion)+".")
		}
		a.fail(w, r, err)
		return
	}
	a.InvalidateGrants()
	WriteJSON(w, http.StatusCreated, assignedView(ra))
}

func (a *API) deleteAssigned(w http.ResponseWriter, r *http.Request, as assignee, id string) {
	if err := a.store.DeleteRoleAssignment(r.Context(), principal(r).OrgID, as.subjectType, id, r.PathValue("roleId")); err != nil {
		a.fail(w, r, err)
		return
	}
	a.InvalidateGrants()
	w.WriteHeader(http.StatusNoContent)
}
