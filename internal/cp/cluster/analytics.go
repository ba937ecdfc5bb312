package cluster

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Close reasons of the analytics path; the runtime reconnects and resends what was not
// acknowledged.
const (
	reasonAnalyticsBacklog = "analytics backlog: the control plane cannot store batches fast enough; reconnect and resend"
	reasonAnalyticsFailed  = "analytics batch not stored; reconnect and resend"
)

// logLimiter lets one warning through per interval; the rest go to debug.
type logLimiter struct{ last time.Time }

// allow reports whether a warning may be logged at now, and records it.
func (l *logLimiter) allow(now time.Time) bool {
	if now.Sub(l.last) < time.Minute {
		return false
	}
	l.last = now
	return true
}

// onTelemetry queues an analytics batch for ingestLoop. Frames the link cannot take (no analytics
// capability, another schema, no seq) are dropped without acknowledgement. When the queue stays
// full for a third of the ping wait, the link is closed: the runtime reconnects and resends every
// batch not yet acknowledged, which is better than holding its pings back.
func (cn *conn) onTelemetry(t *wire.Telemetry, nodeID string) {
	reason := ""
	switch {
	case cn.analytics == nil:
		reason = "telemetry frame on a link without the analytics capability"
	case t.Schema != telemetry.Schema:
		reason = "telemetry frame of unknown schema " + t.Schema
	case t.Seq <= 0:
		reason = "analytics batch without a seq"
	}
	if reason != "" {
		cn.dropped(nodeID, reason, t.Seq, nil)
		return
	}
	select {
	case cn.analytics <- t:
		return
	default:
	}
	timer := time.NewTimer(cn.h.c.opts.PingWait / 3)
	defer timer.Stop()
	select {
	case cn.analytics <- t:
	case <-cn.ctx.Done():
	case <-timer.C:
		cn.h.c.log.Warn("analytics backlog full; closing the link so the runtime resends", "group", cn.groupID, "node", nodeID, "seq", t.Seq)
		cn.close(websocket.StatusTryAgainLater, reasonAnalyticsBacklog)
	}
}

// dropped logs a telemetry frame that is not stored nor acknowledged: a warning at most once a
// minute per link, debug otherwise.
func (cn *conn) dropped(nodeID, reason string, seq int64, err error) {
	log := cn.h.c.log.Debug
	if cn.dropLog.allow(time.Now()) {
		log = cn.h.c.log.Warn
	}
	args := []any{"group", cn.groupID, "node", nodeID, "seq", seq, "reason", reason}
	if err != nil {
		args = append(args, "err", err)
	}
	log("dropped telemetry frame", args...)
}

// ingestLoop stores the link's analytics batches one at a time, in arrival order, and
// acknowledges each one stored. A batch that cannot be stored is not acknowledged and the link is
// closed, so the runtime reconnects (to this or another control plane process) and resends it.
func (cn *conn) ingestLoop() {
	c := cn.h.c
	cn.mu.Lock()
	nodeID := cn.node.ID
	cn.mu.Unlock()
	var badLog logLimiter
	for {
		var t *wire.Telemetry
		select {
		case <-cn.ctx.Done():
			return
		case t = <-cn.analytics:
		}
		b, err := telemetry.Decode(t.Payload)
		if err != nil {
			lvl := c.log.Debug
			if badLog.allow(time.Now()) {
				lvl = c.log.Warn
			}
			lvl("dropped invalid analytics batch", "group", cn.groupID, "node", nodeID, "seq", t.Seq, "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(cn.ctx, c.opts.AnalyticsTimeout)
		err = c.opts.Analytics.IngestAnalytics(ctx, cn.groupID, nodeID, t.Seq, b)
		cancel()
		if err != nil {
			if cn.ctx.Err() != nil {
				return
			}
			c.log.Warn("cannot store analytics batch; closing the link so the runtime resends it", "group", cn.groupID, "node", nodeID, "seq", t.Seq, "err", err)
			cn.close(websocket.StatusTryAgainLater, reasonAnalyticsFailed)
			return
		}
		frame, err := wire.EncodeCPFrame(&wire.TelemetryAck{Seq: t.Seq})
		if err == nil {
			err = cn.write(cn.ctx, frame)
		}
		if err != nil {
			// The link is failing; the runtime resends the batch and dedupe keeps it single.
			return
		}
	}
}
