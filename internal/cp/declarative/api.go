package declarative

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Mounter is where the routes go: *api.API satisfies it. Mount must authenticate; LookupGroup
// must return the caller's group or an error (an *api.Problem for a 404).
type Mounter interface {
	Mount(pattern string, h http.Handler)
	LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error)
}

// Mount registers, under both /v2/runtime-groups and /v2/control-planes:
//
//	GET  {base}/{groupId}/declarative-config   the configuration (YAML with Accept: application/yaml
//	                                           or text/yaml, JSON otherwise)
//	POST {base}/{groupId}/declarative-config   replace it with the posted file (?dry_run=true: the
//	                                           diff it would apply)
func (s *Service) Mount(m Mounter) {
	h := &handlers{s: s, m: m}
	for _, base := range api.GroupBasePaths {
		p := base + "/{groupId}/declarative-config"
		m.Mount("GET "+p, h.group(h.export))
		m.Mount("POST "+p, h.group(h.importFile))
	}
}

type handlers struct {
	s *Service
	m Mounter
}

// group resolves the caller's group before fn runs and maps fn's error to an answer.
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

// fail maps every error of the declarative routes to an answer, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := &api.Problem{}
	var (
		verr *ValidationError
		perr *ParseError
		mbe  *http.MaxBytesError
		se   *schema.Error
	)
	switch {
	case errors.As(err, &p):
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, verr)
		return
	case errors.As(err, &perr):
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": CodeInvalidDeclarative, "name": NameInvalidDeclarative,
			"message": perr.Error(), "fields": map[string]any{"error": perr.Err.Error()}, "flattened_errors": []any{}})
		return
	case errors.As(err, &mbe):
		limit := fmt.Sprintf("%d bytes", mbe.Limit)
		if mbe.Limit >= 1<<20 {
			limit = fmt.Sprintf("%d MiB", mbe.Limit>>20)
		}
		p = &api.Problem{Status: http.StatusRequestEntityTooLarge, Detail: "The declarative configuration is larger than the limit of " + limit + "."}
	case errors.Is(err, ErrUnsupportedMedia):
		p = &api.Problem{Status: http.StatusUnsupportedMediaType, Detail: "The declarative configuration must be sent as application/json, application/yaml or text/yaml."}
	case errors.As(err, &se):
		// A write the store refused although the plan was valid (a concurrent change).
		writeJSON(w, http.StatusBadRequest, &ValidationError{Fields: map[string]any{"@entity": []any{se.Error()}}})
		return
	case errors.Is(err, store.ErrNotFound):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "The requested resource was not found."}
	case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrForeignKey):
		// The database refused a write the plan found valid: an entity conflicts with one that
		// was still stored while the configuration was being replaced.
		writeJSON(w, http.StatusBadRequest, &ValidationError{Fields: map[string]any{"@entity": []any{"the configuration cannot replace the current one in place: " + err.Error()}}})
		return
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

// wantsYAML reports whether the Accept header asks for YAML before JSON.
func wantsYAML(r *http.Request) bool {
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/yaml", "text/yaml", "application/x-yaml":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

func (h *handlers) export(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	doc, err := h.s.Export(r.Context(), g.ID)
	if err != nil {
		return err
	}
	var body []byte
	ct := "application/json; charset=utf-8"
	if wantsYAML(r) {
		body, err = doc.YAML()
		ct = "application/yaml; charset=utf-8"
	} else {
		body, err = doc.JSON()
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// DefaultMaxBodyBytes bounds posted declarative files (64 MiB: a 30,000-entity file is about
// 15 MiB of JSON).
const DefaultMaxBodyBytes = 64 << 20

func (h *handlers) importFile(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) error {
	dry := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &api.Problem{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest), Detail: "Invalid query parameter dry_run.",
				InvalidParameters: []api.InvalidParameter{{Field: "dry_run", Rule: "type", Reason: "must be true or false", Source: "query"}}}
		}
		dry = b
	}
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return ErrUnsupportedMedia
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.s.maxBody))
	if err != nil {
		return err
	}
	in, err := Parse(mt, body)
	if err != nil {
		return err
	}
	res, err := h.s.Import(r.Context(), g.ID, in, ImportOptions{DryRun: dry})
	if err != nil {
		return err
	}
	if dry {
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "diff": res.Diff})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"revision": res.Revision, "summary": res.Summary})
	return nil
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"message":"An unexpected error occurred"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
