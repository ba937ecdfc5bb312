package cluster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"github.com/gantry-gw/gantry/internal/wire"
)

type sqlTx = sql.Tx

// TypeOrphaned is the type of the frame a Gantry runtime receives when its group was deleted,
// just before the link closes: gzip'd JSON like every CP->DP data frame,
// {"type":"orphaned","group_id":…,"message":…}. Kong data planes ignore unknown types, and get
// only the close reason.
const TypeOrphaned = "orphaned"

// Orphaned is the body of a TypeOrphaned frame.
type Orphaned struct {
	// Type is always TypeOrphaned.
	Type string `json:"type"`
	// GroupID is the deleted group.
	GroupID string `json:"group_id"`
	// Message says what happened and what the runtime should do (keep serving).
	Message string `json:"message"`
}

// Close reasons (at most 123 bytes, the WebSocket limit); instances log them.
const (
	reasonOrphaned = "runtime group deleted: instance orphaned, keep serving the last configuration"
	reasonSilent   = "no ping from the data plane within the ping wait"
)

// handshakeTimeout bounds the wait for basic_info (Kong's CLUSTERING_TIMEOUT).
const handshakeTimeout = 5 * time.Second

// maxSent bounds the hash -> revision memory of a link.
const maxSent = 16

// conn is one instance's link.
type conn struct {
	h       *hub
	ws      *websocket.Conn
	id      peerIdentity // immutable
	groupID string       // immutable
	// gantry: the runtime negotiated revision frames (acks and nacks).
	gantry bool
	// kongVersion is set for a Kong data plane: the version it announced, which decides the
	// configuration variant (snapshot.KongVariant) it is sent. Gantry runtimes get the full
	// configuration.
	kongVersion string
	// versionIssue is the warning for a Kong data plane newer than the control plane; nil
	// otherwise.
	versionIssue *wire.CompatibilityIssue
	// checkPlugins are the control plane's plugins checked against the instance's.
	checkPlugins []wire.PluginInfo
	plugins      []wire.PluginInfo
	ctx          context.Context
	cancel       context.CancelFunc
	wakeCh       chan struct{}
	done         chan struct{} // closed when the link's goroutines are finished
	// analytics queues the link's analytics batches for ingestLoop; nil unless the runtime
	// negotiated wire.CapAnalytics and the cluster has an Ingester.
	analytics chan *wire.Telemetry
	// dropLog rate-limits the warnings about dropped telemetry frames; read loop only.
	dropLog logLimiter

	// mu guards everything below.
	mu        sync.Mutex
	node      Node
	pending   *snapshot.Snapshot
	sent      map[string]int64 // hashes of configurations sent, with their revisions
	sentOrder []string
	lastSent  string // hash of the last configuration written on this link
	orphaned  bool   // the group was deleted: the catalogue row is gone, do not write it again
}

// serveOutlet runs Kong's hybrid protocol v1 for one instance.
func (c *Cluster) serveOutlet(w http.ResponseWriter, r *http.Request) {
	id, _ := r.Context().Value(identityKey{}).(peerIdentity)
	q, err := wire.ParseNodeQuery(r.URL.RawQuery)
	if err != nil {
		c.log.WarnContext(r.Context(), "refused runtime instance", "remote", r.RemoteAddr, "group", id.groupID, "reason", err.Error())
		writeMessage(w, http.StatusBadRequest, err.Error())
		return
	}
	log := c.log.With("group", id.groupID, "node", q.NodeID, "hostname", q.Hostname, "version", q.Version, "remote", r.RemoteAddr)
	cn := &conn{h: c.hub, id: id, groupID: id.groupID, wakeCh: make(chan struct{}, 1), done: make(chan struct{}), sent: map[string]int64{}}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(_ context.Context, payload []byte) bool {
			cn.onPing(payload)
			return true
		},
	})
	if err != nil {
		log.Warn("websocket upgrade failed", "err", err)
		return
	}
	cn.ws = ws
	ws.SetReadLimit(wire.DefaultMaxPayload)
	defer close(cn.done)

	hctx, hcancel := context.WithTimeout(r.Context(), handshakeTimeout)
	typ, data, err := ws.Read(hctx)
	hcancel()
	if err != nil {
		log.Warn("no basic_info from the data plane", "err", err)
		_ = ws.Close(websocket.StatusProtocolError, "expected basic_info")
		return
	}
	var info *wire.BasicInfo
	if typ == websocket.MessageBinary {
		info, err = wire.DecodeBasicInfo(data)
	} else {
		err = errors.New("basic_info must be a binary frame")
	}
	if err != nil {
		log.Warn("refused runtime instance: bad basic_info", "reason", err.Error())
		_ = ws.Close(websocket.StatusPolicyViolation, truncate(err.Error()))
		return
	}
	now := c.now()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	cn.plugins = info.Plugins
	cn.checkPlugins = c.opts.Plugins
	labels := info.Labels
	if len(id.labels) > 0 {
		// The enrollment token's labels apply whatever the instance announces.
		labels = maps.Clone(info.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, id.labels)
	}
	cn.node = Node{
		GroupID: id.groupID, ID: q.NodeID, Hostname: q.Hostname, Version: q.Version, Type: TypeKong, IP: host, Labels: labels, EnrollmentTokenID: id.tokenID,
		Connected: true, ConnectedSince: now, LastPing: now, ConfigHash: wire.EmptyConfigHash, CertExpiry: id.expiry,
		SyncStatus: wire.SyncStatusUnknown, CreatedAt: now, UpdatedAt: now, ControlPlaneID: c.opts.ProcessID,
	}
	if existing, err := c.nodes.get(r.Context(), id.groupID, q.NodeID); err == nil {
		cn.node.CreatedAt = existing.CreatedAt
		cn.node.ConfigHash, cn.node.Revision = existing.ConfigHash, existing.Revision
	}
	if info.Gantry != nil {
		cn.node.Type = TypeGantry
		if h := info.Gantry.ConfigHash; len(h) == 32 && info.Gantry.Revision >= 0 {
			// What it serves now, as it says: after a failover from another control plane
			// process, nothing is sent again until the group changes.
			cn.node.ConfigHash, cn.node.Revision = h, info.Gantry.Revision
		}
		hello, err := wire.Negotiate(c.local, info.Gantry)
		if err != nil {
			log.Warn("refused runtime instance: bad protocol version", "reason", err.Error())
			_ = ws.Close(websocket.StatusPolicyViolation, truncate(err.Error()))
			return
		}
		frame, err := wire.EncodeCPFrame(hello)
		if err == nil {
			err = cn.write(r.Context(), frame)
		}
		if err != nil {
			log.Warn("cannot send hello", "err", err)
			return
		}
		cn.gantry = hello.Has(wire.CapRevisions)
		if hello.Has(wire.CapAnalytics) && c.opts.Analytics != nil {
			cn.analytics = make(chan *wire.Telemetry, c.opts.AnalyticsQueue)
			cn.node.Analytics = true
		}
		// A Gantry runtime versions its plugins with its own releases: only presence matters.
		cn.checkPlugins = make([]wire.PluginInfo, len(c.opts.Plugins))
		for i, p := range c.opts.Plugins {
			cn.checkPlugins[i] = wire.PluginInfo{Name: p.Name}
		}
	} else if err := wire.CheckVersionCompatibility(c.opts.KongVersion, q.Version); err != nil {
		// Like Kong: record why, then close.
		var ie *wire.IncompatibleError
		errors.As(err, &ie)
		cn.node.Connected = false
		cn.node.SyncStatus = ie.Status
		cn.node.Compatibility = []wire.CompatibilityIssue{ie.Issue}
		c.recordNode(r.Context(), cn.node)
		log.Warn("refused runtime instance: incompatible version", "reason", ie.Message)
		_ = ws.Close(websocket.StatusPolicyViolation, truncate(ie.Message))
		return
	} else {
		cn.kongVersion = q.Version
		if cn.versionIssue = wire.NewerVersionIssue(c.opts.KongVersion, q.Version); cn.versionIssue != nil {
			// A newer data plane's bundled plugins carry its newer version; they accept the
			// configuration of the control plane's version, so only their presence is checked.
			cn.checkPlugins = make([]wire.PluginInfo, len(c.opts.Plugins))
			for i, p := range c.opts.Plugins {
				cn.checkPlugins[i] = wire.PluginInfo{Name: p.Name}
			}
			cn.node.Compatibility = []wire.CompatibilityIssue{*cn.versionIssue}
			log.Info("data plane is newer than the control plane's Kong version; serving it that version's configuration",
				"control_plane_version", c.opts.KongVersion)
		}
	}
	c.recordNode(r.Context(), cn.node)
	log.Info("runtime instance connected", "type", cn.node.Type, "cert_expiry", id.expiry)

	cn.ctx, cn.cancel = context.WithCancel(c.hub.ctx)
	stop := context.AfterFunc(r.Context(), cn.cancel)
	defer stop()
	c.hub.register(cn)
	var wg sync.WaitGroup
	wg.Go(cn.writeLoop)
	if cn.analytics != nil {
		wg.Go(cn.ingestLoop)
	}
	// The first configuration goes out at once; later ones come from the group's pusher.
	if snap, err := c.snaps.Build(cn.ctx, cn.groupID); err == nil {
		c.hub.noteRevision(cn.groupID, snap.Revision)
		cn.offer(snap)
	} else {
		log.Error("cannot build the group's configuration for a new instance", "err", err)
	}
	err = cn.readLoop()
	cn.cancel()
	wg.Wait()
	c.hub.unregister(cn)

	cn.mu.Lock()
	cn.node.Connected = false
	cn.node.UpdatedAt = c.now()
	cn.node.DisconnectedAt = cn.node.UpdatedAt
	orphaned := cn.orphaned
	cn.mu.Unlock()
	if !orphaned {
		c.hub.markDirty(cn)
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		c.hub.flush(fctx)
		fcancel()
	}
	_ = ws.CloseNow()
	log.Info("runtime instance disconnected", "reason", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// recordNode writes a node now (at connect time, so the catalogue shows it at once).
func (c *Cluster) recordNode(ctx context.Context, n Node) {
	c.hub.flushMu.Lock()
	defer c.hub.flushMu.Unlock()
	err := c.st.InTx(ctx, func(tx *sql.Tx) error { return c.nodes.upsert(ctx, tx, n) })
	if err != nil {
		c.log.Warn("cannot record node", "group", n.GroupID, "node", n.ID, "err", err)
	}
}

func truncate(s string) string {
	if len(s) > 123 {
		return s[:123]
	}
	return s
}

// offer queues snap for the link, replacing any snapshot still pending.
func (cn *conn) offer(snap *snapshot.Snapshot) {
	cn.mu.Lock()
	if cn.pending == nil || snap.Revision >= cn.pending.Revision {
		cn.pending = snap
	}
	cn.mu.Unlock()
	select {
	case cn.wakeCh <- struct{}{}:
	default:
	}
}

// writeLoop sends offered snapshots and drops the link when the instance falls silent.
func (cn *conn) writeLoop() {
	wait := cn.h.c.opts.PingWait
	tick := time.NewTicker(min(wait/3, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-tick.C:
			cn.mu.Lock()
			silent := cn.h.c.now().Sub(cn.node.LastPing) > wait
			cn.mu.Unlock()
			if silent {
				cn.close(websocket.StatusPolicyViolation, reasonSilent)
				return
			}
			continue
		case <-cn.wakeCh:
		}
		cn.mu.Lock()
		snap := cn.pending
		cn.pending = nil
		cn.mu.Unlock()
		if snap != nil {
			if err := cn.push(snap); err != nil {
				cn.h.c.log.Warn("cannot send configuration; dropping the link", "group", cn.groupID, "node", cn.node.ID, "err", err)
				cn.close(websocket.StatusInternalError, "cannot send configuration")
				return
			}
		}
	}
}

// push sends snap unless the instance already runs it or cannot run it. A Kong data plane is sent
// the variant of snap for its version (downgraded when it is older than the control plane), and
// is expected to report that variant's hash.
func (cn *conn) push(snap *snapshot.Snapshot) error {
	table, hash := snap.ConfigTable, snap.Hash
	var variant *snapshot.KongVariant
	if cn.kongVersion != "" {
		v, err := snap.ForKong(cn.kongVersion)
		if err != nil {
			return err
		}
		variant, table, hash = v, v.ConfigTable, v.Hash
	}
	compat := wire.CheckConfigurationCompatibility(cn.checkPlugins, cn.plugins, table)
	cn.mu.Lock()
	cn.remember(hash, snap.Revision)
	if cn.node.ConfigHash == hash || cn.lastSent == hash {
		// Already running it, or already sent it on this link (a runtime that rejected it
		// must not be sent it again and again).
		if cn.node.ConfigHash == hash {
			cn.node.Revision = snap.Revision
		}
		if compat.Compatible() {
			// A data plane that reconnects already running it keeps its warnings.
			cn.node.Compatibility = cn.warnings(variant)
		}
		cn.mu.Unlock()
		cn.h.markDirty(cn)
		return nil
	}
	if !compat.Compatible() {
		cn.node.SyncStatus = compat.Status
		cn.node.Compatibility = compat.Issues
		cn.node.UpdatedAt = cn.h.c.now()
		nodeID := cn.node.ID
		cn.mu.Unlock()
		cn.h.markDirty(cn)
		cn.h.c.log.Warn("configuration withheld from incompatible instance", "group", cn.groupID, "node", nodeID, "revision", snap.Revision, "reason", compat.Message)
		return nil
	}
	cn.node.SyncStatus = wire.SyncStatusNormal
	cn.node.Compatibility = cn.warnings(variant)
	cn.lastSent = hash
	nodeID := cn.node.ID
	cn.mu.Unlock()
	cn.h.markDirty(cn)

	var frame []byte
	var err error
	switch {
	case variant != nil:
		if variant.Hash != snap.Hash {
			cn.h.c.log.Debug("sending a configuration downgraded for the data plane's version", "group", cn.groupID, "node", nodeID,
				"version", cn.kongVersion, "revision", snap.Revision, "hash", variant.Hash, "warnings", len(variant.Issues))
		}
		frame, err = variant.KongFrame()
	case cn.gantry && snap.Revision > 0:
		frame, err = snap.GantryFrame()
	default:
		frame, err = snap.KongFrame()
	}
	if err != nil {
		return err
	}
	return cn.write(cn.ctx, frame)
}

// warnings returns the node's compatibility warnings for a configuration it is sent: the newer
// version warning and the downgrade's; nil when there are none.
func (cn *conn) warnings(v *snapshot.KongVariant) []wire.CompatibilityIssue {
	var out []wire.CompatibilityIssue
	if cn.versionIssue != nil {
		out = append(out, *cn.versionIssue)
	}
	if v != nil {
		out = append(out, v.Issues...)
	}
	return out
}

// remember records that hash is revision's configuration; caller holds mu.
func (cn *conn) remember(hash string, rev int64) {
	if _, ok := cn.sent[hash]; ok {
		return
	}
	cn.sent[hash] = rev
	cn.sentOrder = append(cn.sentOrder, hash)
	if len(cn.sentOrder) > maxSent {
		delete(cn.sent, cn.sentOrder[0])
		cn.sentOrder = cn.sentOrder[1:]
	}
}

func (cn *conn) write(ctx context.Context, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, cn.h.c.opts.WriteTimeout)
	defer cancel()
	return cn.ws.Write(ctx, websocket.MessageBinary, frame)
}

// onPing records a ping and the hash it carries (Kong drops pings whose payload is not a
// 32-character hash; here such a payload only counts as a sign of life).
func (cn *conn) onPing(payload []byte) {
	now := cn.h.c.now()
	cn.mu.Lock()
	cn.node.LastPing = now
	changed := false
	if len(payload) == 32 {
		changed = cn.reportHashLocked(string(payload), 0, now)
	}
	cn.mu.Unlock()
	cn.h.markDirty(cn)
	if changed {
		cn.h.notifyChanged()
	}
}

// reportHashLocked records the hash the instance runs; rev is its revision when the instance
// said so (ack), else 0 and it is looked up. Caller holds mu. It reports whether the hash
// changed.
func (cn *conn) reportHashLocked(hash string, rev int64, now time.Time) bool {
	if hash == cn.node.ConfigHash && (rev == 0 || rev == cn.node.Revision) {
		return false
	}
	cn.node.ConfigHash = hash
	cn.node.UpdatedAt = now
	switch {
	case rev > 0:
		cn.node.Revision = rev
	case hash == wire.EmptyConfigHash:
		cn.node.Revision = 0
	default:
		if r, ok := cn.sent[hash]; ok {
			cn.node.Revision = r
		} else if s := cn.h.c.snaps.Cached(cn.groupID); s != nil && cn.h.c.expectedFor(s, cn.node) == hash {
			cn.node.Revision = s.Revision
		} else {
			cn.node.Revision = 0
		}
	}
	if cn.node.ErrorHash != hash {
		// Running something other than what failed: the failure is history.
		cn.node.LastError, cn.node.ErrorHash = "", ""
	}
	return true
}

// readLoop reads the instance's frames until the link ends.
func (cn *conn) readLoop() error {
	log := cn.h.c.log.With("group", cn.groupID)
	for {
		typ, data, err := cn.ws.Read(cn.ctx)
		if err != nil {
			return err
		}
		now := cn.h.c.now()
		cn.mu.Lock()
		cn.node.LastPing = now
		nodeID := cn.node.ID
		cn.mu.Unlock()
		if typ != websocket.MessageBinary {
			log.Debug("ignoring text frame", "node", nodeID)
			continue
		}
		msg, err := wire.DecodeDPFrame(data, 0)
		if err != nil {
			log.Warn("ignoring unreadable frame", "node", nodeID, "err", err)
			continue
		}
		if t, ok := msg.(*wire.Telemetry); ok {
			cn.onTelemetry(t, nodeID)
			cn.h.markDirty(cn)
			continue
		}
		changed := false
		cn.mu.Lock()
		switch m := msg.(type) {
		case *wire.Ack:
			changed = cn.reportHashLocked(m.ConfigHash, m.Revision, now)
			cn.node.LastError, cn.node.ErrorHash = "", ""
		case *wire.Nack:
			cn.node.LastError, cn.node.ErrorHash = nackText(m), m.ConfigHash
			cn.node.UpdatedAt = now
			changed = true
			log.Warn("instance could not apply a revision", "node", nodeID, "revision", m.Revision, "error", cn.node.LastError)
		case *wire.ErrorFrame:
			cn.node.LastError, cn.node.ErrorHash = errorFrameText(m), m.Error.ConfigHash
			cn.node.UpdatedAt = now
			changed = true
			log.Warn("instance could not apply the configuration", "node", nodeID, "error", cn.node.LastError)
		default:
			log.Debug("ignoring frame", "node", nodeID, "type", fmt.Sprintf("%T", msg))
		}
		cn.mu.Unlock()
		cn.h.markDirty(cn)
		if changed {
			cn.h.notifyChanged()
		}
	}
}

func nackText(m *wire.Nack) string {
	var b strings.Builder
	b.WriteString(m.Message)
	for i, e := range m.Errors {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(m.Errors)-5)
			break
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", e.EntityType, e.EntityID)
		if e.Field != "" {
			b.WriteString(" " + e.Field)
		}
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

func errorFrameText(m *wire.ErrorFrame) string {
	s := m.Error.Name + ": " + m.Error.Message
	if n := len(m.Error.FlattenedErrors); n > 0 {
		s += fmt.Sprintf(" (%d entities rejected)", n)
	}
	return s
}

// snapshotNode returns a copy of the link's node for the catalogue; ok is false when the node
// must not be written (its group was deleted).
func (cn *conn) snapshotNode() (Node, bool) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.node, !cn.orphaned
}

// orphan tells the instance its group was deleted, then closes the link.
func (cn *conn) orphan() {
	cn.mu.Lock()
	was := cn.orphaned
	cn.orphaned = true
	cn.mu.Unlock()
	if was {
		// Told already: a deletion arrives from the API, the database's notification and the
		// pusher, and the instance gets one notice.
		return
	}
	if cn.gantry || cn.node.Type == TypeGantry {
		frame, err := encodeOrphaned(cn.groupID)
		if err == nil && cn.ctx != nil {
			// The notice goes out even when the link is already closing, within its own bound.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cn.ctx), 2*time.Second)
			_ = cn.ws.Write(ctx, websocket.MessageBinary, frame) // best effort: the link closes next
			cancel()
		}
	}
	cn.close(websocket.StatusPolicyViolation, reasonOrphaned)
}

func encodeOrphaned(groupID string) ([]byte, error) {
	return wire.EncodeGzipJSON(Orphaned{Type: TypeOrphaned, GroupID: groupID,
		Message: "runtime group " + groupID + " was deleted: keep serving the last configuration; this instance receives no more updates"})
}

// close ends the link with a close frame carrying reason.
func (cn *conn) close(code websocket.StatusCode, reason string) {
	go func() {
		// Close waits up to 5 s for the peer's answer; do not hold up the caller.
		_ = cn.ws.Close(code, truncate(reason))
	}()
	if cn.cancel != nil {
		// Reading stops once the close handshake finishes or times out; cancelling at once
		// would skip sending the close frame.
		time.AfterFunc(6*time.Second, cn.cancel)
	}
}

// OrphanedFromFrame decodes a TypeOrphaned frame; exported for runtimes and tests.
func OrphanedFromFrame(frame []byte) (*Orphaned, error) {
	data, err := wire.Gunzip(frame, 1<<20)
	if err != nil {
		return nil, err
	}
	var o Orphaned
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, err
	}
	if o.Type != TypeOrphaned {
		return nil, fmt.Errorf("frame type %q: %w", o.Type, wire.ErrWrongType)
	}
	return &o, nil
}
