package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Problem is an RFC 7807 error body, the shape of every management API error, as Konnect answers.
type Problem struct {
	Status   int    `json:"status"`
	Title    string `json:"title"`
	Type     string `json:"type"`
	Instance string `json:"instance"`
	Detail   string `json:"detail"`
	// InvalidParameters is set on 400 answers only, one entry per offending input.
	InvalidParameters []InvalidParameter `json:"invalid_parameters,omitempty"`
	// Message repeats Detail for endpoints whose clients read Konnect's legacy {"message"} body
	// (dp-client-certificates); empty elsewhere.
	Message string `json:"message,omitempty"`
}

// InvalidParameter names one input that was refused and why.
type InvalidParameter struct {
	Field  string `json:"field"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
	// Source says where the input was: "body" or "query".
	Source  string   `json:"source,omitempty"`
	Choices []string `json:"choices,omitempty"`
}

// Error implements error: status, title and detail.
func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// problem builds a Problem of status with a detail for the caller.
func problem(status int, detail string) *Problem {
	return &Problem{Status: status, Title: http.StatusText(status), Detail: detail}
}

// badRequest builds a 400 with its invalid parameters.
func badRequest(detail string, params ...InvalidParameter) *Problem {
	p := problem(http.StatusBadRequest, detail)
	p.InvalidParameters = params
	return p
}

// WriteProblem sends p, filling the fields that depend on the request. Every management API error
// goes through it, including those of packages that mount routes on the API.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	writeProblem(w, requestID(r), p)
}

// writeProblem sends p as the answer to the request with the given id.
func writeProblem(w http.ResponseWriter, id string, p *Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Type = "https://httpstatuses.com/" + strconv.Itoa(p.Status)
	p.Instance = "gantry:trace:" + id
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	// A Problem has only strings and ints, so encoding cannot fail; a failed write means the
	// client is gone after the status was sent, and there is no one left to tell.
	_ = json.NewEncoder(w).Encode(p)
}

// fail answers err with Fail and the API's logger.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { Fail(w, r, a.log, err) }

// Fail is where errors of the problem+json routes become answers: problems pass through, store
// sentinel errors map to their status, and anything else is a 500 (or a 503 while the database
// is unreachable) whose detail stays in log. Packages with errors of their own map those first
// and hand the rest to Fail.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var p *Problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, store.ErrNotFound):
		p = problem(http.StatusNotFound, "The requested resource was not found.")
	case errors.Is(err, store.ErrDefaultGroup):
		p = problem(http.StatusConflict, defaultGroupDetail(err))
	case errors.Is(err, store.ErrConflict):
		p = problem(http.StatusConflict, "A resource with the same unique fields already exists.")
	case errors.Is(err, store.ErrForeignKey):
		p = problem(http.StatusConflict, "The resource references, or is referenced by, another resource.")
	case errors.Is(err, r.Context().Err()):
		p = problem(499, "The request was cancelled.")
	default:
		p = ServerProblem(w, r, log, err)
	}
	if p.Status >= 500 {
		log.Log(r.Context(), slog.LevelError, "answered with server error", "status", p.Status, "request_id", requestID(r))
	}
	WriteProblem(w, r, p)
}

// ServerProblem is the answer to an error no handler expected, for every package that serves
// problem+json: a 503 with Retry-After when the database is unreachable (nothing was carried out;
// the same request may succeed once it is back), otherwise a 500 whose detail stays in the log.
func ServerProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) *Problem {
	if store.Unavailable(err) {
		log.WarnContext(r.Context(), "database unavailable", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
		w.Header().Set("Retry-After", "5")
		return problem(http.StatusServiceUnavailable, "The database is unreachable, so the request was not carried out; try again shortly.")
	}
	log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
	return problem(http.StatusInternalServerError, "An unexpected error occurred; the request id identifies it in the server log.")
}

func defaultGroupDetail(err error) string {
	// The store's message already says which rule applies ("cannot be deleted" or "default
	// status cannot change"); strip the sentinel suffix.
	msg := err.Error()
	if i := len(msg) - len(": "+store.ErrDefaultGroup.Error()); i > 0 && msg[i:] == ": "+store.ErrDefaultGroup.Error() {
		msg = msg[:i]
	}
	return msg + "."
}

// WriteJSON sends v as JSON with status. v is encoded before anything is sent, so a value that
// cannot be encoded is answered with a 500 problem rather than with status and an empty body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Handler has set X-Request-Id to the id WriteProblem takes from the request.
		writeProblem(w, w.Header().Get("X-Request-Id"), problem(http.StatusInternalServerError, "The response could not be encoded."))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// As json.Encoder does, end the body with a newline. A failed write means the client is gone
	// after the status was sent, and there is no one left to tell.
	_, _ = w.Write(append(body, '\n'))
}
