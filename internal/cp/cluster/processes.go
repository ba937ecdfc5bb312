package cluster

import (
	"context"
	"database/sql"
	"net/http"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
)

// Defaults of the control plane process registry.
const (
	// DefaultHeartbeatInterval is how often a control plane process refreshes its row in
	// control_plane_nodes.
	DefaultHeartbeatInterval = 5 * time.Second
	// processForgetAfter is how long the row of a process that stopped heartbeating stays listed
	// (as stale) before the purge removes it.
	processForgetAfter = 24 * time.Hour
)

// Process is one control plane process sharing the database, as GET /v2/control-plane-nodes
// shows it.
type Process struct {
	// ID is the process's id, new at every start.
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// Version is the gantry version the process runs.
	Version string `json:"version"`
	// APIAddress and ClusterAddress are the addresses its listeners bound (as the process
	// sees them; a load balancer in front may use others).
	APIAddress     string `json:"api_address"`
	ClusterAddress string `json:"cluster_address"`
	// StartedAt and LastHeartbeatAt are Unix seconds.
	StartedAt       int64 `json:"started_at"`
	LastHeartbeatAt int64 `json:"last_heartbeat_at"`
	// Status is "running" while its heartbeat is fresh, "unreachable" once it is older than
	// three heartbeat intervals (the process died or lost the database).
	Status string `json:"status"`
	// Instances counts the runtime instances whose links the process holds.
	Instances int `json:"instances"`
	// Self is true for the process that answered the request.
	Self bool `json:"self"`
}

// staleBefore is the heartbeat time before which a process counts as gone.
func (c *Cluster) staleBefore() time.Time {
	return c.now().Add(-3 * c.opts.HeartbeatInterval)
}

// heartbeat writes this process's row (inserting it at first), with the time now.
func (c *Cluster) heartbeat(ctx context.Context) error {
	now := c.now().Unix()
	_, err := c.st.DB().ExecContext(ctx, c.st.Rebind(`INSERT INTO control_plane_nodes
		(id, hostname, version, api_address, cluster_address, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, cluster_address = excluded.cluster_address`),
		c.opts.ProcessID, c.opts.Hostname, c.opts.Version, c.opts.APIAddress, c.listenAddr, c.started.Unix(), now)
	return err
}

// leave removes this process's row on a clean stop.
func (c *Cluster) leave(ctx context.Context) {
	if _, err := c.st.DB().ExecContext(ctx, c.st.Rebind(`DELETE FROM control_plane_nodes WHERE id = ?`), c.opts.ProcessID); err != nil {
		c.log.Warn("cannot remove this control plane process from the registry; it shows as unreachable until purged", "err", err)
	}
}

// forgetProcesses removes the rows of processes silent for processForgetAfter.
func (c *Cluster) forgetProcesses(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, c.st.Rebind(`DELETE FROM control_plane_nodes WHERE heartbeat_at < ?`), c.now().Add(-processForgetAfter).Unix())
	return err
}

// Processes lists the control plane processes sharing the database, oldest first.
func (c *Cluster) Processes(ctx context.Context) ([]Process, error) {
	rows, err := c.st.DB().QueryContext(ctx, `SELECT p.id, p.hostname, p.version, p.api_address, p.cluster_address, p.started_at, p.heartbeat_at,
		(SELECT COUNT(*) FROM cluster_nodes n WHERE n.control_plane_id = p.id AND n.connected)
		FROM control_plane_nodes p ORDER BY p.started_at, p.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stale := c.staleBefore().Unix()
	out := []Process{}
	for rows.Next() {
		var p Process
		if err := rows.Scan(&p.ID, &p.Hostname, &p.Version, &p.APIAddress, &p.ClusterAddress, &p.StartedAt, &p.LastHeartbeatAt, &p.Instances); err != nil {
			return nil, err
		}
		p.Status = "running"
		if p.LastHeartbeatAt < stale {
			p.Status, p.Instances = "unreachable", 0
		}
		p.Self = p.ID == c.opts.ProcessID
		out = append(out, p)
	}
	return out, rows.Err()
}

// heartbeats returns the last heartbeat of every registered process; this one's is now.
func (c *Cluster) heartbeats(ctx context.Context) (map[string]time.Time, error) {
	rows, err := c.st.DB().QueryContext(ctx, `SELECT id, heartbeat_at FROM control_plane_nodes`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	beats := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		beats[id] = time.Unix(at, 0).UTC()
	}
	beats[c.opts.ProcessID] = c.now()
	return beats, rows.Err()
}

// markLiveness shows as disconnected the nodes whose link is held by a process that stopped
// heartbeating (it died without writing their state), disconnected since its last heartbeat; and
// gives every disconnected node without a recorded disconnect time its best estimate.
func (c *Cluster) markLiveness(ctx context.Context, nodes []Node) error {
	beats, err := c.heartbeats(ctx)
	if err != nil {
		return err
	}
	stale := c.staleBefore()
	for i := range nodes {
		n := &nodes[i]
		if n.Connected && n.ControlPlaneID != "" {
			if beat, ok := beats[n.ControlPlaneID]; !ok || beat.Before(stale) {
				n.Connected = false
				n.DisconnectedAt = beat // zero when the process's row is gone: the last ping decides
			}
		}
		if !n.Connected && n.DisconnectedAt.IsZero() {
			n.DisconnectedAt = n.LastPing
		}
	}
	return nil
}

// processesHandler serves GET /v2/control-plane-nodes.
func (c *Cluster) processesHandler(w http.ResponseWriter, r *http.Request) {
	ps, err := c.Processes(r.Context())
	if err != nil {
		api.WriteProblem(w, r, api.ServerProblem(w, r, c.log, err))
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": ps, "meta": map[string]any{"page": map[string]any{"total": len(ps)}}})
}
