package api

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-gw/gantry/internal/cp/policy"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// Cluster types and auth types a runtime group may have (Konnect's values).
var (
	ClusterTypes = []string{"CLUSTER_TYPE_CONTROL_PLANE", "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER"}
	AuthTypes    = []string{"pinned_client_certs", "pki_client_certs"}
)

// Limits of runtime-group fields.
const (
	maxGroupName        = 100
	maxGroupDescription = 250
	maxLabels           = 50
	maxLabelKey         = 63
	maxLabelValue       = 63
	defaultPageSize     = 10
	maxPageSize         = 100
)

var reservedLabelPrefixes = []string{"kong", "konnect", "mesh", "kic", "_"}

var labelValueRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9 ._-]*[a-zA-Z0-9])?$`)

// groupJSON is a runtime group as the API shows it.
type groupJSON struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"`
	Config      groupConfigJSON   `json:"config"`
	IsDefault   bool              `json:"is_default"`
	// InstanceCounts says how many runtime instances of the group are in each status.
	InstanceCounts map[string]int `json:"instance_counts,omitempty"`
	// GroupTraffic adds requests_24h and error_rate_24h when the control plane keeps analytics.
	*GroupTraffic
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type groupConfigJSON struct {
	ControlPlaneEndpoint string `json:"control_plane_endpoint"`
	TelemetryEndpoint    string `json:"telemetry_endpoint"`
	ClusterType          string `json:"cluster_type"`
	AuthType             string `json:"auth_type"`
	CloudGateway         bool   `json:"cloud_gateway"`
	ProxyURLs            []any  `json:"proxy_urls"`
}

func (a *API) groupView(g store.RuntimeGroup) groupJSON {
	labels := g.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return groupJSON{
		ID: g.ID, Name: g.Name, Description: g.Description, Labels: labels, IsDefault: g.IsDefault,
		Config: groupConfigJSON{
			ControlPlaneEndpoint: a.opts.ClusterEndpoint, TelemetryEndpoint: a.opts.TelemetryEndpoint,
			ClusterType: g.ClusterType, AuthType: g.AuthType, ProxyURLs: []any{},
		},
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}
}

type createGroupRequest struct {
	Name         *string     `json:"name"`
	Description  *string     `json:"description"`
	Labels       labelValues `json:"labels"`
	ClusterType  *string     `json:"cluster_type"`
	AuthType     *string     `json:"auth_type"`
	CloudGateway *bool       `json:"cloud_gateway"`
}

type patchGroupRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	// Labels merge into the existing ones; a null value removes that label.
	Labels   patchLabels `json:"labels"`
	AuthType *string     `json:"auth_type"`
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	var req createGroupRequest
	if err := DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	var bad []InvalidParameter
	if req.Name == nil {
		bad = append(bad, InvalidParameter{Field: "name", Rule: "required", Reason: "is a required field", Source: "body"})
	} else {
		bad = append(bad, checkName(*req.Name)...)
	}
	g := store.RuntimeGroup{
		ID: uuid.NewString(), OrgID: principal(r).OrgID, Region: a.region,
		ClusterType: ClusterTypes[0], AuthType: AuthTypes[0], Labels: map[string]string(req.Labels),
	}
	if req.Name != nil {
		g.Name = *req.Name
	}
	if req.Description != nil {
		g.Description = *req.Description
		bad = append(bad, checkDescription(g.Description)...)
	}
	if req.ClusterType != nil {
		g.ClusterType = *req.ClusterType
		bad = append(bad, checkEnum("cluster_type", g.ClusterType, ClusterTypes)...)
	}
	if req.AuthType != nil {
		g.AuthType = *req.AuthType
		bad = append(bad, checkEnum("auth_type", g.AuthType, AuthTypes)...)
	}
	if req.CloudGateway != nil && *req.CloudGateway {
		bad = append(bad, InvalidParameter{Field: "cloud_gateway", Rule: "enum", Reason: "must be false: Gantry runs self-hosted runtime instances only", Source: "body"})
	}
	bad = append(bad, checkLabels(g.Labels)...)
	if len(bad) > 0 {
		a.fail(w, r, badRequest("The runtime group is not valid.", bad...))
		return
	}
	now := a.now().UTC()
	g.CreatedAt, g.UpdatedAt = now, now
	if err := a.createGroupFor(r, g); err != nil {
		a.fail(w, r, nameConflict(err, g.Name))
		return
	}
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+g.ID)
	WriteJSON(w, http.StatusCreated, a.groupView(g))
}

// nameConflict gives a duplicate-name error a detail that says which name is taken.
func nameConflict(err error, name string) error {
	if isConflict(err) {
		return &Problem{Status: http.StatusConflict, Detail: fmt.Sprintf("A runtime group named %q already exists in this organization and region.", name)}
	}
	return err
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.LookupGroup(r, r.PathValue("groupId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, a.withCounts(r, a.groupView(g))[0])
}

// withCounts adds instance counts to group views when the control plane tracks instances.
func (a *API) withCounts(r *http.Request, views ...groupJSON) []groupJSON {
	views = a.withTraffic(r, views...)
	if a.opts.InstanceCounts == nil || len(views) == 0 {
		return views
	}
	ids := make([]string, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	counts := a.opts.InstanceCounts(r.Context(), ids)
	for i := range views {
		views[i].InstanceCounts = counts[views[i].ID]
		if views[i].InstanceCounts == nil {
			views[i].InstanceCounts = map[string]int{}
		}
	}
	return views
}

// withTraffic adds the last 24 hours' traffic to group views when the control plane keeps
// analytics: one call for all views.
func (a *API) withTraffic(r *http.Request, views ...groupJSON) []groupJSON {
	if a.opts.Traffic == nil || len(views) == 0 {
		return views
	}
	ids := make([]string, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	traffic := a.opts.Traffic(r.Context(), ids)
	for i := range views {
		t := traffic[views[i].ID]
		views[i].GroupTraffic = &t
	}
	return views
}

// LookupGroup returns the caller's group with that id; an id of another organization, another
// region, or no group at all is the same 404.
func (a *API) LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error) {
	notFound := &Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("No runtime group with id %q.", id)}
	if _, err := uuid.Parse(id); err != nil {
		return store.RuntimeGroup{}, notFound
	}
	g, err := a.store.GetGroup(r.Context(), principal(r).OrgID, id)
	if err != nil {
		if isNotFound(err) {
			return g, notFound
		}
		return g, err
	}
	if g.Region != a.region || !a.CanSee(r.Context(), g) {
		return g, notFound
	}
	return g, nil
}

// createGroupFor creates g for the caller: a caller who would not see the new group (a Creator)
// becomes its Admin in the same transaction.
func (a *API) createGroupFor(r *http.Request, g store.RuntimeGroup) error {
	if subj, ok := SubjectFrom(r.Context()); ok && subj.Sees(g.ID, g.Region) {
		return a.store.CreateGroup(r.Context(), g)
	}
	p := principal(r)
	err := a.store.CreateGroupWithAdmin(r.Context(), g, store.RoleAssignment{
		ID: uuid.NewString(), OrgID: p.OrgID, SubjectType: store.SubjectUser, SubjectID: p.UserID, RoleName: "Admin",
		EntityTypeName: policy.EntityRuntimeGroups, EntityID: g.ID, EntityRegion: g.Region, CreatedAt: g.CreatedAt,
	})
	if err == nil {
		a.InvalidateGrants()
	}
	return err
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request) {
	current, err := a.LookupGroup(r, r.PathValue("groupId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req patchGroupRequest
	if err := DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	var bad []InvalidParameter
	if req.Name != nil {
		bad = append(bad, checkName(*req.Name)...)
	}
	if req.Description != nil {
		bad = append(bad, checkDescription(*req.Description)...)
	}
	if req.AuthType != nil {
		bad = append(bad, checkEnum("auth_type", *req.AuthType, AuthTypes)...)
	}
	merged := map[string]string{}
	for k, v := range current.Labels {
		merged[k] = v
	}
	for k, v := range req.Labels {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	bad = append(bad, checkLabels(merged)...)
	if len(bad) > 0 {
		a.fail(w, r, badRequest("The changes to the runtime group are not valid.", bad...))
		return
	}
	g, err := a.store.UpdateGroup(r.Context(), current.OrgID, current.ID, func(g *store.RuntimeGroup) error {
		if req.Name != nil {
			g.Name = *req.Name
		}
		if req.Description != nil {
			g.Description = *req.Description
		}
		if req.AuthType != nil {
			g.AuthType = *req.AuthType
		}
		if req.Labels != nil {
			g.Labels = merged
		}
		return nil
	})
	if err != nil {
		name := current.Name
		if req.Name != nil {
			name = *req.Name
		}
		a.fail(w, r, nameConflict(err, name))
		return
	}
	WriteJSON(w, http.StatusOK, a.groupView(g))
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.LookupGroup(r, r.PathValue("groupId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if g.IsDefault {
		a.fail(w, r, &Problem{Status: http.StatusConflict, Detail: "The default runtime group cannot be deleted: every organization keeps one per region."})
		return
	}
	// ?backup=true: the group's backup is the answer, taken before it goes; a backup that cannot
	// be taken keeps the group.
	var backup any
	switch v := r.URL.Query().Get("backup"); v {
	case "", "false":
	case "true":
		if a.opts.Backup == nil {
			a.fail(w, r, badRequest("The query parameters are not valid.", InvalidParameter{Field: "backup", Reason: "this control plane cannot take backups", Source: "query"}))
			return
		}
		if backup, err = a.opts.Backup(r.Context(), g); err != nil {
			a.fail(w, r, fmt.Errorf("back up runtime group %s before deleting it: %w", g.ID, err))
			return
		}
	default:
		a.fail(w, r, badRequest("The query parameters are not valid.", InvalidParameter{Field: "backup", Rule: "enum", Reason: "must be true or false", Source: "query", Choices: []string{"true", "false"}}))
		return
	}
	if err := a.store.DeleteGroup(r.Context(), g.OrgID, g.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "deleted runtime group", "group", g.ID, "name", g.Name, "request_id", requestID(r))
	if a.opts.OnGroupDeleted != nil {
		a.opts.OnGroupDeleted(g.ID)
	}
	if backup != nil {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": g.Name + "-backup.json"}))
		WriteJSON(w, http.StatusOK, backup)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type listMeta struct {
	Page pageMeta `json:"page"`
}

type pageMeta struct {
	Number int `json:"number"`
	Size   int `json:"size"`
	Total  int `json:"total"`
}

// WriteList answers one page of a page-numbered list in Konnect's shape: {"data": […], "meta":
// {"page": {"number", "size", "total"}}}. A nil data is written as [].
func WriteList[T any](w http.ResponseWriter, number, size, total int, data []T) {
	if data == nil {
		data = []T{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "meta": listMeta{Page: pageMeta{Number: number, Size: size, Total: total}}})
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	q, err := parseGroupQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q.OrgID, q.Region = principal(r).OrgID, a.region
	if subj, ok := SubjectFrom(r.Context()); ok && !subj.SeesAll(a.region) {
		q.Restricted, q.IDs = true, subj.VisibleGroups(a.region)
	}
	groups, total, err := a.store.ListGroups(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	data := make([]groupJSON, 0, len(groups))
	for _, g := range groups {
		data = append(data, a.groupView(g))
	}
	data = a.withCounts(r, data...)
	WriteList(w, q.PageNumber, q.PageSize, total, data)
}

var filterRE = regexp.MustCompile(`^filter\[([a-z_]+|labels\.[^\[\]]+)\](?:\[([a-z]+)\])?$`)

// groupFilterOps lists, per filterable field, the operators Konnect accepts.
var groupFilterOps = map[string][]string{
	"id":           {"eq", "oeq"},
	"name":         {"eq", "neq", "contains"},
	"cluster_type": {"eq", "neq", "oeq"},
}

// parseGroupQuery reads Konnect's list parameters; every bad value is reported, none ignored.
func parseGroupQuery(v url.Values) (store.GroupQuery, error) {
	q := store.GroupQuery{PageSize: defaultPageSize, PageNumber: 1}
	var bad []InvalidParameter
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
			bad = append(bad, InvalidParameter{Field: name, Rule: "range", Reason: reason, Source: "query"})
			return
		}
		*dst = n
	}
	intParam("page[size]", 1, maxPageSize, &q.PageSize)
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
			bad = append(bad, InvalidParameter{Field: k, Rule: "format", Reason: "must look like filter[field] or filter[field][op]", Source: "query"})
			continue
		}
		field, op := m[1], m[2]
		if op == "" {
			op = "eq"
		}
		if key, ok := strings.CutPrefix(field, "labels."); ok {
			// filter[labels.<key>][eq]=<value>: the groups whose label key has that value.
			val := v.Get(k)
			switch {
			case op != "eq":
				bad = append(bad, InvalidParameter{Field: k, Rule: "enum", Reason: fmt.Sprintf("operator %q is not supported for labels", op), Source: "query", Choices: []string{"eq"}})
			case val == "":
				bad = append(bad, InvalidParameter{Field: k, Rule: "required", Reason: "must not be empty", Source: "query"})
			default:
				if q.Labels == nil {
					q.Labels = map[string]string{}
				}
				q.Labels[key] = val
			}
			continue
		}
		ops, ok := groupFilterOps[field]
		if !ok {
			bad = append(bad, InvalidParameter{Field: k, Rule: "enum", Reason: "is not a filterable field", Source: "query", Choices: []string{"id", "name", "cluster_type"}})
			continue
		}
		if !contains(ops, op) {
			bad = append(bad, InvalidParameter{Field: k, Rule: "enum", Reason: fmt.Sprintf("operator %q is not supported for %s", op, field), Source: "query", Choices: ops})
			continue
		}
		val := v.Get(k)
		if val == "" {
			bad = append(bad, InvalidParameter{Field: k, Rule: "required", Reason: "must not be empty", Source: "query"})
			continue
		}
		q.Filters = append(q.Filters, store.GroupFilter{Field: field, Op: op, Value: val})
	}
	if s := v.Get("labels"); s != "" {
		if q.Labels == nil {
			q.Labels = map[string]string{}
		}
		for _, part := range strings.Split(s, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), ":")
			if k == "" {
				bad = append(bad, InvalidParameter{Field: "labels", Rule: "format", Reason: "must be a comma-separated list of key or key:value", Source: "query"})
				break
			}
			q.Labels[k] = val
		}
	}
	if s := strings.TrimSpace(v.Get("sort")); s != "" {
		field, dir, _ := strings.Cut(s, " ")
		if strings.HasPrefix(field, "-") {
			field, dir = field[1:], "desc"
		}
		dir = strings.ToLower(strings.TrimSpace(dir))
		switch {
		case !contains([]string{"name", "created_at", "updated_at"}, field):
			bad = append(bad, InvalidParameter{Field: "sort", Rule: "enum", Reason: fmt.Sprintf("cannot sort by %q", field), Source: "query", Choices: []string{"name", "created_at", "updated_at"}})
		case dir != "" && dir != "asc" && dir != "desc":
			bad = append(bad, InvalidParameter{Field: "sort", Rule: "enum", Reason: "direction must be asc or desc", Source: "query", Choices: []string{"asc", "desc"}})
		default:
			q.Sort, q.Desc = field, dir == "desc"
		}
	}
	if len(bad) > 0 {
		return q, badRequest("The query parameters are not valid.", bad...)
	}
	return q, nil
}

// labelValues are a group's labels in a request body: a value that is not a string is reported
// on its own key (labels.<key>), not on labels as a whole.
type labelValues map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (l *labelValues) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*l = nil
		return nil
	}
	out := make(labelValues, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return labelTypeError(k, v)
		}
		out[k] = s
	}
	*l = out
	return nil
}

// patchLabels are the labels of a PATCH: like labelValues, and null removes a label.
type patchLabels map[string]*string

// UnmarshalJSON implements json.Unmarshaler.
func (l *patchLabels) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*l = nil
		return nil
	}
	out := make(patchLabels, len(raw))
	for k, v := range raw {
		var s *string
		if err := json.Unmarshal(v, &s); err != nil {
			return labelTypeError(k, v)
		}
		out[k] = s
	}
	*l = out
	return nil
}

// labelTypeError reports a label value of the wrong JSON type under its key; the decoder prefixes
// the field path ("labels.").
func labelTypeError(key string, v json.RawMessage) error {
	kind := "object"
	switch t := strings.TrimSpace(string(v)); {
	case t == "":
	case t[0] == '"':
		kind = "string"
	case t[0] == '[':
		kind = "array"
	case t == "true" || t == "false":
		kind = "bool"
	case t[0] != '{':
		kind = "number"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[string](), Field: key}
}

func checkName(name string) []InvalidParameter {
	n := utf8.RuneCountInString(name)
	if strings.TrimSpace(name) == "" || n > maxGroupName {
		return []InvalidParameter{{Field: "name", Rule: "length", Reason: fmt.Sprintf("must be 1 to %d characters and not blank", maxGroupName), Source: "body"}}
	}
	return nil
}

func checkDescription(d string) []InvalidParameter {
	if utf8.RuneCountInString(d) > maxGroupDescription {
		return []InvalidParameter{{Field: "description", Rule: "length", Reason: fmt.Sprintf("must be at most %d characters", maxGroupDescription), Source: "body"}}
	}
	return nil
}

func checkEnum(field, v string, choices []string) []InvalidParameter {
	if contains(choices, v) {
		return nil
	}
	return []InvalidParameter{{Field: field, Rule: "enum", Reason: "must be one of: " + strings.Join(choices, ", "), Source: "body", Choices: choices}}
}

// checkLabels applies Konnect's label rules: at most 50; keys 1–63 characters, not starting with a
// reserved prefix; values 1–63 characters of letters, digits, space, '.', '_' and '-'.
func checkLabels(labels map[string]string) []InvalidParameter {
	var bad []InvalidParameter
	if len(labels) > maxLabels {
		bad = append(bad, InvalidParameter{Field: "labels", Rule: "max_items", Reason: fmt.Sprintf("must have at most %d labels", maxLabels), Source: "body"})
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "labels." + k
		n := utf8.RuneCountInString(k)
		switch {
		case n < 1 || n > maxLabelKey:
			bad = append(bad, InvalidParameter{Field: field, Rule: "is_label", Reason: fmt.Sprintf("key must be 1 to %d characters", maxLabelKey), Source: "body"})
			continue
		case !labelValueRE.MatchString(k) && k[0] != '_':
			bad = append(bad, InvalidParameter{Field: field, Rule: "is_label", Reason: "key must start and end with a letter or digit and contain only letters, digits, space, '.', '_' and '-'", Source: "body"})
			continue
		}
		for _, p := range reservedLabelPrefixes {
			if strings.HasPrefix(strings.ToLower(k), p) {
				bad = append(bad, InvalidParameter{Field: field, Rule: "is_label", Reason: fmt.Sprintf("key must not start with the reserved prefix %q", p), Source: "body"})
				break
			}
		}
		v := labels[k]
		if nv := utf8.RuneCountInString(v); nv < 1 || nv > maxLabelValue || !labelValueRE.MatchString(v) {
			bad = append(bad, InvalidParameter{Field: field, Rule: "is_label", Reason: fmt.Sprintf("value must be 1 to %d characters: letters, digits, space, '.', '_' and '-', starting and ending with a letter or digit", maxLabelValue), Source: "body"})
		}
	}
	return bad
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
