package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hint       string     `json:"hint"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// Token is the secret; it is present only in the answer to the creating request.
	Token string `json:"token,omitempty"`
}

func tokenView(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Hint: t.Hint, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt}
}

type createTokenRequest struct {
	Name *string `json:"name"`
	// ExpiresAt is an RFC 3339 instant; ExpiresIn a number of seconds. At most one may be given;
	// with neither the token never expires.
	ExpiresAt *string `json:"expires_at"`
	ExpiresIn *int64  `json:"expires_in"`
}

// maxTokenLifetime bounds expires_in and expires_at (ten years).
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if err := DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.now().UTC()
	var bad []InvalidParameter
	if req.Name == nil || *req.Name == "" || len(*req.Name) > 100 {
		bad = append(bad, InvalidParameter{Field: "name", Rule: "required", Reason: "is required: 1 to 100 characters", Source: "body"})
	}
	var exp *time.Time
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != nil:
		bad = append(bad, InvalidParameter{Field: "expires_in", Rule: "exclusive", Reason: "give expires_at or expires_in, not both", Source: "body"})
	case req.ExpiresAt != nil:
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		switch {
		case err != nil:
			bad = append(bad, InvalidParameter{Field: "expires_at", Rule: "format", Reason: "must be an RFC 3339 date-time such as 2030-01-02T15:04:05Z", Source: "body"})
		case !t.After(now) || t.Sub(now) > maxTokenLifetime:
			bad = append(bad, InvalidParameter{Field: "expires_at", Rule: "range", Reason: "must be in the future and within ten years", Source: "body"})
		}
		t = t.UTC()
		exp = &t
	case req.ExpiresIn != nil:
		d := time.Duration(*req.ExpiresIn) * time.Second
		if *req.ExpiresIn < 1 || d > maxTokenLifetime {
			bad = append(bad, InvalidParameter{Field: "expires_in", Rule: "range", Reason: "must be a number of seconds from 1 to ten years", Source: "body"})
		}
		t := now.Add(d)
		exp = &t
	}
	if len(bad) > 0 {
		a.fail(w, r, badRequest("The token request is not valid.", bad...))
		return
	}
	p := principal(r)
	secret := auth.NewToken()
	t := store.Token{ID: uuid.NewString(), OrgID: p.OrgID, UserID: p.UserID, Name: *req.Name, Hash: auth.HashToken(secret), Hint: auth.Hint(secret), CreatedAt: now, ExpiresAt: exp}
	if err := a.store.CreateToken(r.Context(), t); err != nil {
		a.fail(w, r, err)
		return
	}
	view := tokenView(t)
	view.Token = secret
	WriteJSON(w, http.StatusCreated, view)
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	ts, err := a.store.ListTokens(r.Context(), p.OrgID, p.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	data := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		data = append(data, tokenView(t))
	}
	WriteList(w, 1, len(data), len(data), data)
}

func (a *API) findToken(r *http.Request) (store.Token, error) {
	p := principal(r)
	id := r.PathValue("tokenId")
	ts, err := a.store.ListTokens(r.Context(), p.OrgID, p.UserID)
	if err != nil {
		return store.Token{}, err
	}
	for _, t := range ts {
		if t.ID == id {
			return t, nil
		}
	}
	return store.Token{}, &Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("No token with id %q.", id)}
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request) {
	t, err := a.findToken(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, tokenView(t))
}

// revokeToken revokes a token of the caller. The row is kept (revoked) so that audits can still
// name it; it never authenticates again.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := a.findToken(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.store.RevokeToken(r.Context(), t.OrgID, t.UserID, t.ID, a.now()); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
