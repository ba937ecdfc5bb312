package identity

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/password"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// Limits of identity fields.
const (
	maxFullName    = 255
	maxName        = 100
	maxDescription = 250
	defaultPage    = 10
	maxPage        = 100
)

// userJSON is a user as the API shows it. The password and its hash are never shown.
type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// CSRFToken is the session's CSRF token: in the answers to POST /v3/authenticate and to
	// GET /v3/users/me called with the session cookie.
	CSRFToken string `json:"csrf_token,omitempty"`
	// SessionExpiresAt is when the new session ends at the latest (login only).
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
}

func userView(u store.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, FullName: u.FullName, Active: u.Active, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

var emailRE = regexp.MustCompile(`^[^\s@]+@[^\s@]+$`)

// ValidEmail reports whether s is acceptable as a login email: one @ with something on each side,
// no spaces or control characters, at most 254 bytes. Delivery is not checked.
func ValidEmail(s string) bool {
	if len(s) > maxEmail || !utf8.ValidString(s) || !emailRE.MatchString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func checkEmail(field, s string) []api.InvalidParameter {
	if !ValidEmail(strings.TrimSpace(s)) {
		return []api.InvalidParameter{{Field: field, Rule: "email", Reason: "must be an email address such as ann@example.com (at most 254 characters)", Source: "body"}}
	}
	return nil
}

func checkText(field, s string, maxLen int, required bool) []api.InvalidParameter {
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return []api.InvalidParameter{{Field: field, Rule: "type", Reason: "must be valid UTF-8", Source: "body"}}
	case required && strings.TrimSpace(s) == "":
		return []api.InvalidParameter{{Field: field, Rule: "required", Reason: fmt.Sprintf("is required: 1 to %d characters", maxLen), Source: "body"}}
	case n > maxLen:
		return []api.InvalidParameter{{Field: field, Rule: "max_length", Reason: fmt.Sprintf("must be at most %d characters", maxLen), Source: "body"}}
	}
	return nil
}

func checkPassword(field, pw string) []api.InvalidParameter {
	if err := password.CheckStrength(pw); err != nil {
		return []api.InvalidParameter{{Field: field, Rule: "strength", Reason: err.Error(), Source: "body"}}
	}
	return nil
}

var filterRE = regexp.MustCompile(`^filter\[([a-z_]+)\](?:\[([a-z]+)\])?$`)

// Filterable fields and their operators, per listing.
var (
	userFilters    = map[string][]string{"id": {"eq", "oeq"}, "email": {"eq", "neq", "contains", "oeq"}, "full_name": {"eq", "neq", "contains"}, "active": {"eq"}}
	accountFilters = map[string][]string{"id": {"eq", "oeq"}, "name": {"eq", "neq", "contains", "oeq"}}
	teamFilters    = map[string][]string{"id": {"eq", "oeq"}, "name": {"eq", "neq", "contains", "oeq"}}
)

// parseList reads page[size], page[number] and filter[field] / filter[field][op] (eq when no
// operator is given); every bad value is reported, none ignored.
func parseList(v url.Values, fields map[string][]string) (store.IdentityQuery, error) {
	q := store.IdentityQuery{PageSize: defaultPage, PageNumber: 1}
	var bad []api.InvalidParameter
	intParam := func(name string, lo, hi int, dst *int) {
		s, ok := v[name]
		if !ok {
			return
		}
		n, err := strconv.Atoi(s[0])
		if err != nil || n < lo || (hi > 0 && n > hi) {
			reason := fmt.Sprintf("must be an integer between %d and %d", lo, hi)
			if hi == 0 {
				reason = fmt.Sprintf("must be an integer of at least %d", lo)
			}
			bad = append(bad, api.InvalidParameter{Field: name, Rule: "range", Reason: reason, Source: "query"})
			return
		}
		*dst = n
	}
	intParam("page[size]", 1, maxPage, &q.PageSize)
	intParam("page[number]", 1, 0, &q.PageNumber)
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, "filter") {
			continue
		}
		m := filterRE.FindStringSubmatch(k)
		if m == nil {
			bad = append(bad, api.InvalidParameter{Field: k, Rule: "format", Reason: "must be filter[<field>] or filter[<field>][<operator>]", Source: "query"})
			continue
		}
		ops, ok := fields[m[1]]
		if !ok {
			bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "cannot filter on " + m[1], Source: "query", Choices: sortedKeys(fields)})
			continue
		}
		op := m[2]
		if op == "" {
			op = "eq"
		}
		if !contains(ops, op) {
			bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "operator " + op + " is not supported on " + m[1], Source: "query", Choices: ops})
			continue
		}
		val := v.Get(k)
		if m[1] == "active" && val != "true" && val != "false" {
			bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "must be true or false", Source: "query", Choices: []string{"true", "false"}})
			continue
		}
		q.Filters = append(q.Filters, store.GroupFilter{Field: m[1], Op: op, Value: val})
	}
	if len(bad) > 0 {
		return q, badRequest("The query parameters are not valid.", bad...)
	}
	return q, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r.URL.Query(), userFilters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.OrgID, q.Kind = caller(r).OrgID, store.KindUser
	users, total, err := s.store.ListUsers(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := make([]userJSON, 0, len(users))
	for _, u := range users {
		data = append(data, userView(u))
	}
	api.WriteList(w, q.PageNumber, q.PageSize, total, data)
}

type createUserRequest struct {
	Email    *string `json:"email"`
	FullName *string `json:"full_name"`
	Password *string `json:"password"`
	Active   *bool   `json:"active"`
}

func (s *Service) createUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	u := store.User{ID: uuid.NewString(), OrgID: caller(r).OrgID, Kind: store.KindUser, Active: true, CreatedAt: now, UpdatedAt: now}
	var bad []api.InvalidParameter
	if req.Email == nil {
		bad = append(bad, api.InvalidParameter{Field: "email", Rule: "required", Reason: "is required", Source: "body"})
	} else {
		bad = append(bad, checkEmail("email", *req.Email)...)
		u.Email = strings.ToLower(strings.TrimSpace(*req.Email))
	}
	if req.FullName != nil {
		bad = append(bad, checkText("full_name", *req.FullName, maxFullName, false)...)
		u.FullName = *req.FullName
	}
	if req.Active != nil {
		u.Active = *req.Active
	}
	if req.Password != nil {
		bad = append(bad, checkPassword("password", *req.Password)...)
	}
	if len(bad) > 0 {
		s.fail(w, r, badRequest("The user is not valid.", bad...))
		return
	}
	if req.Password != nil {
		h, err := password.Hash(*req.Password)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		u.PasswordHash = h
	}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		if isConflict(err) {
			err = &api.Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("A user with the email %q already exists in this organization.", u.Email)}
		}
		s.fail(w, r, err)
		return
	}
	u.Name = u.Email
	w.Header().Set("Location", "/v3/users/"+u.ID)
	api.WriteJSON(w, http.StatusCreated, userView(u))
}

// lookupUser returns the caller's organization's user (or system account, by kind) with that
// id; an id that is not a UUID, of another organization, or of no identity is the same 404.
func (s *Service) lookupUser(r *http.Request, kind, id string) (store.User, error) {
	what := "user"
	if kind == store.KindSystemAccount {
		what = "system account"
	}
	if _, err := uuid.Parse(id); err != nil {
		return store.User{}, notFound(what, id)
	}
	u, err := s.store.GetUser(r.Context(), caller(r).OrgID, kind, id)
	if isNotFound(err) {
		return u, notFound(what, id)
	}
	return u, err
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindUser, r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, userView(u))
}

// getMe answers the caller's user, with the session's CSRF token when called with the session
// cookie. A system account has no user: it reads itself at /v3/system-accounts/{id}.
func (s *Service) getMe(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	if p.Kind == store.KindSystemAccount {
		s.fail(w, r, &api.Problem{Status: http.StatusNotFound, Detail: "The caller is a system account, not a user: see /v3/system-accounts/" + p.UserID + "."})
		return
	}
	u, err := s.store.GetUser(r.Context(), p.OrgID, store.KindUser, p.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	view := userView(u)
	if p.Method == store.AuthSession {
		se, _, err := s.store.LookupSession(r.Context(), p.SessionID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		view.CSRFToken = se.CSRFToken
	}
	api.WriteJSON(w, http.StatusOK, view)
}

type patchMeRequest struct {
	FullName *string `json:"full_name"`
	Password *string `json:"password"`
	// CurrentPassword is required to change a password that is set.
	CurrentPassword *string `json:"current_password"`
}

// patchMe changes the caller's full name or password; a set password is changed only with the
// current one.
func (s *Service) patchMe(w http.ResponseWriter, r *http.Request) {
	p := caller(r)
	if p.Kind == store.KindSystemAccount {
		s.fail(w, r, &api.Problem{Status: http.StatusNotFound, Detail: "The caller is a system account, not a user: see /v3/system-accounts/" + p.UserID + "."})
		return
	}
	var req patchMeRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var bad []api.InvalidParameter
	if req.FullName != nil {
		bad = append(bad, checkText("full_name", *req.FullName, maxFullName, false)...)
	}
	var newHash string
	if req.Password != nil {
		bad = append(bad, checkPassword("password", *req.Password)...)
	}
	if len(bad) > 0 {
		s.fail(w, r, badRequest("The changes to the user are not valid.", bad...))
		return
	}
	if req.Password != nil {
		cur, err := s.store.GetUser(r.Context(), p.OrgID, store.KindUser, p.UserID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if cur.PasswordHash != "" && (req.CurrentPassword == nil || password.Verify(*req.CurrentPassword, cur.PasswordHash) != nil) {
			s.fail(w, r, badRequest("The current password is needed to change it.",
				api.InvalidParameter{Field: "current_password", Rule: "match", Reason: "must be the current password", Source: "body"}))
			return
		}
		if newHash, err = password.Hash(*req.Password); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	u, err := s.store.UpdateUser(r.Context(), p.OrgID, store.KindUser, p.UserID, func(u *store.User) error {
		if req.FullName != nil {
			u.FullName = *req.FullName
		}
		if newHash != "" {
			u.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if newHash != "" {
		// The session that changed the password stays; every other login of the user ends.
		s.endSessions(r, u.ID, p.SessionID)
	}
	api.WriteJSON(w, http.StatusOK, userView(u))
}

type patchUserRequest struct {
	Email    *string `json:"email"`
	FullName *string `json:"full_name"`
	Active   *bool   `json:"active"`
	Password *string `json:"password"`
}

func (s *Service) patchUser(w http.ResponseWriter, r *http.Request) {
	cur, err := s.lookupUser(r, store.KindUser, r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req patchUserRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var bad []api.InvalidParameter
	if req.Email != nil {
		bad = append(bad, checkEmail("email", *req.Email)...)
	}
	if req.FullName != nil {
		bad = append(bad, checkText("full_name", *req.FullName, maxFullName, false)...)
	}
	if req.Password != nil {
		bad = append(bad, checkPassword("password", *req.Password)...)
	}
	if req.Active != nil && !*req.Active && cur.ID == caller(r).UserID {
		bad = append(bad, api.InvalidParameter{Field: "active", Rule: "self", Reason: "you cannot deactivate the user you are authenticated as", Source: "body"})
	}
	if len(bad) > 0 {
		s.fail(w, r, badRequest("The changes to the user are not valid.", bad...))
		return
	}
	var newHash string
	if req.Password != nil {
		if newHash, err = password.Hash(*req.Password); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	u, err := s.store.UpdateUser(r.Context(), cur.OrgID, store.KindUser, cur.ID, func(u *store.User) error {
		if req.Email != nil {
			u.Email = *req.Email
		}
		if req.FullName != nil {
			u.FullName = *req.FullName
		}
		if req.Active != nil {
			u.Active = *req.Active
		}
		if newHash != "" {
			u.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		if isConflict(err) && req.Email != nil {
			err = &api.Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("A user with the email %q already exists in this organization.", strings.ToLower(strings.TrimSpace(*req.Email)))}
		}
		s.fail(w, r, err)
		return
	}
	if newHash != "" || !u.Active {
		s.endSessions(r, u.ID, "")
	}
	api.WriteJSON(w, http.StatusOK, userView(u))
}

// endSessions ends the user's sessions but keep; a failure is logged, not answered: the change
// itself is made, and a deactivated user's sessions are refused anyway.
func (s *Service) endSessions(r *http.Request, userID, keep string) {
	if n, err := s.store.DeleteUserSessions(r.Context(), userID, keep); err != nil {
		s.log.WarnContext(r.Context(), "end the user's sessions", "user", userID, "err", err)
	} else if n > 0 {
		s.log.InfoContext(r.Context(), "ended the user's sessions", "user", userID, "count", n)
	}
}

func (s *Service) deleteUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.lookupUser(r, store.KindUser, r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if u.ID == caller(r).UserID {
		s.fail(w, r, badRequest("You cannot delete the user you are authenticated as."))
		return
	}
	if u.Role == "admin" {
		// Every start finds the organization through its first administrator, and
		// GANTRY_ADMIN_TOKEN belongs to it.
		s.fail(w, r, badRequest("The organization's first administrator cannot be deleted; deactivate it instead (PATCH with \"active\": false)."))
		return
	}
	if err := s.store.DeleteUser(r.Context(), u.OrgID, store.KindUser, u.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.m.InvalidateGrants()
	s.log.InfoContext(r.Context(), "deleted user", "user", u.ID)
	w.WriteHeader(http.StatusNoContent)
}
