package revisions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Mounter is where the routes go: *api.API satisfies it. Mount must authenticate; LookupGroup
// must return the caller's group or an error (an *api.Problem for a 404).
type Mounter interface {
	Mount(pattern string, h http.Handler)
	LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error)
}

// Page sizes of the revision list.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Mount registers, under both /v2/runtime-groups and /v2/control-planes:
//
//	GET  {base}/{groupId}/revisions                  list, newest first (page[size], page[number])
//	GET  {base}/{groupId}/revisions/{n}              metadata; ?include=config adds the configuration
//	GET  {base}/{groupId}/revisions/{n}/diff         what changed from ?against=m (default n-1) to n
//	POST {base}/{groupId}/revisions/{n}/rollback     a new revision equal to n (201), or 200 if current
func (s *Service) Mount(m Mounter) {
	h := &handlers{s: s, m: m}
	for _, base := range api.GroupBasePaths {
		g := base + "/{groupId}/revisions"
		m.Mount("GET "+g, h.group(h.list))
		m.Mount("GET "+g+"/{n}", h.group(h.get))
		m.Mount("GET "+g+"/{n}/diff", h.group(h.diff))
		m.Mount("POST "+g+"/{n}/rollback", h.group(h.rollback))
	}
}

type handlers struct {
	s *Service
	m Mounter
}

// group resolves the caller's group before fn runs.
func (h *handlers) group(fn func(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := h.m.LookupGroup(r, r.PathValue("groupId"))
		if err == nil {
			err = fn(w, r, g)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	})
}

// fail maps every error of the revision routes to problem+json, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := &api.Problem{}
	var se *schema.Error
	switch {
	case errors.As(err, &p):
	case errors.Is(err, ErrPruned):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "Revision " + r.PathValue("n") + " is no longer in this runtime group's history: retention removed it, or it was made before history was recorded."}
	case errors.Is(err, ErrNotFound):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "This runtime group has no revision " + r.PathValue("n") + "."}
	case errors.Is(err, store.ErrNotFound):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "The requested resource was not found."}
	case errors.As(err, &se):
		p = &api.Problem{Status: http.StatusConflict, Detail: "The rollback cannot be applied, nothing changed: " + se.Message}
	case errors.Is(err, context.Canceled):
		return
	default:
		p = api.ServerProblem(w, r, h.s.log, err)
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	api.WriteProblem(w, r, p)
}

func badParam(field, source, reason string) error {
	return &api.Problem{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest), Detail: "Invalid " + source + " parameter " + field + ".",
		InvalidParameters: []api.InvalidParameter{{Field: field, Rule: "range", Reason: reason, Source: source}}}
}

// number parses a revision number: an integer of at least min.
func number(field, source, v string, lowest int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lowest {
		return 0, badParam(field, source, fmt.Sprintf("must be an integer of at least %d", lowest))
	}
	return n, nil
}

// RevisionView is a revision as the API shows it.
type RevisionView struct {
	Number int64 `json:"number"`
	// ConfigHash is the configuration hash; null when not known (it is given with the
	// configuration).
	ConfigHash *string            `json:"config_hash"`
	CreatedAt  time.Time          `json:"created_at"`
	Actor      *entitystore.Actor `json:"actor"`
	// Source is admin-api, rollback or import.
	Source string `json:"source"`
	// Summary counts created, updated and deleted entities per entity type.
	Summary map[string]entitystore.Counts `json:"summary"`
	// Config is Kong's flattened declarative 3.0 configuration of the revision, with ?include=config.
	Config map[string]any `json:"config,omitempty"`
}

func view(r entitystore.Revision) RevisionView {
	v := RevisionView{Number: r.Number, CreatedAt: r.CreatedAt, Source: r.Source, Summary: r.Summary}
	if r.Hash != "" {
		v.ConfigHash = &r.Hash
	}
	if r.Actor != (entitystore.Actor{}) {
		a := r.Actor
		v.Actor = &a
	}
	if v.Summary == nil {
		v.Summary = map[string]entitystore.Counts{}
	}
	return v
}

type pageMeta struct {
	Number int `json:"number"`
	Size   int `json:"size"`
	Total  int `json:"total"`
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	size, page := int64(DefaultPageSize), int64(1)
	var err error
	if v := r.URL.Query().Get("page[size]"); v != "" {
		if size, err = number("page[size]", "query", v, 1); err != nil || size > MaxPageSize {
			return badParam("page[size]", "query", fmt.Sprintf("must be an integer between 1 and %d", MaxPageSize))
		}
	}
	if v := r.URL.Query().Get("page[number]"); v != "" {
		if page, err = number("page[number]", "query", v, 1); err != nil {
			return err
		}
	}
	revs, total, err := h.s.List(r.Context(), g.ID, int(size), int((page-1)*size))
	if err != nil {
		return err
	}
	data := make([]RevisionView, 0, len(revs))
	for _, rv := range revs {
		data = append(data, view(rv))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{"page": pageMeta{Number: int(page), Size: int(size), Total: total}}})
	return nil
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	n, err := number("revision", "path", r.PathValue("n"), 1)
	if err != nil {
		return err
	}
	include := r.URL.Query().Get("include")
	if include != "" && include != "config" {
		return &api.Problem{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest), Detail: "Invalid query parameter include.",
			InvalidParameters: []api.InvalidParameter{{Field: "include", Rule: "enum", Reason: "must be config", Source: "query", Choices: []string{"config"}}}}
	}
	rev, err := h.s.Get(r.Context(), g.ID, n)
	if err != nil {
		return err
	}
	v := view(rev)
	if include == "config" {
		c, err := h.s.Config(r.Context(), g.ID, n)
		if err != nil {
			return err
		}
		v.Config, v.ConfigHash = c.ConfigTable, &c.Hash
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (h *handlers) diff(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	n, err := number("revision", "path", r.PathValue("n"), 1)
	if err != nil {
		return err
	}
	against := n - 1
	if v := r.URL.Query().Get("against"); v != "" {
		if against, err = number("against", "query", v, 0); err != nil {
			return err
		}
	}
	if _, err := h.s.Get(r.Context(), g.ID, n); err != nil {
		return err
	}
	d, err := h.s.Diff(r.Context(), g.ID, n, against)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrPruned) {
			// n exists: it is against that is missing.
			reason := "is not a revision of this runtime group"
			if errors.Is(err, ErrPruned) {
				reason = "is no longer in this runtime group's history (retention removed it, or it predates history)"
			}
			return &api.Problem{Status: http.StatusNotFound, Title: http.StatusText(http.StatusNotFound), Detail: fmt.Sprintf("Revision %d %s.", against, reason)}
		}
		return err
	}
	api.WriteJSON(w, http.StatusOK, d)
	return nil
}

func (h *handlers) rollback(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	n, err := number("revision", "path", r.PathValue("n"), 1)
	if err != nil {
		return err
	}
	rev, rolled, err := h.s.Rollback(r.Context(), g.ID, n)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !rolled {
		status = http.StatusOK
	}
	api.WriteJSON(w, status, view(rev))
	return nil
}
