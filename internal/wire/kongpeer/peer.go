// Package kongpeer is a test peer that behaves as Kong Gateway 3.x's data
// plane does on the hybrid protocol v1 (/v1/outlet), so that control-plane
// tests can check what a real Kong data plane would see without running
// one. It records every frame, protocol error and applied configuration
// for tests to assert.
//
// What it copies from Kong's data plane:
//   - it dials wss://<address>/v1/outlet?node_id=…&node_hostname=…&node_version=…
//     with the query unencoded, presenting a client certificate and
//     trusting a given CA with SNI = the server name (pki mode);
//   - its first frame is basic_info, binary, plain JSON;
//   - a CP data frame must be one unfragmented binary frame of gzip'd
//     JSON: a fragmented, non-gzip or non-JSON frame is a protocol error
//     that drops the link; text frames and unknown message types are
//     ignored;
//   - it applies only the newest pending reconfigure, stores the CP's
//     config_hash (or its own when the CP sent none) and checks it against
//     the hash it computes itself;
//   - it pings every PingInterval (30 s) and right after each apply or
//     no-op, with its 32-character hash (or 32 zeros) as payload, and
//     never answers the CP's pings;
//   - it drops a link on which no frame arrived for PingWait (45 s);
//   - in Konnect mode, a failed apply is reported with an error frame;
//   - with [VersionValidator] as Options.Validate, it refuses what the
//     declarative parser of its Kong version refuses: fields, values and
//     entity types that version does not have yet.
//
// It does not reconnect: Run serves one link, and tests call it again.
package kongpeer

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/wsframe"
)

// Kong's timing defaults.
const (
	// DefaultPingInterval is Kong's CLUSTERING_PING_INTERVAL.
	DefaultPingInterval = 30 * time.Second
	// DefaultVersion is the Kong version the peer claims by default.
	DefaultVersion = "3.10.0"
	// ioTimeout is Kong's CLUSTERING_TIMEOUT for connect and each write.
	ioTimeout = 5 * time.Second
	// closeWait bounds how long Close waits for the CP to answer its close
	// frame before dropping the socket.
	closeWait = time.Second
)

// Options configure a [Peer]. Address, RootCAs, Certificate and NodeID
// are required.
type Options struct {
	// Address is the CP cluster listener, "host:port".
	Address string
	// ServerName is the TLS SNI and the name the CP's certificate must
	// carry (Kong's cluster_server_name); defaults to Address's host.
	ServerName string
	// RootCAs are the CAs the peer trusts for the CP's certificate
	// (cluster_ca_cert).
	RootCAs *x509.CertPool
	// Certificate is the client certificate and key (cluster_cert).
	Certificate tls.Certificate

	// NodeID is sent as node_id, as is; the peer does not validate it, so
	// tests can check how the CP treats a bad one.
	NodeID string
	// Hostname is sent as node_hostname; defaults to "kongpeer".
	Hostname string
	// Version is sent as node_version; defaults to DefaultVersion. An
	// empty value can be forced with OmitVersion.
	Version string
	// OmitVersion leaves node_version out of the connect URL.
	OmitVersion bool

	// Plugins are announced in basic_info; Kong sorts them by lowercased
	// name and so does the peer.
	Plugins []wire.PluginInfo
	// Labels are announced in basic_info when not empty.
	Labels map[string]string
	// ProcessConf is announced in basic_info; defaults to
	// {"role":"data_plane","database":"off"}.
	ProcessConf map[string]any

	// PingInterval is the time between pings; defaults to
	// DefaultPingInterval.
	PingInterval time.Duration
	// PingWait is how long the link may stay silent before the peer drops
	// it; defaults to 1.5 × PingInterval, as in Kong.
	PingWait time.Duration
	// MaxPayload is the largest frame accepted, in bytes (Kong's
	// cluster_max_payload); defaults to wire.DefaultMaxPayload.
	MaxPayload int64

	// KonnectMode makes the peer report failed applies with an error
	// frame, as Kong does only when connected to Konnect.
	KonnectMode bool
	// Validate, when set, stands in for Kong's declarative parser: an
	// error fails the apply (the peer keeps its previous configuration).
	Validate func(config map[string]any) error
	// Logger receives debug logs; defaults to discarding them.
	Logger *slog.Logger
}

// Direction says who sent a recorded frame.
type Direction int

// Frame directions.
const (
	Received Direction = iota // from the CP
	Sent                      // to the CP
)

// Frame is one recorded WebSocket frame.
type Frame struct {
	// Dir says who sent it.
	Dir Direction
	// Opcode is the frame's opcode.
	Opcode Opcode
	// Fin is the FIN bit; false marks a fragment.
	Fin bool
	// Payload is the unmasked payload (gzip'd data stays compressed).
	Payload []byte
	// At is when the peer read or wrote the frame.
	At time.Time
}

// Applied records what the peer did with one reconfigure message.
type Applied struct {
	// ConfigHash is the hash the peer stored (the CP's config_hash, or the
	// computed one when the CP sent none).
	ConfigHash string
	// ComputedHash is wire.ConfigHash of the received config_table.
	ComputedHash string
	// HashMatches reports whether the CP's config_hash equals ComputedHash.
	HashMatches bool
	// NoOp is true when the hash equalled the current one and nothing was
	// applied.
	NoOp bool
	// Err is the apply failure, if any.
	Err error
	// At is when the message was handled.
	At time.Time
}

// CloseInfo describes how the link ended.
type CloseInfo struct {
	// FromCP is true when the CP sent a close frame.
	FromCP bool
	// Code and Reason are the CP's close code and reason (0 and "" when
	// the close frame had none, or the CP sent none).
	Code   int
	Reason string
	// Err is why Run returned.
	Err error
}

// HandshakeError is returned when the CP refuses the WebSocket upgrade
// with an HTTP status, e.g. 400 for a bad query.
type HandshakeError struct {
	// StatusCode is the HTTP status of the refusal.
	StatusCode int
	// Body is the start (at most 4 KiB) of the response body.
	Body string
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("control plane refused the upgrade: HTTP %d: %s", e.StatusCode, e.Body)
}

// Errors Run may return.
var (
	// ErrClosedByCP: the CP sent a close frame.
	ErrClosedByCP = errors.New("control plane closed the connection")
	// ErrSilent: no frame arrived for PingWait.
	ErrSilent = errors.New("no frame from the control plane within the ping wait")
	// ErrPeerClosed: Close was called.
	ErrPeerClosed = errors.New("peer closed")
)

// Peer is a fake Kong data plane. Its methods are safe for concurrent use.
type Peer struct {
	opts Options // immutable after New
	log  *slog.Logger

	// writeMu serializes frame writes on the current connection.
	writeMu sync.Mutex

	// kick asks the pinger to ping now; wake tells the applier that next
	// holds a message. Both hold at most one token.
	kick chan struct{}
	wake chan struct{}

	// mu guards everything below.
	mu        sync.Mutex
	conn      net.Conn      // current link; nil when not connected
	br        *bufio.Reader // reads conn
	cancel    context.CancelFunc
	running   chan struct{} // closed when the current Run returns
	closed    bool          // Close was called
	next      *wire.Reconfigure
	frames    []Frame
	protoErrs []error
	applied   []Applied
	config    map[string]any
	hash      string
	closeInfo *CloseInfo
	changed   chan struct{} // closed and replaced on every recorded change
	pingsSent int
}

// New checks opts, fills defaults and returns a peer that is not yet
// connected.
func New(opts Options) (*Peer, error) {
	if opts.Address == "" {
		return nil, errors.New("kongpeer: Address is required")
	}
	host, _, err := net.SplitHostPort(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("kongpeer: Address %q: %w", opts.Address, err)
	}
	if opts.RootCAs == nil {
		return nil, errors.New("kongpeer: RootCAs is required (pki mode)")
	}
	if len(opts.Certificate.Certificate) == 0 {
		return nil, errors.New("kongpeer: Certificate is required")
	}
	if opts.NodeID == "" {
		return nil, errors.New("kongpeer: NodeID is required")
	}
	if opts.ServerName == "" {
		opts.ServerName = host
	}
	if opts.Hostname == "" {
		opts.Hostname = "kongpeer"
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PingWait <= 0 {
		opts.PingWait = opts.PingInterval * 3 / 2
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = wire.DefaultMaxPayload
	}
	if opts.ProcessConf == nil {
		opts.ProcessConf = map[string]any{"role": "data_plane", "database": "off"}
	}
	opts.Plugins = slices.Clone(opts.Plugins)
	slices.SortStableFunc(opts.Plugins, func(a, b wire.PluginInfo) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peer{
		opts:    opts,
		log:     log.With("component", "kongpeer", "node_id", opts.NodeID),
		kick:    make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}, nil
}

// Connect dials the CP, upgrades to WebSocket and sends basic_info. A
// refused upgrade returns a *HandshakeError.
func (p *Peer) Connect(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPeerClosed
	}
	if p.conn != nil {
		p.mu.Unlock()
		return errors.New("kongpeer: already connected")
	}
	p.mu.Unlock()

	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: ioTimeout},
		Config: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			RootCAs:      p.opts.RootCAs,
			ServerName:   p.opts.ServerName,
			Certificates: []tls.Certificate{p.opts.Certificate},
			// Kong's cluster client speaks HTTP/1.1 only.
			NextProtos: []string{"http/1.1"},
		},
	}
	conn, err := dialer.DialContext(ctx, "tcp", p.opts.Address)
	if err != nil {
		return fmt.Errorf("kongpeer: dialing %s: %w", p.opts.Address, err)
	}
	br, err := p.handshake(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return err
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = conn.Close()
		return ErrPeerClosed
	}
	p.conn, p.br = conn, br
	p.closeInfo = nil
	p.mu.Unlock()

	info, err := wire.EncodeBasicInfo(&wire.BasicInfo{
		Plugins:     p.opts.Plugins,
		Labels:      p.opts.Labels,
		ProcessConf: p.opts.ProcessConf,
		Filters:     map[string]wire.FilterInfo{},
	})
	if err == nil {
		err = p.write(conn, OpBinary, info)
	}
	if err != nil {
		p.dropConn(conn)
		return fmt.Errorf("kongpeer: sending basic_info: %w", err)
	}
	return nil
}

func (p *Peer) handshake(ctx context.Context, conn net.Conn) (*bufio.Reader, error) {
	deadline := time.Now().Add(ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("kongpeer: %w", err)
	}
	defer func() { _ = conn.SetDeadline(time.Time{}) }()

	q := wire.NodeQuery{NodeID: p.opts.NodeID, Hostname: p.opts.Hostname, Version: p.opts.Version}.RawQuery()
	if p.opts.OmitVersion {
		q = wire.ParamNodeID + "=" + p.opts.NodeID + "&" + wire.ParamNodeHostname + "=" + p.opts.Hostname
	}
	br, err := wsframe.Handshake(conn, p.opts.Address, wire.OutletPath+"?"+q, 0)
	var se *wsframe.StatusError
	switch {
	case errors.As(err, &se):
		return nil, &HandshakeError{StatusCode: se.StatusCode, Body: string(se.Body)}
	case err != nil:
		return nil, fmt.Errorf("kongpeer: %w", err)
	}
	return br, nil
}

// Run connects unless Connect already did, then serves the link until the
// CP closes it, a protocol error or silence ends it, ctx is done or Close
// is called, and returns why. It does not reconnect.
func (p *Peer) Run(ctx context.Context) error {
	p.mu.Lock()
	connected := p.conn != nil
	p.mu.Unlock()
	if !connected {
		if err := p.Connect(ctx); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	if p.running != nil {
		p.mu.Unlock()
		return errors.New("kongpeer: already running")
	}
	conn, br := p.conn, p.br
	if conn == nil || p.closed {
		p.mu.Unlock()
		return ErrPeerClosed
	}
	running := make(chan struct{})
	p.cancel, p.running = cancel, running
	p.mu.Unlock()
	defer close(running)

	// Closing the connection is the only way to interrupt a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- p.readLoop(ctx, conn, br) })
	wg.Go(func() { errc <- p.pingLoop(ctx, conn) })
	wg.Go(func() { errc <- p.applyLoop(ctx, conn) })

	err := <-errc
	// Close marks the peer closed before it sends its close frame, so a CP
	// that answers that frame before Close cancels ctx still ends the link
	// as ErrPeerClosed, not as closed by the CP.
	p.mu.Lock()
	switch {
	case p.closed:
		err = ErrPeerClosed
	case ctx.Err() != nil && (err == nil || errors.Is(err, net.ErrClosed)):
		err = ctx.Err()
	}
	p.mu.Unlock()
	// Like lua-resty-websocket's close(), send an empty close frame
	// before dropping the socket, unless the CP closed first (then it was
	// already answered, or Close sent it).
	if !errors.Is(err, ErrClosedByCP) && !errors.Is(err, ErrPeerClosed) {
		_ = p.write(conn, OpClose, nil)
	}
	cancel()
	_ = conn.Close()
	wg.Wait()

	p.mu.Lock()
	if p.closeInfo == nil {
		p.closeInfo = &CloseInfo{}
	}
	p.closeInfo.Err = err
	p.conn, p.br, p.cancel, p.running = nil, nil, nil, nil
	p.notifyLocked()
	p.mu.Unlock()
	p.log.Debug("link ended", "err", err)
	return err
}

// Close ends the current link, if any, and waits for Run to return. The
// peer cannot be used afterwards.
func (p *Peer) Close() error {
	p.mu.Lock()
	p.closed = true
	cancel, running, conn := p.cancel, p.running, p.conn
	p.mu.Unlock()
	if cancel != nil {
		// RFC 6455 7.1.1: after its close frame the client waits for the
		// server's before dropping the socket, so frames the CP is still
		// writing (a pong to the last ping) do not hit a closed socket.
		// A CP that never answers gets closeWait.
		if p.write(conn, OpClose, nil) == nil {
			t := time.NewTimer(closeWait)
			select {
			case <-running:
			case <-t.C:
			}
			t.Stop()
		}
		cancel()
		<-running
		return nil
	}
	if conn != nil {
		// Connected but never run.
		_ = p.write(conn, OpClose, nil)
		p.dropConn(conn)
	}
	return nil
}

func (p *Peer) dropConn(conn net.Conn) {
	_ = conn.Close()
	p.mu.Lock()
	if p.conn == conn {
		p.conn, p.br = nil, nil
	}
	p.mu.Unlock()
}

func (p *Peer) readLoop(ctx context.Context, conn net.Conn, br *bufio.Reader) error {
	for {
		// Every frame (pongs included) resets the silence timer.
		_ = conn.SetReadDeadline(time.Now().Add(p.opts.PingWait)) // fails only on a closed conn, as the read below does
		f, err := wsframe.Read(br, p.opts.MaxPayload)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &ne) && ne.Timeout():
				return p.protocolError(fmt.Errorf("%w (%s)", ErrSilent, p.opts.PingWait))
			case errors.Is(err, ErrProtocol):
				return p.protocolError(err)
			}
			return fmt.Errorf("error while receiving frame from control plane: %w", err)
		}
		p.record(Frame{Dir: Received, Opcode: f.Op, Fin: f.Fin, Payload: f.Payload, At: time.Now()})

		switch {
		case f.Op == OpClose:
			code, reason, _ := wsframe.ParseClose(f.Payload)
			p.mu.Lock()
			p.closeInfo = &CloseInfo{FromCP: true, Code: code, Reason: reason}
			answered := p.closed // Close sent the peer's close frame already
			p.mu.Unlock()
			if !answered {
				_ = p.write(conn, OpClose, nil) // the answer is best effort: the link ends either way
			}
			return fmt.Errorf("%w: code %d %q", ErrClosedByCP, code, reason)
		case f.Op == OpPing, f.Op == OpPong:
			// Kong's DP never answers pings; pongs only count as traffic.
		case f.Op == OpContinuation || !f.Fin:
			return p.protocolError(fmt.Errorf("%w: fragmented %s message from control plane", ErrProtocol, f.Op))
		case f.Op == OpText:
			p.log.Debug("ignoring text frame from control plane")
		case f.Op == OpBinary:
			if err := p.handleBinary(f.Payload); err != nil {
				return p.protocolError(err)
			}
		default:
			return p.protocolError(fmt.Errorf("%w: unknown opcode %s", ErrProtocol, f.Op))
		}
	}
}

// handleBinary queues a reconfigure message. Only a payload that is not
// gzip'd JSON is fatal, as in Kong; other message types are ignored, and a
// reconfigure without a config_table fails at apply time.
func (p *Peer) handleBinary(payload []byte) error {
	msg, err := wire.DecodeCPFrame(payload, 0)
	switch {
	case errors.Is(err, wire.ErrWrongType):
		p.log.Debug("ignoring message", "err", err)
		return nil
	case errors.Is(err, wire.ErrMissingField):
		p.recordApplied(Applied{Err: err, At: time.Now()})
		p.sendError(wire.ErrorNameConfigParse, err, "")
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	r, ok := msg.(*wire.Reconfigure)
	if !ok {
		// Gantry's own frames mean nothing to a Kong data plane.
		p.log.Debug("ignoring message", "type", fmt.Sprintf("%T", msg))
		return nil
	}
	p.mu.Lock()
	p.next = r // only the newest pending message is applied
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

func (p *Peer) applyLoop(ctx context.Context, conn net.Conn) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		}
		p.mu.Lock()
		r := p.next
		p.next = nil
		p.mu.Unlock()
		if r != nil {
			p.apply(r)
		}
	}
}

func (p *Peer) apply(r *wire.Reconfigure) {
	a := Applied{At: time.Now()}
	computed, _, err := wire.ConfigHash(r.ConfigTable)
	if err != nil {
		a.Err = err
		p.recordApplied(a)
		p.sendError(wire.ErrorNameConfigParse, err, r.ConfigHash)
		return
	}
	a.ComputedHash = computed
	a.ConfigHash = r.ConfigHash
	a.HashMatches = r.ConfigHash == computed
	if a.ConfigHash == "" {
		// Kong's DP computes the hash itself when the CP sent none.
		a.ConfigHash = computed
	}

	p.mu.Lock()
	current := p.hash
	p.mu.Unlock()
	if a.ConfigHash == current {
		a.NoOp = true
		p.recordApplied(a)
		p.pingSoon()
		return
	}
	if p.opts.Validate != nil {
		if err := p.opts.Validate(r.ConfigTable); err != nil {
			a.Err = err
			p.recordApplied(a)
			p.sendError(wire.ErrorNameConfigParse, err, a.ConfigHash)
			return
		}
	}
	p.mu.Lock()
	p.config = r.ConfigTable
	p.hash = a.ConfigHash
	p.mu.Unlock()
	p.recordApplied(a)
	p.pingSoon()
}

// sendError reports a failed apply in Konnect mode only, as Kong does.
func (p *Peer) sendError(name string, cause error, hash string) {
	if !p.opts.KonnectMode {
		return
	}
	p.mu.Lock()
	conn := p.conn
	p.mu.Unlock()
	if conn == nil {
		return
	}
	frame, err := wire.EncodeDPFrame(&wire.ErrorFrame{Error: wire.ErrorReport{
		Name:       name,
		Source:     "kong.clustering.data_plane",
		Message:    cause.Error(),
		ConfigHash: hash,
	}})
	if err == nil {
		err = p.write(conn, OpBinary, frame)
	}
	if err != nil {
		p.log.Debug("sending error frame", "err", err)
	}
}

func (p *Peer) pingSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Peer) pingLoop(ctx context.Context, conn net.Conn) error {
	t := time.NewTicker(p.opts.PingInterval)
	defer t.Stop()
	// Kong's ping loop starts with its countdown at zero: the first ping
	// goes out right after connecting.
	next := time.After(0)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
			next = nil
		case <-t.C:
		case <-p.kick:
			t.Reset(p.opts.PingInterval)
		}
		p.mu.Lock()
		hash := p.hash
		p.mu.Unlock()
		if hash == "" {
			hash = wire.EmptyConfigHash
		}
		if err := p.write(conn, OpPing, []byte(hash)); err != nil {
			return fmt.Errorf("sending ping: %w", err)
		}
		p.mu.Lock()
		p.pingsSent++
		p.mu.Unlock()
	}
}

// write sends one final frame and records it.
func (p *Peer) write(conn net.Conn, op Opcode, payload []byte) error {
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return err
	}
	buf := wsframe.Append(make([]byte, 0, len(payload)+14), op, payload, mask)
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if err := conn.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write(buf); err != nil {
		return err
	}
	p.record(Frame{Dir: Sent, Opcode: op, Fin: true, Payload: slices.Clone(payload), At: time.Now()})
	return nil
}

func (p *Peer) protocolError(err error) error {
	p.mu.Lock()
	p.protoErrs = append(p.protoErrs, err)
	p.notifyLocked()
	p.mu.Unlock()
	p.log.Debug("protocol error", "err", err)
	return err
}

func (p *Peer) record(f Frame) {
	p.mu.Lock()
	p.frames = append(p.frames, f)
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *Peer) recordApplied(a Applied) {
	p.mu.Lock()
	p.applied = append(p.applied, a)
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *Peer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Wait blocks until cond returns true or ctx is done. cond is evaluated
// after every recorded change and may call the peer's accessors.
func (p *Peer) Wait(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kongpeer: waiting: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Frames returns a copy of every frame sent and received, in order.
func (p *Peer) Frames() []Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames)
}

// FramesOf returns the recorded frames with the given direction and opcode.
func (p *Peer) FramesOf(dir Direction, op Opcode) []Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Frame
	for _, f := range p.frames {
		if f.Dir == dir && f.Opcode == op {
			out = append(out, f)
		}
	}
	return out
}

// ProtocolErrors returns the protocol errors that dropped links.
func (p *Peer) ProtocolErrors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.protoErrs)
}

// Applied returns a record of every reconfigure handled, in order.
func (p *Peer) Applied() []Applied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.applied)
}

// ConfigHash returns the hash of the applied configuration, or
// wire.EmptyConfigHash when none was applied.
func (p *Peer) ConfigHash() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hash == "" {
		return wire.EmptyConfigHash
	}
	return p.hash
}

// Config returns a shallow copy of the applied configuration; nil when
// none was applied.
func (p *Peer) Config() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.config == nil {
		return nil
	}
	return maps.Clone(p.config)
}

// CloseInfo returns how the last link ended; nil while connected or
// before the first Run returned.
func (p *Peer) CloseInfo() *CloseInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closeInfo == nil || p.running != nil {
		return nil
	}
	c := *p.closeInfo
	return &c
}

// PingsSent returns how many pings the peer has sent.
func (p *Peer) PingsSent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pingsSent
}
