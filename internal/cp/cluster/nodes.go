package cluster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/wire"
)

// Node types, as the catalogue shows them.
const (
	// TypeKong is a Kong Gateway data plane (koko and Konnect call it "kong-proxy").
	TypeKong = "kong-proxy"
	// TypeGantry is a Gantry runtime.
	TypeGantry = "gantry-runtime"
)

// Status is a runtime instance's state, derived from facts each time it is shown, never stored.
type Status string

// Statuses, in the order DeriveStatus checks them.
const (
	// StatusDisconnected: no live link, or a link that has been silent for longer than the ping
	// wait (for example, the control plane process holding it died).
	StatusDisconnected Status = "disconnected"
	// StatusIncompatible: connected, but the configuration is withheld from it; its
	// compatibility_status says why.
	StatusIncompatible Status = "incompatible"
	// StatusApplyFailed: connected, and it reported that it could not apply the group's current
	// configuration.
	StatusApplyFailed Status = "apply_failed"
	// StatusInSync: connected and running the group's current configuration.
	StatusInSync Status = "in_sync"
	// StatusBehind: connected and running something else (an older revision, or nothing yet).
	StatusBehind Status = "behind"
)

// Node is one runtime instance in the catalogue, as stored.
type Node struct {
	GroupID  string
	ID       string
	Hostname string
	Version  string
	// Type is TypeKong or TypeGantry.
	Type   string
	IP     string
	Labels map[string]string
	// Connected is true while a control plane process holds a link with it. Reads clear it
	// when that process stopped heartbeating (it died holding the link).
	Connected bool
	// ControlPlaneID is the control plane process holding (or that last held) its link; ""
	// for rows written before processes were recorded.
	ControlPlaneID string
	// DisconnectedAt is when its last link ended; zero while connected, or when unknown (then
	// reads fill it in: the last heartbeat of a process that died, or the last ping).
	DisconnectedAt time.Time
	// EnrollmentTokenID is the enrollment token that issued the certificate it connected with;
	// empty for other certificates.
	EnrollmentTokenID string
	// ConnectedSince is when the current (or last) link was established; zero if never.
	ConnectedSince time.Time
	// LastPing is the last time anything was heard from it.
	LastPing time.Time
	// ConfigHash is the hash it reported last (32 zeros when it runs nothing).
	ConfigHash string
	// Revision is the group revision whose hash it reported; 0 when unknown.
	Revision int64
	// LastError is the last apply failure it reported, cleared when it reports a hash it was
	// sent successfully; ErrorHash is the hash of the configuration that failed.
	LastError string
	ErrorHash string
	// CertExpiry is when its client certificate expires; zero if unknown.
	CertExpiry time.Time
	// SyncStatus is Kong's sync_status for it.
	SyncStatus wire.SyncStatus
	// Compatibility lists why the configuration is (or would be) withheld; empty when
	// compatible.
	Compatibility []wire.CompatibilityIssue
	// Analytics is true when its current (or last) link negotiated the analytics capability
	// with this control plane: it sends per-minute traffic aggregates.
	Analytics bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DeriveStatus says what state n is in, given the hash n reports once it runs its group's current
// configuration (expectedHash: for a Kong data plane older than the control plane, the hash of
// the configuration downgraded for its version, see Cluster.expectedFor), the time now and how
// long a connected node may stay silent (pingWait). Compatibility warnings do not change the
// status: a node that runs a downgraded configuration is in sync.
func DeriveStatus(n Node, expectedHash string, now time.Time, pingWait time.Duration) Status {
	switch {
	case !n.Connected || now.Sub(n.LastPing) > pingWait:
		return StatusDisconnected
	case hasError(n.Compatibility):
		return StatusIncompatible
	case n.LastError != "" && (n.ErrorHash == "" || n.ErrorHash == expectedHash):
		return StatusApplyFailed
	case expectedHash != "" && n.ConfigHash == expectedHash:
		return StatusInSync
	}
	return StatusBehind
}

func hasError(issues []wire.CompatibilityIssue) bool {
	for _, i := range issues {
		if i.Severity == wire.SeverityError {
			return true
		}
	}
	return false
}

// nodeStore reads and writes cluster_nodes.
type nodeStore struct{ st *sqlstore.Store }

const nodeColumns = `group_id, id, hostname, version, type, ip, labels, connected, connected_since, last_ping, config_hash, revision,
	last_error, error_hash, cert_expiry, sync_status, compatibility, analytics, created_at, updated_at, control_plane_id, disconnected_at, enrollment_token_id`

func unix(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func fromUnix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0).UTC()
}

// upsert writes n whole, keeping created_at of an existing row. A disconnected state never
// overwrites a connected row held by another process: the instance moved there (failover) before
// this process wrote that it lost it.
func (s nodeStore) upsert(ctx context.Context, tx *sql.Tx, n Node) error {
	labels, _ := json.Marshal(n.Labels)
	compat := n.Compatibility
	if compat == nil {
		compat = []wire.CompatibilityIssue{}
	}
	compatJSON, _ := json.Marshal(compat)
	_, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO cluster_nodes (`+nodeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (group_id, id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, type = excluded.type,
			ip = excluded.ip, labels = excluded.labels, connected = excluded.connected, connected_since = excluded.connected_since,
			last_ping = excluded.last_ping, config_hash = excluded.config_hash, revision = excluded.revision,
			last_error = excluded.last_error, error_hash = excluded.error_hash, cert_expiry = excluded.cert_expiry,
			sync_status = excluded.sync_status, compatibility = excluded.compatibility, analytics = excluded.analytics,
			updated_at = excluded.updated_at, control_plane_id = excluded.control_plane_id, disconnected_at = excluded.disconnected_at, enrollment_token_id = excluded.enrollment_token_id
		WHERE excluded.connected OR NOT cluster_nodes.connected OR cluster_nodes.control_plane_id = excluded.control_plane_id`),
		n.GroupID, n.ID, n.Hostname, n.Version, n.Type, n.IP, string(labels), n.Connected, unix(n.ConnectedSince), n.LastPing.Unix(),
		n.ConfigHash, n.Revision, n.LastError, n.ErrorHash, unix(n.CertExpiry), string(n.SyncStatus), string(compatJSON),
		n.Analytics, n.CreatedAt.Unix(), n.UpdatedAt.Unix(), n.ControlPlaneID, unix(n.DisconnectedAt), n.EnrollmentTokenID)
	return err
}

func scanNode(row interface{ Scan(...any) error }) (Node, error) {
	var n Node
	var labels, compat, sync string
	var since, expiry, disconnected sql.NullInt64
	var lastPing, created, updated int64
	err := row.Scan(&n.GroupID, &n.ID, &n.Hostname, &n.Version, &n.Type, &n.IP, &labels, &n.Connected, &since, &lastPing,
		&n.ConfigHash, &n.Revision, &n.LastError, &n.ErrorHash, &expiry, &sync, &compat, &n.Analytics, &created, &updated, &n.ControlPlaneID, &disconnected, &n.EnrollmentTokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node: %w", store.ErrNotFound)
	}
	if err != nil {
		return n, err
	}
	n.ConnectedSince, n.CertExpiry, n.DisconnectedAt = fromUnix(since), fromUnix(expiry), fromUnix(disconnected)
	n.LastPing, n.CreatedAt, n.UpdatedAt = time.Unix(lastPing, 0).UTC(), time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	n.SyncStatus = wire.SyncStatus(sync)
	if err := json.Unmarshal([]byte(labels), &n.Labels); err != nil {
		return n, fmt.Errorf("node %s labels: %w", n.ID, err)
	}
	if err := json.Unmarshal([]byte(compat), &n.Compatibility); err != nil {
		return n, fmt.Errorf("node %s compatibility: %w", n.ID, err)
	}
	return n, nil
}

// list returns up to limit nodes of the group with ids after the cursor, ordered by id, and the
// group's total.
func (s nodeStore) list(ctx context.Context, groupID, after string, limit int) ([]Node, int, error) {
	var total int
	if err := s.st.DB().QueryRowContext(ctx, s.st.Rebind(`SELECT COUNT(*) FROM cluster_nodes WHERE group_id = ?`), groupID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.st.DB().QueryContext(ctx, s.st.Rebind(`SELECT `+nodeColumns+` FROM cluster_nodes WHERE group_id = ? AND id > ? ORDER BY id LIMIT ?`), groupID, after, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []Node{}
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, n)
	}
	return out, total, rows.Err()
}

func (s nodeStore) get(ctx context.Context, groupID, id string) (Node, error) {
	return scanNode(s.st.DB().QueryRowContext(ctx, s.st.Rebind(`SELECT `+nodeColumns+` FROM cluster_nodes WHERE group_id = ? AND id = ?`), groupID, id))
}

func (s nodeStore) delete(ctx context.Context, groupID, id string) (bool, error) {
	var n int64
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		before, err := scanNode(tx.QueryRowContext(ctx, s.st.Rebind(`SELECT `+nodeColumns+` FROM cluster_nodes WHERE group_id = ? AND id = ?`), groupID, id))
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM cluster_nodes WHERE group_id = ? AND id = ?`), groupID, id)
		if err != nil {
			return err
		}
		if n, _ = r.RowsAffected(); n == 0 {
			return nil
		}
		return s.st.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionDelete, GroupID: groupID, EntityType: AuditNodes,
			EntityID: id, EntityName: before.Hostname, Before: nodeAuditDoc(before)})
	})
	return n > 0, err
}

// nodeAuditDoc is a runtime instance as the audit log shows it when it is deleted.
func nodeAuditDoc(n Node) map[string]any {
	return map[string]any{"id": n.ID, "hostname": n.Hostname, "version": n.Version, "type": n.Type, "ip": n.IP, "labels": n.Labels,
		"config_hash": n.ConfigHash, "revision": n.Revision}
}

// purge deletes nodes not heard from since before (a connected node pings every 30 s, so only
// silent ones qualify) and returns how many went.
func (s nodeStore) purge(ctx context.Context, before time.Time) (int64, error) {
	r, err := s.st.DB().ExecContext(ctx, s.st.Rebind(`DELETE FROM cluster_nodes WHERE last_ping < ?`), before.Unix())
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// groupsNodes returns the nodes of the given groups, for counting.
func (s nodeStore) groupsNodes(ctx context.Context, groupIDs []string) ([]Node, error) {
	if len(groupIDs) == 0 {
		return nil, nil
	}
	ph := "?"
	args := []any{groupIDs[0]}
	for _, g := range groupIDs[1:] {
		ph += ", ?"
		args = append(args, g)
	}
	rows, err := s.st.DB().QueryContext(ctx, s.st.Rebind(`SELECT `+nodeColumns+` FROM cluster_nodes WHERE group_id IN (`+ph+`)`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
