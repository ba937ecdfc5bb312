// Package analyticsapi serves the analytics API on the management API:
//
//	GET /v2/runtime-groups/{groupId}/analytics   (and /v2/control-planes/{groupId}/analytics)
//	GET /v2/analytics                            every group of the caller's organization and
//	                                             region; adds the control_plane dimension
//
// Parameters: time_range (15m, 1h, 6h, 12h, 24h, 7d, 30d; default 1h) or start and end (RFC 3339);
// granularity (minute, hour, day; default from the time range); metrics and dimensions (comma
// lists; defaults request_count and time); filter[<dimension>][eq] (repeatable) and
// filter[<dimension>][in] (comma list). Buckets are aligned to the granularity and every bucket of
// the range is present, zeros included. The answer is JSON ({"meta", "data"}) or, with
// Accept: text/csv, the same rows as CSV. Errors are problem+json with invalid_parameters.
package analyticsapi

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/analytics"
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

// Options configure New.
type Options struct {
	// Analytics answers the queries; required.
	Analytics *analytics.Store
	// Store lists the caller's groups (org-wide endpoint, control_plane names); required.
	Store store.Store
	// Entities resolves service, route and consumer names; required.
	Entities *entitystore.Store
	// Region is the deployment this control plane serves; required.
	Region string
	// NodeNames, if set, returns the hostname of each node id of the given groups (the cluster's
	// node catalogue); nodes it does not know show as "(deleted)". Without it nodes show their id.
	NodeNames func(ctx context.Context, groupIDs []string) (map[string]string, error)
	// Now returns the current time; defaults to time.Now. Time ranges end with its bucket.
	Now func() time.Time
	// Logger receives failures; defaults to discarding them.
	Logger *slog.Logger
}

// Handler serves the analytics API. Build it with New.
type Handler struct {
	opts Options // immutable after New
	log  *slog.Logger
}

// New checks opts.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Analytics == nil:
		return nil, errors.New("analyticsapi: Analytics is required")
	case opts.Store == nil:
		return nil, errors.New("analyticsapi: Store is required")
	case opts.Entities == nil:
		return nil, errors.New("analyticsapi: Entities is required")
	case opts.Region == "":
		return nil, errors.New("analyticsapi: Region is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: opts.Logger.With("component", "analytics-api")}, nil
}

// Mount registers the routes on m.
func (h *Handler) Mount(m Mounter) {
	for _, base := range api.GroupBasePaths {
		m.Mount("GET "+base+"/{groupId}/analytics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g, err := m.LookupGroup(r, r.PathValue("groupId"))
			if err != nil {
				h.fail(w, r, err)
				return
			}
			h.serve(w, r, []store.RuntimeGroup{g}, false)
		}))
	}
	m.Mount("GET /v2/analytics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := api.PrincipalFrom(r.Context())
		groups, err := h.orgGroups(r.Context(), p.OrgID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		// Only the groups the caller may see count.
		subj, _ := api.SubjectFrom(r.Context())
		groups = slices.DeleteFunc(groups, func(g store.RuntimeGroup) bool { return subj == nil || !subj.Sees(g.ID, g.Region) })
		h.serve(w, r, groups, true)
	}))
}

// orgGroups lists every group of the organization in this region.
func (h *Handler) orgGroups(ctx context.Context, orgID string) ([]store.RuntimeGroup, error) {
	var out []store.RuntimeGroup
	for page := 1; ; page++ {
		gs, total, err := h.opts.Store.ListGroups(ctx, store.GroupQuery{OrgID: orgID, Region: h.opts.Region, PageSize: 100, PageNumber: page})
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		out = append(out, gs...)
		if len(gs) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

// answer is the JSON body.
type answer struct {
	Meta meta      `json:"meta"`
	Data []dataRow `json:"data"`
}

type meta struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Granularity string    `json:"granularity"`
	Metrics     []string  `json:"metrics"`
	Dimensions  []string  `json:"dimensions"`
	// Display maps dimension -> id -> current name.
	Display map[string]map[string]string `json:"display"`
}

type dataRow struct {
	Timestamp  time.Time           `json:"timestamp"`
	Dimensions map[string]string   `json:"dimensions"`
	Metrics    map[string]*float64 `json:"metrics"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, groups []store.RuntimeGroup, orgWide bool) {
	req, err := parse(r.URL.Query(), h.opts.Now(), orgWide)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := req.query
	for _, g := range groups {
		q.GroupIDs = append(q.GroupIDs, g.ID)
	}
	var rows []analytics.Row
	if len(q.GroupIDs) > 0 {
		if rows, err = h.opts.Analytics.Query(r.Context(), q); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	display, err := h.display(r.Context(), q, rows, groups)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if wantsCSV(r) {
		h.writeCSV(w, q, rows, display)
		return
	}
	a := answer{
		Meta: meta{Start: q.Start, End: q.End, Granularity: string(q.Granularity), Metrics: names(q.Metrics), Dimensions: req.dimensions, Display: display},
		Data: make([]dataRow, len(rows)),
	}
	for i, row := range rows {
		d := dataRow{Timestamp: row.Start, Dimensions: make(map[string]string, len(q.Dimensions)), Metrics: make(map[string]*float64, len(q.Metrics))}
		for j, dim := range q.Dimensions {
			d.Dimensions[string(dim)] = row.Dims[j]
		}
		for j, m := range q.Metrics {
			d.Metrics[string(m)] = number(row.Values[j])
		}
		a.Data[i] = d
	}
	api.WriteJSON(w, http.StatusOK, a)
}

// number is v for JSON: nil (null) for NaN.
func number(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(mt, "text/csv") {
			return true
		}
	}
	return false
}

// writeCSV sends the rows as CSV: timestamp, each dimension (and its display name where it has
// one), each metric; an undefined metric is an empty cell.
func (h *Handler) writeCSV(w http.ResponseWriter, q analytics.Query, rows []analytics.Row, display map[string]map[string]string) {
	header := []string{"timestamp"}
	for _, d := range q.Dimensions {
		header = append(header, string(d))
		if _, ok := display[string(d)]; ok {
			header = append(header, string(d)+"_name")
		}
	}
	header = append(header, names(q.Metrics)...)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	// Write errors mean the client is gone after the status was sent; nobody is left to tell.
	_ = cw.Write(header)
	rec := make([]string, 0, len(header))
	for _, row := range rows {
		rec = append(rec[:0], row.Start.Format(time.RFC3339))
		for j, d := range q.Dimensions {
			rec = append(rec, row.Dims[j])
			if names, ok := display[string(d)]; ok {
				rec = append(rec, names[row.Dims[j]])
			}
		}
		for _, v := range row.Values {
			if math.IsNaN(v) {
				rec = append(rec, "")
			} else {
				rec = append(rec, strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
}

// fail is the one place where this package's errors become answers.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *api.Problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, analytics.ErrInvalid):
		p = &api.Problem{Status: http.StatusBadRequest, Detail: "The analytics query is not valid: " + err.Error()}
	case errors.Is(err, store.ErrNotFound):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "The requested resource was not found."}
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		p = &api.Problem{Status: 499, Detail: "The request was cancelled."}
	default:
		p = api.ServerProblem(w, r, h.log, err)
	}
	api.WriteProblem(w, r, p)
}

// Display names of ids that have none of their own.
const (
	// NameDeleted is shown for an id whose entity, node or group no longer exists.
	NameDeleted = "(deleted)"
	// NameNone is shown for the empty id: no service or route matched, no consumer identified.
	NameNone = "(none)"
)

// display maps the ids of the named dimensions in rows to their current names.
func (h *Handler) display(ctx context.Context, q analytics.Query, rows []analytics.Row, groups []store.RuntimeGroup) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	groupIDs := make([]string, len(groups))
	for i, g := range groups {
		groupIDs[i] = g.ID
	}
	for j, d := range q.Dimensions {
		ids := map[string]bool{}
		for _, row := range rows {
			ids[row.Dims[j]] = true
		}
		var resolved map[string]string
		var err error
		switch d {
		case analytics.DimService:
			resolved, err = h.entityNames(ctx, groupIDs, "services", ids, "name")
		case analytics.DimRoute:
			resolved, err = h.entityNames(ctx, groupIDs, "routes", ids, "name")
		case analytics.DimConsumer:
			resolved, err = h.entityNames(ctx, groupIDs, "consumers", ids, "username", "custom_id")
		case analytics.DimNode:
			resolved, err = h.nodeNames(ctx, groupIDs)
		case analytics.DimControlPlane:
			resolved = map[string]string{}
			for _, g := range groups {
				resolved[g.ID] = g.Name
			}
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		names := make(map[string]string, len(ids))
		for id := range ids {
			switch n, ok := resolved[id]; {
			case id == "":
				names[id] = NameNone
			case ok:
				names[id] = n
			case id == "other":
				names[id] = "other"
			case d == analytics.DimNode && h.opts.NodeNames == nil:
				names[id] = id
			default:
				names[id] = NameDeleted
			}
		}
		out[string(d)] = names
	}
	return out, nil
}

// nodeNames returns the hostnames of the groups' nodes.
func (h *Handler) nodeNames(ctx context.Context, groupIDs []string) (map[string]string, error) {
	if h.opts.NodeNames == nil {
		return nil, nil
	}
	n, err := h.opts.NodeNames(ctx, groupIDs)
	if err != nil {
		return nil, fmt.Errorf("node names: %w", err)
	}
	return n, nil
}

// listThreshold: above this many ids, a group's whole collection is listed once instead of
// reading each entity.
const listThreshold = 32

// entityNames resolves entity ids of a collection to the first non-empty field of fields, or to
// the id when they are all empty. Ids not found in any of the groups are absent.
func (h *Handler) entityNames(ctx context.Context, groupIDs []string, collection string, ids map[string]bool, fields ...string) (map[string]string, error) {
	ent, ok := schemaLookup(collection)
	if !ok {
		return nil, fmt.Errorf("no schema for %s", collection)
	}
	out := map[string]string{}
	pending := make([]string, 0, len(ids))
	for id := range ids {
		if id != "" && id != "other" {
			pending = append(pending, id)
		}
	}
	slices.Sort(pending)
	name := func(d entitystore.Doc) string {
		for _, f := range fields {
			if s, ok := d[f].(string); ok && s != "" {
				return s
			}
		}
		id, _ := d["id"].(string)
		return id
	}
	for _, g := range groupIDs {
		if len(pending) == 0 {
			break
		}
		err := h.opts.Entities.Read(ctx, g, func(tx *entitystore.Tx) error {
			if len(pending) > listThreshold {
				docs, _, err := tx.List(ent, entitystore.ListQuery{})
				if err != nil {
					return err
				}
				for _, d := range docs {
					if id, _ := d["id"].(string); ids[id] {
						out[id] = name(d)
					}
				}
				return nil
			}
			for _, id := range pending {
				d, err := tx.Get(ent, id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				out[id] = name(d)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s names: %w", collection, err)
		}
		pending = slices.DeleteFunc(pending, func(id string) bool { _, ok := out[id]; return ok })
	}
	return out, nil
}
