package identity

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// accountJSON is a system account as the API shows it. konnect_managed is always false: Gantry
// manages no accounts of its own. active is Gantry's addition: a deactivated account's tokens
// are refused.
type accountJSON struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	KonnectManaged bool      `json:"konnect_managed"`
	Active         bool      `json:"active"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func accountView(u store.User) accountJSON {
	return accountJSON{ID: u.ID, Name: u.Name, Description: u.Description, Active: u.Active, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func accountConflict(err error, name string) error {
	if isConflict(err) {
		return &api.Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("A system account named %q already exists in this organization.", name)}
	}
	return err
}

func (s *Service) listAccounts(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r.URL.Query(), accountFilters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.OrgID, q.Kind = caller(r).OrgID, store.KindSystemAccount
	accounts, total, err := s.store.ListUsers(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := make([]accountJSON, 0, len(accounts))
	for _, u := range accounts {
		data = append(data, accountView(u))
	}
	api.WriteList(w, q.PageNumber, q.PageSize, total, data)
}

type accountRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Active      *bool   `json:"active"`
	// KonnectManaged is accepted for Konnect clients; only false is valid.
	KonnectManaged *bool `json:"konnect_managed"`
}

func (req accountRequest) check(create bool) []api.InvalidParameter {
	bad := checkNamed(req.Name, req.Description, create)
	if req.KonnectManaged != nil && *req.KonnectManaged {
		bad = append(bad, api.InvalidParameter{Field: "konnect_managed", Rule: "enum", Reason: "must be false", Source: "body"})
	}
	return bad
}

func (s *Service) createAccount(w http.ResponseWriter, r *http.Request) {
	var req accountRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if bad := req.check(true); len(bad) > 0 {
		s.fail(w, r, badRequest("The system account is not valid.", bad...))
		return
	}
	now := s.now()
	u := store.User{ID: uuid.NewString(), OrgID: caller(r).OrgID, Kind: store.KindSystemAccount, Name: *req.Name, Active: true, CreatedAt: now, UpdatedAt: now}
	if req.Description != nil {
		u.Description = *req.Description
	}
	if req.Active != nil {
		u.Active = *req.Active
	}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		s.fail(w, r, accountConflict(err, u.Name))
		return
	}
	w.Header().Set("Location", "/v3/system-accounts/"+u.ID)
	api.WriteJSON(w, http.StatusCreated, accountView(u))
}

func (s *Service) getAccount(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, accountView(u))
}

func (s *Service) patchAccount(w http.ResponseWriter, r *http.Request) {
	cur, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req accountRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if bad := req.check(false); len(bad) > 0 {
		s.fail(w, r, badRequest("The changes to the system account are not valid.", bad...))
		return
	}
	u, err := s.store.UpdateUser(r.Context(), cur.OrgID, store.KindSystemAccount, cur.ID, func(u *store.User) error {
		if req.Name != nil {
			u.Name = *req.Name
		}
		if req.Description != nil {
			u.Description = *req.Description
		}
		if req.Active != nil {
			u.Active = *req.Active
		}
		return nil
	})
	if err != nil {
		name := cur.Name
		if req.Name != nil {
			name = *req.Name
		}
		s.fail(w, r, accountConflict(err, name))
		return
	}
	api.WriteJSON(w, http.StatusOK, accountView(u))
}

func (s *Service) deleteAccount(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.DeleteUser(r.Context(), u.OrgID, store.KindSystemAccount, u.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.m.InvalidateGrants()
	w.WriteHeader(http.StatusNoContent)
}

// tokenJSON is a system account's access token as the API shows it; the secret only in the
// answer to the request that created it.
type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hint       string     `json:"hint"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Token      string     `json:"token,omitempty"`
}

func tokenView(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Hint: t.Hint, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt}
}

// maxTokenLifetime bounds expires_at (ten years).
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

type tokenRequest struct {
	Name *string `json:"name"`
	// ExpiresAt is an RFC 3339 instant; without it the token never expires.
	ExpiresAt *string `json:"expires_at"`
}

func (s *Service) listAccountTokens(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ts, err := s.store.ListTokens(r.Context(), u.OrgID, u.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		data = append(data, tokenView(t))
	}
	api.WriteList(w, 1, len(data), len(data), data)
}

// createAccountToken issues an access token for the system account; the secret (prefix gsat_) is
// in this answer only.
func (s *Service) createAccountToken(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req tokenRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	var bad []api.InvalidParameter
	if req.Name == nil {
		bad = append(bad, api.InvalidParameter{Field: "name", Rule: "required", Reason: "is required: 1 to 100 characters", Source: "body"})
	} else {
		bad = append(bad, checkText("name", *req.Name, maxName, true)...)
	}
	var exp *time.Time
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		switch {
		case err != nil:
			bad = append(bad, api.InvalidParameter{Field: "expires_at", Rule: "format", Reason: "must be an RFC 3339 date-time such as 2030-01-02T15:04:05Z", Source: "body"})
		case !t.After(now) || t.Sub(now) > maxTokenLifetime:
			bad = append(bad, api.InvalidParameter{Field: "expires_at", Rule: "range", Reason: "must be in the future and within ten years", Source: "body"})
		}
		t = t.UTC()
		exp = &t
	}
	if len(bad) > 0 {
		s.fail(w, r, badRequest("The token request is not valid.", bad...))
		return
	}
	secret := auth.NewSystemToken()
	t := store.Token{ID: uuid.NewString(), OrgID: u.OrgID, UserID: u.ID, Name: *req.Name, Hash: auth.HashToken(secret), Hint: auth.Hint(secret), CreatedAt: now, ExpiresAt: exp}
	if err := s.store.CreateToken(r.Context(), t); err != nil {
		s.fail(w, r, err)
		return
	}
	view := tokenView(t)
	view.Token = secret
	w.Header().Set("Location", r.URL.Path+"/"+t.ID)
	api.WriteJSON(w, http.StatusCreated, view)
}

// findAccountToken returns the token of the path's system account and token id.
func (s *Service) findAccountToken(r *http.Request) (store.Token, error) {
	u, err := s.lookupUser(r, store.KindSystemAccount, r.PathValue("accountId"))
	if err != nil {
		return store.Token{}, err
	}
	id := r.PathValue("tokenId")
	ts, err := s.store.ListTokens(r.Context(), u.OrgID, u.ID)
	if err != nil {
		return store.Token{}, err
	}
	for _, t := range ts {
		if t.ID == id {
			return t, nil
		}
	}
	return store.Token{}, notFound("access token", id)
}

func (s *Service) getAccountToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.findAccountToken(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, tokenView(t))
}

// revokeAccountToken revokes the token: the row stays (revoked) so that the audit log can still
// name it; it never authenticates again.
func (s *Service) revokeAccountToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.findAccountToken(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.RevokeToken(r.Context(), t.OrgID, t.UserID, t.ID, s.now()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
