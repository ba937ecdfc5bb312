package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// hub tracks the links this process holds, per group, and pushes snapshots to them.
type hub struct {
	c *Cluster
	// ctx ends when the cluster stops serving; every pusher and link derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	// flushMu serializes catalogue writes, so a later state of a node is never overwritten by an
	// earlier one.
	flushMu sync.Mutex

	// mu guards groups, dirty and changed.
	mu     sync.Mutex
	groups map[string]*pusher
	// dirty holds the links whose node changed since the last flush.
	dirty map[*conn]struct{}
	// changed is closed and replaced whenever a node reports a new hash; waiters (tests,
	// benchmarks) select on it.
	changed chan struct{}
}

// pusher pushes one group's snapshots to the group's links on this process.
type pusher struct {
	id string
	// kick holds at most one token: several commits before the pusher wakes count as one.
	kick chan struct{}
	// stop is closed when the group's last link goes away or the group is deleted.
	stop chan struct{}
	// conns and knownRev are guarded by hub.mu. knownRev is the newest revision pushed or
	// queued, used by the poll to spot commits of other processes.
	conns    map[*conn]struct{}
	knownRev int64
}

func newHub(c *Cluster) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{c: c, ctx: ctx, cancel: cancel, groups: map[string]*pusher{}, dirty: map[*conn]struct{}{}, changed: make(chan struct{})}
}

// wake asks the group's pusher to push the newest revision; a group without links on this
// process is ignored.
func (h *hub) wake(groupID string) {
	h.mu.Lock()
	p := h.groups[groupID]
	h.mu.Unlock()
	if p != nil {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// register adds a link and starts its group's pusher if it is the first.
func (h *hub) register(cn *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.groups[cn.groupID]
	if p == nil {
		p = &pusher{id: cn.groupID, kick: make(chan struct{}, 1), stop: make(chan struct{}), conns: map[*conn]struct{}{}}
		h.groups[cn.groupID] = p
		go h.runPusher(p)
	}
	p.conns[cn] = struct{}{}
}

// noteRevision records that rev was offered to the group's links, so the poll does not wake the
// pusher for it.
func (h *hub) noteRevision(groupID string, rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.groups[groupID]; p != nil {
		p.knownRev = max(p.knownRev, rev)
	}
}

// unregister removes a link and stops its group's pusher if it was the last.
func (h *hub) unregister(cn *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.groups[cn.groupID]
	if p == nil {
		return
	}
	delete(p.conns, cn)
	if len(p.conns) == 0 {
		close(p.stop)
		delete(h.groups, cn.groupID)
	}
}

func (h *hub) conns(groupID string) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.groups[groupID]; p != nil {
		return slices.Collect(maps.Keys(p.conns))
	}
	return nil
}

func (h *hub) allConns() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*conn
	for _, p := range h.groups {
		for cn := range p.conns {
			out = append(out, cn)
		}
	}
	return out
}

// runPusher builds the group's newest snapshot after each kick and offers it to every link.
// The first push after a quiet period goes out at once; pushes are then spaced by
// MinPushInterval so that a burst of commits becomes one or two pushes.
func (h *hub) runPusher(p *pusher) {
	log := h.c.log.With("group", p.id)
	var last time.Time
	failures := 0 // consecutive failed builds
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-p.stop:
			return
		case <-p.kick:
		}
		if wait := h.c.opts.MinPushInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Kicks that arrived while waiting are served by this build, which reads the newest
		// revision.
		select {
		case <-p.kick:
		default:
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		snap, err := h.c.snaps.Build(ctx, p.id)
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			log.Info("runtime group is gone; orphaning its instances")
			h.c.GroupDeleted(p.id)
			return
		}
		if err != nil {
			// Retry on its own (a database back from an outage, a broken pooled connection)
			// rather than wait for the next commit or poll, backing off while it lasts.
			retry := min(500*time.Millisecond<<min(failures, 5), 10*time.Second)
			failures++
			log.Error("cannot build the group's configuration; instances keep their current one", "err", err, "retry_in", retry)
			time.AfterFunc(retry, func() { h.wake(p.id) })
			continue
		}
		failures = 0
		h.mu.Lock()
		p.knownRev = max(p.knownRev, snap.Revision)
		targets := slices.Collect(maps.Keys(p.conns))
		h.mu.Unlock()
		for _, cn := range targets {
			cn.offer(snap)
		}
		log.Debug("offered revision", "revision", snap.Revision, "hash", snap.Hash, "instances", len(targets))
	}
}

// background runs the revision poll, the catalogue flush and the purge until h.ctx or ctx ends.
func (h *hub) background(ctx context.Context) {
	flush := time.NewTicker(h.c.opts.FlushInterval)
	defer flush.Stop()
	purgeEvery := min(time.Hour, h.c.opts.PurgeDelay/4)
	purge := time.NewTicker(purgeEvery)
	defer purge.Stop()
	var poll <-chan time.Time
	if h.c.opts.PollInterval > 0 {
		t := time.NewTicker(h.c.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	heartbeat := time.NewTicker(h.c.opts.HeartbeatInterval)
	defer heartbeat.Stop()
	// Commits made through other processes sharing a PostgreSQL database arrive at once by
	// notification; the poll stays as the safety net for notifications lost while the listener
	// reconnects (it also polls every time it starts listening).
	var wg sync.WaitGroup
	defer wg.Wait()
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	wg.Go(func() {
		err := h.c.st.ListenRevisions(lctx, sqlstore.ListenOptions{
			OnRevision:  h.announced,
			OnListening: func() { go h.poll(lctx) },
		})
		if err != nil && !errors.Is(err, sqlstore.ErrNoNotifications) {
			h.c.log.Warn("revision notifications stopped", "err", err)
		}
	})
	h.c.purgeOnce(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.ctx.Done():
			return
		case <-flush.C:
			h.flush(ctx)
		case <-heartbeat.C:
			if err := h.c.heartbeat(ctx); err != nil && ctx.Err() == nil {
				h.c.log.Warn("control plane heartbeat failed; other processes will show this one's instances as disconnected if it lasts", "err", err)
			}
		case <-purge.C:
			h.c.purgeOnce(ctx)
		case <-poll:
			h.poll(ctx)
		}
	}
}

// announced handles a revision announced through the database: the group's pusher wakes if the
// revision is newer than what it offered (this process's own commits are not pushed twice), and
// a deleted group's instances are orphaned.
func (h *hub) announced(groupID string, rev int64) {
	if rev == sqlstore.GroupDeletedRevision {
		h.c.GroupDeleted(groupID)
		return
	}
	h.mu.Lock()
	p := h.groups[groupID]
	newer := p != nil && rev > p.knownRev
	h.mu.Unlock()
	if newer {
		h.wake(groupID)
	}
}

// poll catches commits made by other control plane processes sharing the database, and groups
// they deleted.
func (h *hub) poll(ctx context.Context) {
	h.mu.Lock()
	known := make(map[string]int64, len(h.groups))
	for id, p := range h.groups {
		known[id] = p.knownRev
	}
	h.mu.Unlock()
	for id, rev := range known {
		cur, err := h.c.es.Revision(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			h.c.GroupDeleted(id)
		case err != nil:
			h.c.log.Warn("revision poll failed", "group", id, "err", err)
		case cur > rev:
			h.wake(id)
		}
	}
}

func (h *hub) markDirty(cn *conn) {
	h.mu.Lock()
	h.dirty[cn] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) notifyChanged() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// flush writes the nodes of dirty links to the catalogue, in one transaction when it can.
func (h *hub) flush(ctx context.Context) {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	h.mu.Lock()
	batch := slices.Collect(maps.Keys(h.dirty))
	clear(h.dirty)
	h.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	nodes := make([]Node, 0, len(batch))
	for _, cn := range batch {
		if n, ok := cn.snapshotNode(); ok {
			nodes = append(nodes, n)
		}
	}
	err := h.c.st.InTx(ctx, func(tx *sqlTx) error {
		for _, n := range nodes {
			if err := h.c.nodes.upsert(ctx, tx, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	// A group deleted meanwhile fails the batch on its foreign key; write the others one by one.
	for _, n := range nodes {
		err := h.c.st.InTx(ctx, func(tx *sqlTx) error { return h.c.nodes.upsert(ctx, tx, n) })
		if err != nil && !errors.Is(err, store.ErrForeignKey) {
			h.c.log.Warn("cannot record node", "group", n.GroupID, "node", n.ID, "err", err)
		}
	}
}

// orphan tells the group's links that the group was deleted and closes them.
func (h *hub) orphan(groupID string) {
	for _, cn := range h.conns(groupID) {
		cn.orphan()
	}
}

// dropFingerprint closes the links authenticated with a certificate that was unpinned.
func (h *hub) dropFingerprint(fp, reason string) {
	for _, cn := range h.allConns() {
		if cn.id.fingerprint == fp {
			cn.close(websocket.StatusPolicyViolation, reason)
		}
	}
}

// closeAll closes every link and stops the pushers.
func (h *hub) closeAll(reason string) {
	for _, cn := range h.allConns() {
		cn.close(websocket.StatusGoingAway, reason)
	}
	h.cancel()
	for _, cn := range h.allConns() {
		<-cn.done
	}
}
