// Package audit serves an organization's audit log: GET /v2/audit-logs with filters and cursor
// paging, the retention job that prunes old entries, and the optional webhook that streams
// entries as signed JSON lines (GET/PATCH /v2/audit-log-webhook). Entries are written elsewhere:
// by every write in its own transaction (sqlstore.Store.RecordAudit, fed by the pending entry
// package api attaches to unsafe requests) and, for events that change nothing else (logins,
// logouts, refused requests), by Append.
package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// DefaultRetention is how long entries are kept when Options.Retention is zero.
const DefaultRetention = 365 * 24 * time.Hour

// MinRetention is the shortest retention accepted: the log is a trail, not a buffer.
const MinRetention = 24 * time.Hour

// DefaultRetentionInterval is how often the retention job runs.
const DefaultRetentionInterval = time.Hour

// Page sizes of GET /v2/audit-logs.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Options configure New.
type Options struct {
	// Store keeps the audit log; required.
	Store *sqlstore.Store
	// Logger receives the service's messages; nil discards them.
	Logger *slog.Logger
	// Retention is how long entries are kept; zero takes DefaultRetention.
	Retention time.Duration
	// RetentionInterval is how often old entries are pruned; zero takes
	// DefaultRetentionInterval.
	RetentionInterval time.Duration
	// Webhook configures the delivery of entries to each organization's webhook.
	Webhook WebhookOptions
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

// Service serves and maintains the audit log. Build it with New.
type Service struct {
	st   *sqlstore.Store
	log  *slog.Logger
	opts Options
	now  func() time.Time
}

// New checks opts and returns the service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("audit: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Retention < MinRetention {
		return nil, fmt.Errorf("audit: retention %s is shorter than %s", opts.Retention, MinRetention)
	}
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = DefaultRetentionInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Webhook.defaults()
	return &Service{st: opts.Store, log: opts.Logger.With("component", "audit"), opts: opts, now: opts.Now}, nil
}

// Mounter is where the routes go: *api.API satisfies it.
type Mounter interface {
	Mount(pattern string, h http.Handler)
}

// Route patterns the service mounts.
const (
	RouteList       = "GET /v2/audit-logs"
	RouteWebhookGet = "GET /v2/audit-log-webhook"
	RouteWebhookSet = "PATCH /v2/audit-log-webhook"
)

// Mount registers the audit log's routes.
func (s *Service) Mount(m Mounter) {
	m.Mount(RouteList, http.HandlerFunc(s.list))
	m.Mount(RouteWebhookGet, http.HandlerFunc(s.getWebhook))
	m.Mount(RouteWebhookSet, http.HandlerFunc(s.patchWebhook))
}

// Append records e outside any write transaction: for events that change nothing else, such as
// logins, logouts and failed logins. e.OrgID and e.Action are required; ID and Timestamp are
// filled in when empty; Before and After are redacted. api.RequestAudit builds an entry with the
// request's fields.
func (s *Service) Append(ctx context.Context, e store.AuditEntry) error {
	return s.st.AppendAudit(ctx, e)
}

// entryJSON is an entry as the API shows it.
type entryJSON struct {
	ID            string          `json:"id"`
	Timestamp     time.Time       `json:"timestamp"`
	ActorType     string          `json:"actor_type"`
	ActorID       string          `json:"actor_id"`
	ActorName     string          `json:"actor_name"`
	AuthMethod    string          `json:"auth_method"`
	TokenID       string          `json:"token_id"`
	Action        string          `json:"action"`
	GroupID       string          `json:"runtime_group_id"`
	EntityType    string          `json:"entity_type"`
	EntityID      string          `json:"entity_id"`
	EntityName    string          `json:"entity_name"`
	Method        string          `json:"http_method"`
	Path          string          `json:"path"`
	Status        int             `json:"status"`
	RequestID     string          `json:"request_id"`
	SourceAddress string          `json:"source_address"`
	UserAgent     string          `json:"user_agent"`
	Before        json.RawMessage `json:"before"`
	After         json.RawMessage `json:"after"`
}

func view(e store.AuditEntry) entryJSON {
	v := entryJSON{ID: e.ID, Timestamp: e.Timestamp, ActorType: e.ActorType, ActorID: e.ActorID, ActorName: e.ActorName,
		AuthMethod: e.AuthMethod, TokenID: e.TokenID, Action: e.Action, GroupID: e.GroupID, EntityType: e.EntityType,
		EntityID: e.EntityID, EntityName: e.EntityName, Method: e.Method, Path: e.Path, Status: e.Status, RequestID: e.RequestID,
		SourceAddress: e.SourceAddr, UserAgent: e.UserAgent, Before: e.Before, After: e.After}
	if len(v.Before) == 0 {
		v.Before = json.RawMessage("null")
	}
	if len(v.After) == 0 {
		v.After = json.RawMessage("null")
	}
	return v
}

// filterFields maps each accepted filter[...] name to the query field it sets.
var filterFields = map[string]func(q *store.AuditQuery, v string){
	"actor_id":         func(q *store.AuditQuery, v string) { q.ActorID = v },
	"runtime_group_id": func(q *store.AuditQuery, v string) { q.GroupID = v },
	"entity_type":      func(q *store.AuditQuery, v string) { q.EntityType = v },
	"action":           func(q *store.AuditQuery, v string) { q.Action = v },
}

var filterRE = regexp.MustCompile(`^filter\[([a-z_]+)\](?:\[([a-z]+)\])?$`)

// parseQuery reads GET /v2/audit-logs' query: page[size], page[after], filter[<field>] (or
// filter[<field>][eq]) and filter[timestamp][gte|lte] as RFC 3339 instants.
func parseQuery(v url.Values) (store.AuditQuery, []api.InvalidParameter) {
	q := store.AuditQuery{Limit: DefaultPageSize}
	var bad []api.InvalidParameter
	for k, vals := range v {
		val := vals[0]
		switch {
		case k == "page[size]":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > MaxPageSize {
				bad = append(bad, api.InvalidParameter{Field: k, Rule: "range", Reason: fmt.Sprintf("must be an integer from 1 to %d", MaxPageSize), Source: "query"})
				continue
			}
			q.Limit = n
		case k == "page[after]":
			q.After = val
		case filterRE.MatchString(k):
			m := filterRE.FindStringSubmatch(k)
			field, op := m[1], m[2]
			if field == "timestamp" {
				t, err := time.Parse(time.RFC3339, val)
				switch {
				case op != "gte" && op != "lte":
					bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "the timestamp filter takes [gte] or [lte]", Source: "query", Choices: []string{"gte", "lte"}})
				case err != nil:
					bad = append(bad, api.InvalidParameter{Field: k, Rule: "format", Reason: "must be an RFC 3339 date-time such as 2030-01-02T15:04:05Z", Source: "query"})
				case op == "gte":
					q.Since = t
				default:
					q.Until = t
				}
				continue
			}
			set, ok := filterFields[field]
			switch {
			case !ok:
				bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "unknown filter field", Source: "query",
					Choices: []string{"actor_id", "runtime_group_id", "entity_type", "action", "timestamp"}})
			case op != "" && op != "eq":
				bad = append(bad, api.InvalidParameter{Field: k, Rule: "enum", Reason: "this filter takes only [eq]", Source: "query", Choices: []string{"eq"}})
			default:
				set(&q, val)
			}
		case len(k) >= 6 && (k[:6] == "filter" || k[:4] == "page"):
			bad = append(bad, api.InvalidParameter{Field: k, Rule: "format", Reason: "unknown parameter: use page[size], page[after], filter[<field>] or filter[timestamp][gte|lte]", Source: "query"})
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		bad = append(bad, api.InvalidParameter{Field: "filter[timestamp][lte]", Rule: "range", Reason: "must not be before filter[timestamp][gte]", Source: "query"})
	}
	return q, bad
}

// list answers GET /v2/audit-logs: the caller's organization's entries, newest first.
func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	p, _ := api.PrincipalFrom(r.Context())
	q, bad := parseQuery(r.URL.Query())
	if len(bad) > 0 {
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "The audit log query is not valid.", InvalidParameters: bad})
		return
	}
	q.OrgID = p.OrgID
	entries, next, err := s.st.ListAudit(r.Context(), q)
	if errors.Is(err, sqlstore.ErrBadCursor) {
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "The audit log query is not valid.", InvalidParameters: []api.InvalidParameter{
			{Field: "page[after]", Rule: "format", Reason: "must be the meta.page.next value of a previous page", Source: "query"}}})
		return
	}
	if err != nil {
		api.WriteProblem(w, r, api.ServerProblem(w, r, s.log, err))
		return
	}
	data := make([]entryJSON, 0, len(entries))
	for _, e := range entries {
		data = append(data, view(e))
	}
	var nextPage any
	if next != "" {
		nextPage = next
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{"page": map[string]any{"size": q.Limit, "next": nextPage}}})
}

// RunRetention prunes entries older than the retention every RetentionInterval (and once at
// start) until ctx ends. With several control plane processes on one database, one of them
// prunes at a time (the store's Exclusive job "audit-retention").
func (s *Service) RunRetention(ctx context.Context) {
	t := time.NewTicker(s.opts.RetentionInterval)
	defer t.Stop()
	for {
		s.Prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune removes the entries older than the retention once, and returns how many went.
func (s *Service) Prune(ctx context.Context) int64 {
	var removed int64
	_, err := s.st.Exclusive(ctx, "audit-retention", func(ctx context.Context, _ *sql.Conn) error {
		var err error
		removed, err = s.st.PruneAudit(ctx, s.now().Add(-s.opts.Retention))
		return err
	})
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.ErrorContext(ctx, "audit log retention", "err", err)
	case removed > 0:
		s.log.InfoContext(ctx, "pruned the audit log", "removed", removed, "retention", s.opts.Retention)
	}
	return removed
}
