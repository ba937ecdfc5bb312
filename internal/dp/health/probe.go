package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// startCheckers starts the active checkers of one upstream and returns the
// function that stops them. r.mu is held.
func (r *Registry) startCheckers(st *upstreamState) context.CancelFunc {
	ctx, stop := context.WithCancel(r.ctx)
	targets := make([]*Target, 0, len(st.order))
	for _, addr := range st.order {
		targets = append(targets, st.targets[addr])
	}
	c := st.cfg
	// Each side runs on its own ticker, as Kong's checker does, so a slow
	// round on one side does not delay the other.
	for _, side := range []struct {
		wantHealthy bool
		interval    time.Duration
	}{{true, c.healthyInterval}, {false, c.unhealthyInterval}} {
		if side.interval <= 0 {
			continue // Kong: an interval of 0 disables probing that side.
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.runSide(ctx, c, targets, side.wantHealthy, side.interval)
		}()
	}
	return stop
}

// runSide probes, every interval, the targets currently in the wanted state.
func (r *Registry) runSide(ctx context.Context, c *checks, targets []*Target, wantHealthy bool, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	due := make([]*Target, 0, len(targets))
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		due = due[:0]
		for _, t := range targets {
			if t.weight.Load() > 0 && t.healthy.Load() == wantHealthy {
				due = append(due, t)
			}
		}
		r.probeRound(ctx, c, due)
	}
}

// probeRound probes targets with at most c.concurrency probes in flight and
// returns when all are done.
func (r *Registry) probeRound(ctx context.Context, c *checks, targets []*Target) {
	if len(targets) == 0 {
		return
	}
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := r.probe(ctx, c, t)
			if ctx.Err() != nil {
				return // Stopping: a cut-short probe says nothing about the target.
			}
			// Reports after the upstream's checks changed would apply stale
			// thresholds; the new checkers take over.
			if t.cfg.Load() == c {
				t.record(c, &c.active, o, "active")
			}
		}()
	}
	wg.Wait()
}

// probe runs one active check of t.
func (r *Registry) probe(ctx context.Context, c *checks, t *Target) outcome {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return failure(ctx, err)
	}
	defer func(raw net.Conn) { _ = raw.Close() }(conn) // the TCP connection, even once TLS wraps it
	if c.probeType == "tcp" {
		return outcomeSuccess
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return failure(ctx, err)
		}
	}
	// Closing the connection when ctx ends unblocks reads on shutdown.
	stopAfter := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stopAfter()

	if c.probeType == "https" {
		sni := c.sni
		if sni == "" {
			sni = t.host
		}
		tc := tls.Client(conn, &tls.Config{
			ServerName:         sni,
			InsecureSkipVerify: !c.verify, //nolint:gosec // Kong's https_verify_certificate=false.
			RootCAs:            r.rootCAs,
			MinVersion:         tls.VersionTLS12,
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			return failure(ctx, err)
		}
		conn = tc
	}
	if _, err := conn.Write(probeRequest(c, t)); err != nil {
		return failure(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return failure(ctx, err)
	}
	_ = resp.Body.Close()
	return classify(&c.active, resp.StatusCode)
}

// probeRequest builds the probe: an HTTP/1.0 GET with the Host header set to
// the upstream's host_header or the target host, as Kong's checker sends.
func probeRequest(c *checks, t *Target) []byte {
	host := c.hostHeader
	if host == "" {
		host = t.host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(c.path)
	b.WriteString(" HTTP/1.0\r\nHost: ")
	b.WriteString(host)
	b.WriteString("\r\n")
	for k, vs := range c.headers {
		if k == "Host" {
			continue
		}
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// failure classifies a probe error as a timeout or a TCP failure. The probe
// context's deadline is checked first: when it fires, the connection is
// closed under the reader, which then reports a closed connection rather
// than a timeout.
func failure(ctx context.Context, err error) outcome {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return outcomeTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outcomeTimeout
	}
	return outcomeTCPFailure
}
