package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// config is one configuration to apply: from a revision frame (revision >
// 0, answered with ack or nack) or a Kong reconfigure frame (revision 0,
// not answered).
type config struct {
	revision int64
	hash     string
	table    map[string]any
	answer   bool
}

// session is one link to the control plane.
type session struct {
	a  *Agent
	ws *wsConn
	// pending holds the newest configuration not yet applied; only the
	// newest matters, older ones are dropped unapplied (as Kong's next_data
	// slot does).
	pending chan config
	// pingNow asks the pinger to ping at once (after an apply).
	pingNow chan struct{}
	// telemetryAcked wakes the telemetry sender after an acknowledgement.
	telemetryAcked chan struct{}
	// sending is set by the reader once the telemetry sender runs; read
	// and written only by the reader.
	sending bool
	// wg tracks the session's goroutines.
	wg sync.WaitGroup

	errOnce sync.Once
	err     error // the first error that ended the session; set once
	cancel  context.CancelFunc
}

// fail ends the session with err, keeping the first cause.
func (s *session) fail(err error) {
	s.errOnce.Do(func() { s.err = err })
	s.cancel()
}

// session dials the control plane and serves one link until it fails or
// ctx ends. received reports whether the control plane sent any data
// frame (the link worked, so backoff starts over).
func (a *Agent) session(ctx context.Context) (received bool, err error) {
	dctx, dcancel := context.WithTimeout(ctx, a.opts.DialTimeout)
	addr := a.address()
	ws, err := dialWS(dctx, addr, a.opts.TLSConfig, wire.OutletPath, a.query, a.opts.MaxPayload)
	dcancel()
	if err != nil {
		var he *HandshakeError
		if errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode < 500 && mentionsDeletion(he.Body) {
			a.setOrphaned(strings.TrimSpace(he.Body))
		}
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &session{a: a, ws: ws, pending: make(chan config, 1), pingNow: make(chan struct{}, 1),
		telemetryAcked: make(chan struct{}, 1), cancel: cancel}
	// Closing the connection is what unblocks the reader.
	stop := context.AfterFunc(sctx, func() { _ = ws.close(1001, "going away") })
	defer stop()

	bi, err := a.basicInfo()
	if err == nil {
		err = ws.write(opBinary, bi)
	}
	if err != nil {
		cancel()
		_ = ws.conn.Close()
		return false, fmt.Errorf("sending basic_info: %w", err)
	}
	now := time.Now()
	a.mu.Lock()
	a.connected, a.connectedSince, a.protocolVersion = true, now, 0
	a.mu.Unlock()
	a.log.Info("connected to control plane", "address", addr)
	defer func() {
		a.mu.Lock()
		a.connected, a.protocolVersion = false, 0
		a.mu.Unlock()
	}()

	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.pinger(sctx) }()
	go func() { defer s.wg.Done(); s.applier(sctx) }()
	received = s.reader(sctx)
	cancel()
	s.wg.Wait()
	if ctx.Err() != nil {
		return received, ctx.Err()
	}
	return received, s.err
}

// reader reads frames until the link fails, queueing configurations for
// the applier. It reports whether any data frame arrived.
func (s *session) reader(ctx context.Context) (received bool) {
	a := s.a
	idle := a.opts.PingInterval * 3 / 2
	for {
		op, msg, err := s.ws.readMessage(idle, nil)
		if err != nil {
			if ctx.Err() == nil {
				var ce *CloseError
				if errors.As(err, &ce) && mentionsDeletion(ce.Reason) {
					a.setOrphaned(ce.Reason)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					err = fmt.Errorf("no frame from the control plane for %s: %w", idle, err)
				}
			}
			s.fail(err)
			return received
		}
		if op != opBinary {
			// Kong's data plane ignores text frames.
			continue
		}
		m, err := wire.DecodeCPFrame(msg, 0)
		if errors.Is(err, wire.ErrWrongType) {
			s.otherFrame(msg)
			received = true
			continue
		}
		if err != nil {
			// Kong's data plane drops the link on a frame it cannot read.
			s.fail(fmt.Errorf("unreadable frame from the control plane: %w", err))
			return received
		}
		received = true
		switch m := m.(type) {
		case *wire.Hello:
			a.mu.Lock()
			a.protocolVersion = m.ProtocolVersion
			a.mu.Unlock()
			a.log.Debug("control plane hello", "protocol_version", m.ProtocolVersion, "capabilities", m.Capabilities)
			if m.Has(wire.CapAnalytics) && a.opts.Analytics != nil && !s.sending {
				s.sending = true
				s.wg.Add(1)
				go func() { defer s.wg.Done(); s.telemetrySender(ctx) }()
			}
		case *wire.TelemetryAck:
			if a.opts.Analytics != nil && a.opts.Analytics.Ack(m.Seq) {
				select {
				case s.telemetryAcked <- struct{}{}:
				default:
				}
			}
		case *wire.Revision:
			s.enqueue(config{revision: m.Revision, hash: m.ConfigHash, table: m.ConfigTable, answer: true})
		case *wire.Reconfigure:
			s.enqueue(config{hash: m.ConfigHash, table: m.ConfigTable})
		}
	}
}

// telemetrySender sends the outbox's batches, oldest first, keeping at
// most MaxTelemetryInFlight of them unacknowledged on this link, until ctx
// ends. A batch sent on this link is not sent again on it; the next link
// sends every batch still unacknowledged.
func (s *session) telemetrySender(ctx context.Context) {
	out := s.a.opts.Analytics
	inFlight := make(map[int64]bool, MaxTelemetryInFlight)
	for {
		pending := out.Pending()
		// Forget the batches acknowledged or dropped since.
		for seq := range inFlight {
			if !slices.ContainsFunc(pending, func(b *analytics.Batch) bool { return b.Seq == seq }) {
				delete(inFlight, seq)
			}
		}
		for _, b := range pending {
			if len(inFlight) >= MaxTelemetryInFlight {
				break
			}
			if inFlight[b.Seq] {
				continue
			}
			if err := s.sendTelemetry(b); err != nil {
				s.fail(err)
				return
			}
			inFlight[b.Seq] = true
			out.NoteSent()
		}
		select {
		case <-ctx.Done():
			return
		case <-out.Ready():
		case <-s.telemetryAcked:
		}
	}
}

// sendTelemetry sends one analytics batch as a telemetry frame.
func (s *session) sendTelemetry(b *analytics.Batch) error {
	payload, err := b.Payload()
	if err != nil {
		return fmt.Errorf("analytics batch %d: %w", b.Seq, err)
	}
	frame, err := wire.EncodeDPFrame(&wire.Telemetry{Schema: telemetry.Schema, Seq: b.Seq,
		SentAt: float64(time.Now().UnixNano()) / 1e9, Payload: payload})
	if err != nil {
		return fmt.Errorf("encoding analytics batch %d: %w", b.Seq, err)
	}
	if err := s.ws.write(opBinary, frame); err != nil {
		return fmt.Errorf("sending analytics batch %d: %w", b.Seq, err)
	}
	s.a.log.Debug("analytics batch sent", "seq", b.Seq, "minutes", b.Minutes, "bytes", len(frame))
	return nil
}

// otherFrame handles a CP frame type the wire package does not know:
// the orphan notice, or something newer than this build (ignored, as
// Kong's data plane ignores unknown types).
func (s *session) otherFrame(msg []byte) {
	data, err := wire.Gunzip(msg, 0)
	if err != nil {
		return
	}
	var f struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	if json.Unmarshal(data, &f) != nil {
		return
	}
	if f.Type == TypeOrphaned {
		reason := f.Message
		if reason == "" {
			reason = f.Reason
		}
		if reason == "" {
			reason = "the control plane reported this instance's runtime group deleted"
		}
		s.a.setOrphaned(reason)
		return
	}
	s.a.log.Debug("ignoring unknown frame from the control plane", "type", f.Type)
}

// enqueue replaces any configuration still waiting with c. Only the
// reader sends on pending, so the send after draining never blocks.
func (s *session) enqueue(c config) {
	select {
	case old := <-s.pending:
		s.a.log.Debug("dropping superseded configuration", "revision", old.revision, "config_hash", old.hash)
	default:
	}
	s.pending <- c
}

// pinger pings every PingInterval, and at once when asked, with the hash
// being served (32 zeros when none), as Kong's data plane does.
func (s *session) pinger(ctx context.Context) {
	t := time.NewTicker(s.a.opts.PingInterval)
	defer t.Stop()
	ping := func() bool {
		hash, loaded := s.a.opts.Applier.Current()
		if !loaded || len(hash) != 32 {
			hash = wire.EmptyConfigHash
		}
		if err := s.ws.write(opPing, []byte(hash)); err != nil {
			s.fail(fmt.Errorf("ping: %w", err))
			return false
		}
		return true
	}
	// The first ping tells the control plane at once what is served (from
	// the cache, say) so it can skip sending the same configuration.
	if !ping() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.pingNow:
		}
		if !ping() {
			return
		}
	}
}

// applier applies queued configurations one at a time.
func (s *session) applier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.pending:
			s.apply(ctx, c)
		}
	}
}

// apply applies c unless it is already served or was rejected before,
// answers it, caches it, and pings.
func (s *session) apply(ctx context.Context, c config) {
	a := s.a
	if c.hash == "" {
		// Kong's data plane computes the hash itself when the CP sent none.
		h, _, err := wire.ConfigHash(c.table)
		if err != nil {
			a.log.Error("cannot hash configuration from the control plane", "error", err)
			return
		}
		c.hash = h
	}
	log := a.log.With("revision", c.revision, "config_hash", c.hash)

	if cur, loaded := a.opts.Applier.Current(); loaded && cur == c.hash {
		// Same content, perhaps under a new revision number.
		a.mu.Lock()
		changed := c.revision != 0 && c.revision != a.revision
		if changed {
			a.revision = c.revision
		}
		a.source = "control_plane"
		a.mu.Unlock()
		log.Debug("configuration already served")
		if changed {
			s.save(ctx, c)
		}
		s.ack(c)
		s.pingSoon()
		return
	}

	if r := a.quarantined(c.hash); r != nil {
		log.Info("configuration was rejected before; not building it again", "entity_errors", len(r.Errors))
		s.nack(c, r.Message, r.Errors)
		return
	}

	start := time.Now()
	errs, err := a.opts.Applier.Apply(ctx, c.table, c.hash)
	if err != nil || len(errs) > 0 {
		if ctx.Err() != nil {
			// Shutting down or the link ended mid-build: not the
			// configuration's fault, so it is not quarantined.
			return
		}
		msg := fmt.Sprintf("%d entities failed to build; the previous configuration keeps serving", len(errs))
		if err != nil {
			msg = err.Error() + "; the previous configuration keeps serving"
		}
		a.reject(Rejection{Revision: c.revision, ConfigHash: c.hash, Message: msg, Errors: errs, At: time.Now()})
		attrs := []any{"error", msg}
		for i, e := range errs {
			if i == 5 {
				attrs = append(attrs, "more", len(errs)-5)
				break
			}
			attrs = append(attrs, fmt.Sprintf("entity_%d", i), fmt.Sprintf("%s %s %s: %s", e.EntityType, e.EntityID, e.Field, e.Message))
		}
		log.Warn("configuration rejected", attrs...)
		s.nack(c, msg, errs)
		return
	}
	a.mu.Lock()
	a.revision, a.source = c.revision, "control_plane"
	a.mu.Unlock()
	log.Info("configuration applied", "took", time.Since(start).Round(time.Millisecond))
	s.save(ctx, c)
	s.ack(c)
	s.pingSoon()
}

func (s *session) save(ctx context.Context, c config) {
	if s.a.opts.Cache == nil {
		return
	}
	// Saving is best effort: the configuration is served either way, and
	// the next revision tries again.
	if err := s.a.opts.Cache.Save(ctx, &cache.Entry{Revision: c.revision, ConfigHash: c.hash, Config: c.table}); err != nil {
		s.a.log.Error("could not write the configuration cache", "error", err)
	}
}

func (s *session) ack(c config) {
	if !c.answer {
		return
	}
	b, err := wire.EncodeDPFrame(&wire.Ack{Revision: c.revision, ConfigHash: c.hash})
	if err == nil {
		err = s.ws.write(opBinary, b)
	}
	if err != nil {
		s.fail(fmt.Errorf("sending ack: %w", err))
	}
}

func (s *session) nack(c config, msg string, errs []wire.EntityError) {
	if !c.answer {
		return
	}
	if errs == nil {
		errs = []wire.EntityError{}
	}
	b, err := wire.EncodeDPFrame(&wire.Nack{Revision: c.revision, ConfigHash: c.hash, Message: msg, Errors: errs})
	if err == nil {
		err = s.ws.write(opBinary, b)
	}
	if err != nil {
		s.fail(fmt.Errorf("sending nack: %w", err))
	}
}

func (s *session) pingSoon() {
	select {
	case s.pingNow <- struct{}{}:
	default:
	}
}

// quarantined returns the rejection of hash, if it was rejected before.
func (a *Agent) quarantined(hash string) *Rejection {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.quarantine {
		if a.quarantine[i].ConfigHash == hash {
			r := a.quarantine[i]
			return &r
		}
	}
	return nil
}

func (a *Agent) reject(r Rejection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rejected = &r
	if len(a.quarantine) == quarantineSize {
		a.quarantine = append(a.quarantine[:0], a.quarantine[1:]...)
	}
	a.quarantine = append(a.quarantine, r)
}

// mentionsDeletion reports whether a refusal or close reason says the
// instance's group is gone.
func mentionsDeletion(reason string) bool {
	r := strings.ToLower(reason)
	return strings.Contains(r, "orphan") || strings.Contains(r, "deleted")
}

// explain turns a connection error into a sentence that says what to
// check.
func explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		he  *HandshakeError
		dns *net.DNSError
		rh  tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &ua):
		return "the control plane's certificate is not signed by a trusted CA (check --ca): " + msg
	case errors.As(err, &hn):
		return "the control plane's certificate does not name the address dialled (check --control-plane): " + msg
	case errors.As(err, &ci):
		return "the control plane's certificate is invalid: " + msg
	case errors.As(err, &he):
		return msg
	case errors.As(err, &rh):
		return "the address answered without TLS: is --control-plane the API port (:8080)? Give the cluster listener (gantry serve --cluster-listen, :8005 by default): " + msg
	case errors.As(err, &dns):
		return "cannot resolve the control plane's host: " + msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections at the control plane's address (is it running?): " + msg
	case strings.Contains(msg, "remote error: tls"):
		return "the control plane refused this instance's client certificate (unknown, expired, not pinned to a runtime group, or its group was deleted): " + msg
	}
	return msg
}
