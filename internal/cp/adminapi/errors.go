package adminapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// httpError is an answer with Kong's plain {"message": …} body, for the cases Kong answers that
// way rather than with a coded DAO error (unknown routes, wrong methods, bad bodies).
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string { return e.message }

var (
	errNotFound         = &httpError{http.StatusNotFound, "Not found"}
	errMethodNotAllowed = &httpError{http.StatusMethodNotAllowed, "Method not allowed"}
	errBadJSON          = &httpError{http.StatusBadRequest, "Cannot parse JSON body"}
	errUnsupportedMedia = &httpError{http.StatusUnsupportedMediaType, "Unsupported Media Type"}
	errBodyTooLarge     = &httpError{http.StatusRequestEntityTooLarge, "Request body too large"}
)

func badRequest(msg string) *httpError { return &httpError{http.StatusBadRequest, msg} }

// writeError is the one place where errors become Kong answers: Kong DAO errors with their code
// and status, our plain-message errors, store.ErrNotFound as Kong's bare 404, and anything else a
// logged 500 whose detail stays on the server.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var kerr *schema.Error
	var herr *httpError
	switch {
	case errors.As(err, &kerr):
		writeJSON(w, kerr.Status(), kerr)
	case errors.As(err, &herr):
		writeJSON(w, herr.status, map[string]any{"message": herr.message})
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not found"})
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
	case store.Unavailable(err):
		// Nothing was carried out; the same request may succeed once the database is back.
		h.log.WarnContext(r.Context(), "database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": "The database is unreachable; try again shortly"})
	default:
		h.log.ErrorContext(r.Context(), "admin API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "An unexpected error occurred"})
	}
}

// writeJSON sends v as JSON with status. Encoding errors cannot be reported to the client once the
// status is sent, so they are ignored: the values written here are built from JSON-safe types.
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
