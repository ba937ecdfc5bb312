package cluster

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/wire"
)

// Mounter is where the cluster's management routes go: *api.API satisfies it. Mount must
// authenticate; LookupGroup must return the caller's group or an error (an *api.Problem for a
// 404).
type Mounter interface {
	Mount(pattern string, h http.Handler)
	LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error)
}

// Page sizes of the node catalogue.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Mount registers, under both /v2/runtime-groups and /v2/control-planes:
//
//	GET    {base}/{groupId}/nodes                    list (page[size], cursor page[after])
//	GET    {base}/{groupId}/nodes/{nodeId}           one node
//	DELETE {base}/{groupId}/nodes/{nodeId}           forget a node (it reappears if it pings)
//	GET    {base}/{groupId}/expected-config-hash     {expected_hash, created_at, updated_at}
//	GET    {base}/{groupId}/dp-client-certificates   pinned certificates
//	POST   {base}/{groupId}/dp-client-certificates   pin {cert, title}
//	POST   {base}/{groupId}/dp-client-certificates/generate   issue and pin {title}; returns the key once
//	GET    {base}/{groupId}/dp-client-certificates/{certId}
//	DELETE {base}/{groupId}/dp-client-certificates/{certId}   unpin (connected instances are dropped)
//	POST   {base}/{groupId}/enrollment-tokens        {ttl, max_uses, labels}; returns the token once
//	GET    {base}/{groupId}/enrollment-tokens        list (no secrets)
//	DELETE {base}/{groupId}/enrollment-tokens/{tokenId}   revoke
//
// and GET /v2/control-plane-nodes, the control plane processes sharing the database.
func (c *Cluster) Mount(m Mounter) {
	h := &handlers{c: c, m: m}
	for _, base := range api.GroupBasePaths {
		g := base + "/{groupId}"
		m.Mount("GET "+g+"/nodes", h.group(h.listNodes))
		m.Mount("GET "+g+"/nodes/{nodeId}", h.group(h.getNode))
		m.Mount("DELETE "+g+"/nodes/{nodeId}", h.group(h.deleteNode))
		m.Mount("GET "+g+"/expected-config-hash", h.group(h.expectedHash))
		m.Mount("GET "+g+"/dp-client-certificates", h.group(h.listCerts))
		m.Mount("POST "+g+"/dp-client-certificates", h.group(h.pinCert))
		m.Mount("POST "+g+"/dp-client-certificates/generate", h.group(h.generateCert))
		m.Mount("GET "+g+"/dp-client-certificates/{certId}", h.group(h.getCert))
		m.Mount("DELETE "+g+"/dp-client-certificates/{certId}", h.group(h.deleteCert))
		m.Mount("POST "+g+"/enrollment-tokens", h.group(h.createEnrollmentToken))
		m.Mount("GET "+g+"/enrollment-tokens", h.group(h.listEnrollmentTokens))
		m.Mount("DELETE "+g+"/enrollment-tokens/{tokenId}", h.group(h.revokeEnrollmentToken))
	}
	m.Mount("GET /v2/control-plane-nodes", http.HandlerFunc(c.processesHandler))
}

type handlers struct {
	c *Cluster
	m Mounter
}

// group resolves the caller's group before fn runs.
func (h *handlers) group(fn func(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := h.m.LookupGroup(r, r.PathValue("groupId"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		fn(w, r, g)
	})
}

// fail answers with problem+json; it also carries "message", which decK-style clients read.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := &api.Problem{}
	switch {
	case errors.As(err, &p):
	case errors.Is(err, store.ErrNotFound):
		p = &api.Problem{Status: http.StatusNotFound, Detail: "The requested resource was not found."}
	case errors.Is(err, store.ErrConflict):
		p = &api.Problem{Status: http.StatusConflict, Detail: "This certificate is already pinned (a certificate belongs to exactly one runtime group)."}
	case errors.Is(err, ErrCertificateInvalid):
		p = &api.Problem{Status: http.StatusBadRequest, Detail: "The certificate is not valid: " + err.Error(),
			InvalidParameters: []api.InvalidParameter{{Field: "cert", Rule: "is_certificate", Reason: err.Error(), Source: "body"}}}
	default:
		p = api.ServerProblem(w, r, h.c.log, err)
	}
	p.Message = p.Detail
	api.WriteProblem(w, r, p)
}

func badParam(field, reason string) error {
	return &api.Problem{Status: http.StatusBadRequest, Detail: "Invalid query parameter " + field + ".",
		InvalidParameters: []api.InvalidParameter{{Field: field, Reason: reason, Source: "query"}}}
}

// NodeView is a node as the API shows it: Konnect's fields plus Gantry's.
type NodeView struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	// LastPing, CreatedAt and UpdatedAt are Unix seconds.
	LastPing            int64               `json:"last_ping"`
	Type                string              `json:"type"`
	CreatedAt           int64               `json:"created_at"`
	UpdatedAt           int64               `json:"updated_at"`
	ConfigHash          string              `json:"config_hash"`
	CompatibilityStatus CompatibilityStatus `json:"compatibility_status"`

	// Status is derived: in_sync, behind, apply_failed, incompatible or disconnected.
	Status    Status `json:"status"`
	Connected bool   `json:"connected"`
	// ConnectedSince is when the current link began, or the last one if disconnected (Unix
	// seconds); null if never connected.
	ConnectedSince *int64 `json:"connected_since"`
	// DisconnectedSince is when a disconnected node's last link ended (Unix seconds): when the
	// control plane saw it end, else the last heartbeat of the control plane process that held
	// it and died, else its last ping (it fell silent); null while connected.
	DisconnectedSince *int64 `json:"disconnected_since"`
	// Revision is the group revision the node runs; 0 when unknown.
	Revision int64 `json:"revision"`
	// LastError is the last apply failure it reported; null when none.
	LastError *string `json:"last_error"`
	// CertExpiry is its client certificate's notAfter (Unix seconds); null if unknown.
	CertExpiry *int64            `json:"cert_expiry"`
	SyncStatus wire.SyncStatus   `json:"sync_status"`
	IP         string            `json:"ip"`
	Labels     map[string]string `json:"labels"`
	// Analytics says whether the node's traffic reaches the group's analytics.
	Analytics AnalyticsView `json:"analytics"`
	// ControlPlaneNodeID is the control plane process (GET /v2/control-plane-nodes) holding
	// the node's link, or that held it last; null when unknown.
	ControlPlaneNodeID *string `json:"control_plane_node_id"`
	// EnrollmentTokenID is the enrollment token that issued the node's certificate; null for
	// certificates generated or pinned by hand.
	EnrollmentTokenID *string `json:"enrollment_token_id"`
}

// AnalyticsView says whether a node sends analytics, and why not.
type AnalyticsView struct {
	// Available is true when the node sends per-minute traffic aggregates.
	Available bool `json:"available"`
	// Reason says why a node sends none; empty when Available.
	Reason string `json:"reason,omitempty"`
}

// analyticsView derives a node's AnalyticsView from its type and what its link negotiated.
func analyticsView(n Node) AnalyticsView {
	switch {
	case n.Analytics:
		return AnalyticsView{Available: true}
	case n.Type == TypeKong:
		return AnalyticsView{Reason: "analytics not available: Kong data planes send no traffic aggregates to Gantry"}
	default:
		return AnalyticsView{Reason: "analytics not available: the runtime runs with analytics turned off (--analytics=false) or predates them"}
	}
}

// CompatibilityStatus is Konnect's node compatibility_status.
type CompatibilityStatus struct {
	// State is COMPATIBILITY_STATE_FULLY_COMPATIBLE, _INCOMPATIBLE or _UNKNOWN.
	State  string                    `json:"state"`
	Issues []wire.CompatibilityIssue `json:"issues"`
}

func ptr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.Unix()
	return &v
}

func (c *Cluster) view(n Node, expectedHash string) NodeView {
	v := NodeView{
		ID: n.ID, Version: n.Version, Hostname: n.Hostname, LastPing: n.LastPing.Unix(), Type: n.Type,
		CreatedAt: n.CreatedAt.Unix(), UpdatedAt: n.UpdatedAt.Unix(), ConfigHash: n.ConfigHash,
		Status: DeriveStatus(n, expectedHash, c.now(), c.opts.PingWait), ConnectedSince: ptr(n.ConnectedSince),
		Revision: n.Revision, CertExpiry: ptr(n.CertExpiry), SyncStatus: n.SyncStatus, IP: n.IP, Labels: n.Labels,
		Analytics: analyticsView(n),
	}
	v.Connected = v.Status != StatusDisconnected
	if !v.Connected {
		at := n.DisconnectedAt
		if at.IsZero() || n.Connected {
			// Connected but silent for longer than the ping wait: it fell silent at its last ping.
			at = n.LastPing
		}
		v.DisconnectedSince = ptr(at)
	}
	if n.LastError != "" {
		v.LastError = &n.LastError
	}
	if n.ControlPlaneID != "" {
		v.ControlPlaneNodeID = &n.ControlPlaneID
	}
	if n.EnrollmentTokenID != "" {
		v.EnrollmentTokenID = &n.EnrollmentTokenID
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	v.CompatibilityStatus.Issues = n.Compatibility
	switch {
	case len(n.Compatibility) > 0:
		v.CompatibilityStatus.State = "COMPATIBILITY_STATE_INCOMPATIBLE"
	case n.SyncStatus == wire.SyncStatusNormal:
		v.CompatibilityStatus.State = "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
	default:
		v.CompatibilityStatus.State = "COMPATIBILITY_STATE_UNKNOWN"
	}
	if v.CompatibilityStatus.Issues == nil {
		v.CompatibilityStatus.Issues = []wire.CompatibilityIssue{}
	}
	return v
}

// expected returns the group's current snapshot, or nil when it cannot be built.
func (c *Cluster) expected(ctx context.Context, groupID string) *snapshot.Snapshot {
	s, err := c.snaps.Build(ctx, groupID)
	if err != nil {
		return nil
	}
	return s
}

// expectedFor returns the hash node n runs once it runs snapshot s: for a Kong data plane, the
// hash of the variant for its version (which differs from s.Hash when its version needs a
// downgraded configuration); for a Gantry runtime, s.Hash. "" when s is nil.
func (c *Cluster) expectedFor(s *snapshot.Snapshot, n Node) string {
	if s == nil {
		return ""
	}
	if n.Type == TypeKong {
		if v, err := s.ForKong(n.Version); err == nil {
			return v.Hash
		}
	}
	return s.Hash
}

func (h *handlers) listNodes(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	q := r.URL.Query()
	size := DefaultPageSize
	if s := q.Get("page[size]"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			h.fail(w, r, badParam("page[size]", "must be an integer from 1 to 1000"))
			return
		}
		size = n
	}
	nodes, total, err := h.c.nodes.list(r.Context(), g.ID, q.Get("page[after]"), size+1)
	if err == nil {
		err = h.c.markLiveness(r.Context(), nodes)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var next *string
	if len(nodes) > size {
		nodes = nodes[:size]
		cursor := nodes[size-1].ID
		next = &cursor
	}
	expected := h.c.expected(r.Context(), g.ID)
	items := make([]NodeView, 0, len(nodes))
	for _, n := range nodes {
		items = append(items, h.c.view(n, h.c.expectedFor(expected, n)))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": items, "page": map[string]any{"total_count": total, "next": next}})
}

func (h *handlers) getNode(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	n, err := h.c.nodes.get(r.Context(), g.ID, r.PathValue("nodeId"))
	if err == nil {
		one := []Node{n}
		err = h.c.markLiveness(r.Context(), one)
		n = one[0]
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"item": h.c.view(n, h.c.expectedFor(h.c.expected(r.Context(), g.ID), n))})
}

func (h *handlers) deleteNode(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	ok, err := h.c.nodes.delete(r.Context(), g.ID, r.PathValue("nodeId"))
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) expectedHash(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	s, err := h.c.snaps.Build(r.Context(), g.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"expected_hash": s.Hash, "created_at": s.BuiltAt.Unix(), "updated_at": s.BuiltAt.Unix(), "revision": s.Revision})
}

func (h *handlers) listCerts(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	certs, err := h.c.Certificates(r.Context(), g.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": certs, "page": map[string]any{"total_count": len(certs)}})
}

func (h *handlers) pinCert(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	var body struct {
		Cert  string `json:"cert"`
		Title string `json:"title"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if body.Cert == "" {
		h.fail(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "cert is required.",
			InvalidParameters: []api.InvalidParameter{{Field: "cert", Rule: "required", Reason: "is a required field", Source: "body"}}})
		return
	}
	p, err := h.c.PinCertificate(r.Context(), g.ID, body.Title, body.Cert)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"item": p})
}

func (h *handlers) generateCert(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	var body struct {
		Title string `json:"title"`
	}
	if r.ContentLength != 0 {
		if err := api.DecodeJSON(w, r, &body); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	issued, err := h.c.IssueCertificate(r.Context(), g.ID, body.Title)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"item": issued.Certificate, "key": issued.KeyPEM, "ca_cert": issued.CAPEM})
}

func (h *handlers) getCert(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	p, err := h.c.Certificate(r.Context(), g.ID, r.PathValue("certId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"item": p})
}

func (h *handlers) deleteCert(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	if err := h.c.UnpinCertificate(r.Context(), g.ID, r.PathValue("certId")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// InstanceCounts returns, per group id, how many of its instances are in each Status; wire it
// to api.Options.InstanceCounts. Groups whose nodes cannot be read are left out.
func (c *Cluster) InstanceCounts(ctx context.Context, groupIDs []string) map[string]map[string]int {
	out := make(map[string]map[string]int, len(groupIDs))
	nodes, err := c.nodes.groupsNodes(ctx, groupIDs)
	if err == nil {
		err = c.markLiveness(ctx, nodes)
	}
	if err != nil {
		c.log.WarnContext(ctx, "cannot count instances", "err", err)
		return out
	}
	expected := map[string]*snapshot.Snapshot{}
	for _, id := range groupIDs {
		out[id] = map[string]int{}
	}
	for _, n := range nodes {
		s, ok := expected[n.GroupID]
		if !ok {
			s = c.expected(ctx, n.GroupID)
			expected[n.GroupID] = s
		}
		out[n.GroupID][string(DeriveStatus(n, c.expectedFor(s, n), c.now(), c.opts.PingWait))]++
	}
	return out
}

// purgeOnce runs the purge of silent nodes and of the registry rows of long-gone processes, on one
// process at a time when several share the database.
func (c *Cluster) purgeOnce(ctx context.Context) {
	_, err := c.st.Exclusive(ctx, "cluster-purge", func(ctx context.Context, conn *sql.Conn) error {
		if _, err := c.Purge(ctx); err != nil {
			return err
		}
		return c.forgetProcesses(ctx, conn)
	})
	if err != nil && ctx.Err() == nil {
		c.log.WarnContext(ctx, "purge failed; retrying at the next one", "err", err)
	}
}

// Purge deletes the nodes that have been silent for longer than PurgeDelay and returns how many
// went. Serve runs it periodically, on one process at a time.
func (c *Cluster) Purge(ctx context.Context) (int64, error) {
	n, err := c.nodes.purge(ctx, c.now().Add(-c.opts.PurgeDelay))
	if err != nil {
		c.log.WarnContext(ctx, "purge of silent nodes failed", "err", err)
		return 0, err
	}
	if n > 0 {
		c.log.InfoContext(ctx, "purged silent nodes", "count", n, "purge_delay", c.opts.PurgeDelay)
	}
	return n, nil
}

// NodeHostnames returns the hostname of every catalogued node of the groups, by node id; wire it
// to analyticsapi.Options.NodeNames. Nodes purged from the catalogue are absent.
func (c *Cluster) NodeHostnames(ctx context.Context, groupIDs []string) (map[string]string, error) {
	nodes, err := c.nodes.groupsNodes(ctx, groupIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(nodes))
	for _, n := range nodes {
		out[n.ID] = n.Hostname
	}
	return out, nil
}
