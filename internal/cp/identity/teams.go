package identity

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// teamJSON is a team as the API shows it; system_team is true for the predefined teams.
type teamJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	SystemTeam  bool      `json:"system_team"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func teamView(t store.Team) teamJSON {
	return teamJSON{ID: t.ID, Name: t.Name, Description: t.Description, SystemTeam: t.Predefined != "", CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func teamConflict(err error, name string) error {
	if isConflict(err) {
		return &api.Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("A team named %q already exists in this organization.", name)}
	}
	return err
}

func (s *Service) listTeams(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r.URL.Query(), teamFilters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.OrgID = caller(r).OrgID
	teams, total, err := s.store.ListTeams(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := make([]teamJSON, 0, len(teams))
	for _, t := range teams {
		data = append(data, teamView(t))
	}
	api.WriteList(w, q.PageNumber, q.PageSize, total, data)
}

type teamRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (req teamRequest) check(create bool) []api.InvalidParameter {
	return checkNamed(req.Name, req.Description, create)
}

// checkNamed checks the name (required on create) and description of a team or system account.
func checkNamed(name, description *string, create bool) []api.InvalidParameter {
	var bad []api.InvalidParameter
	switch {
	case name != nil:
		bad = append(bad, checkText("name", *name, maxName, true)...)
	case create:
		bad = append(bad, api.InvalidParameter{Field: "name", Rule: "required", Reason: "is required", Source: "body"})
	}
	if description != nil {
		bad = append(bad, checkText("description", *description, maxDescription, false)...)
	}
	return bad
}

func (s *Service) createTeam(w http.ResponseWriter, r *http.Request) {
	var req teamRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if bad := req.check(true); len(bad) > 0 {
		s.fail(w, r, badRequest("The team is not valid.", bad...))
		return
	}
	now := s.now()
	t := store.Team{ID: uuid.NewString(), OrgID: caller(r).OrgID, Name: *req.Name, CreatedAt: now, UpdatedAt: now}
	if req.Description != nil {
		t.Description = *req.Description
	}
	if err := s.store.CreateTeam(r.Context(), t); err != nil {
		s.fail(w, r, teamConflict(err, t.Name))
		return
	}
	w.Header().Set("Location", "/v3/teams/"+t.ID)
	api.WriteJSON(w, http.StatusCreated, teamView(t))
}

// lookupTeam returns the caller's organization's team with that id, or a 404 problem.
func (s *Service) lookupTeam(r *http.Request, id string) (store.Team, error) {
	if _, err := uuid.Parse(id); err != nil {
		return store.Team{}, notFound("team", id)
	}
	t, err := s.store.GetTeam(r.Context(), caller(r).OrgID, id)
	if isNotFound(err) {
		return t, notFound("team", id)
	}
	return t, err
}

func (s *Service) getTeam(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTeam(r, r.PathValue("teamId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, teamView(t))
}

func (s *Service) patchTeam(w http.ResponseWriter, r *http.Request) {
	cur, err := s.lookupTeam(r, r.PathValue("teamId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req teamRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if bad := req.check(false); len(bad) > 0 {
		s.fail(w, r, badRequest("The changes to the team are not valid.", bad...))
		return
	}
	t, err := s.store.UpdateTeam(r.Context(), cur.OrgID, cur.ID, func(t *store.Team) error {
		if req.Name != nil {
			t.Name = *req.Name
		}
		if req.Description != nil {
			t.Description = *req.Description
		}
		return nil
	})
	if err != nil {
		name := cur.Name
		if req.Name != nil {
			name = *req.Name
		}
		s.fail(w, r, teamConflict(err, name))
		return
	}
	api.WriteJSON(w, http.StatusOK, teamView(t))
}

func (s *Service) deleteTeam(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTeam(r, r.PathValue("teamId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.DeleteTeam(r.Context(), t.OrgID, t.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.m.InvalidateGrants()
	w.WriteHeader(http.StatusNoContent)
}

// listMembers lists a team's users or system accounts (kind).
func (s *Service) listMembers(kind string) http.HandlerFunc {
	filters := userFilters
	if kind == store.KindSystemAccount {
		filters = accountFilters
	}
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := s.lookupTeam(r, r.PathValue("teamId"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		q, err := parseList(r.URL.Query(), filters)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		q.OrgID, q.Kind, q.TeamID = t.OrgID, kind, t.ID
		members, total, err := s.store.ListUsers(r.Context(), q)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if kind == store.KindSystemAccount {
			data := make([]accountJSON, 0, len(members))
			for _, u := range members {
				data = append(data, accountView(u))
			}
			api.WriteList(w, q.PageNumber, q.PageSize, total, data)
			return
		}
		data := make([]userJSON, 0, len(members))
		for _, u := range members {
			data = append(data, userView(u))
		}
		api.WriteList(w, q.PageNumber, q.PageSize, total, data)
	}
}

type memberRequest struct {
	ID *string `json:"id"`
}

// addMember adds the user or system account (kind) named by the body's id to the team: 201, or
// 409 when it is a member already.
func (s *Service) addMember(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := s.lookupTeam(r, r.PathValue("teamId"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var req memberRequest
		if err := api.DecodeJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		what := "user"
		if kind == store.KindSystemAccount {
			what = "system account"
		}
		if req.ID == nil || *req.ID == "" {
			s.fail(w, r, badRequest("The member is not valid.", api.InvalidParameter{Field: "id", Rule: "required", Reason: "is required: the id of the " + what + " to add", Source: "body"}))
			return
		}
		u, err := s.lookupUser(r, kind, *req.ID)
		if err != nil {
			if p, ok := err.(*api.Problem); ok && p.Status == http.StatusNotFound { //nolint:errorlint // lookupUser returns the problem itself
				err = badRequest(p.Detail, api.InvalidParameter{Field: "id", Rule: "exists", Reason: "must be the id of a " + what + " of this organization", Source: "body"})
			}
			s.fail(w, r, err)
			return
		}
		if err := s.store.AddTeamMember(r.Context(), t.OrgID, t.ID, kind, u.ID, s.now()); err != nil {
			if isConflict(err) {
				err = &api.Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("The %s %s is already a member of the team %q.", what, u.ID, t.Name)}
			}
			s.fail(w, r, err)
			return
		}
		s.m.InvalidateGrants()
		w.WriteHeader(http.StatusCreated)
	}
}

// removeMember removes the user or system account (kind) of path value param from the team.
func (s *Service) removeMember(kind, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := s.lookupTeam(r, r.PathValue("teamId"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		id := r.PathValue(param)
		err = s.store.RemoveTeamMember(r.Context(), t.OrgID, t.ID, kind, id)
		if isNotFound(err) {
			what := "user"
			if kind == store.KindSystemAccount {
				what = "system account"
			}
			err = &api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("The team %q has no %s with id %q.", t.Name, what, id)}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.m.InvalidateGrants()
		w.WriteHeader(http.StatusNoContent)
	}
}
