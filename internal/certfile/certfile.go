// Package certfile serves a TLS certificate and key kept in PEM files, reloading them when they
// change on disk (checked every Interval) or when Reload is called (gantry serve calls it on
// SIGHUP), so that a renewed certificate is picked up without a restart. A pair that fails to
// load keeps the previous one serving and is reported.
package certfile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the files are checked for changes.
const DefaultInterval = 10 * time.Second

// Options configure New.
type Options struct {
	// CertFile and KeyFile are PEM files; required. CertFile may hold the chain after the leaf.
	CertFile, KeyFile string
	// Interval is how often Watch checks the files' modification times and sizes; defaults to
	// DefaultInterval.
	Interval time.Duration
	// Logger receives reloads and failures; nil discards them.
	Logger *slog.Logger
}

// Pair is a certificate loaded from files. Use GetCertificate in a tls.Config.
type Pair struct {
	opts Options
	log  *slog.Logger
	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // guards seen: one reload at a time
	seen fileState
}

// fileState is what a reload saw of the two files; a change of either triggers the next one.
type fileState struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// New loads the pair once; an unreadable or mismatched pair is an error naming the files.
func New(opts Options) (*Pair, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("certfile: both a certificate file and a key file are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pair{opts: opts, log: log.With("cert_file", opts.CertFile)}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pair) state() fileState {
	var s fileState
	if fi, err := os.Stat(p.opts.CertFile); err == nil {
		s.certMod, s.certSize = fi.ModTime(), fi.Size()
	}
	if fi, err := os.Stat(p.opts.KeyFile); err == nil {
		s.keyMod, s.keySize = fi.ModTime(), fi.Size()
	}
	return s
}

// Reload reads both files again and, if they hold a matching pair, serves it from now on. On
// failure the previous pair keeps serving and the error says why.
func (p *Pair) Reload() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state()
	c, err := tls.LoadX509KeyPair(p.opts.CertFile, p.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", p.opts.CertFile, p.opts.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", p.opts.CertFile, err)
	}
	c.Leaf = leaf
	old := p.cert.Swap(&c)
	p.seen = st
	if old != nil {
		p.log.Info("reloaded TLS certificate", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Certificate returns the pair being served.
func (p *Pair) Certificate() *tls.Certificate { return p.cert.Load() }

// GetCertificate is a tls.Config.GetCertificate that serves the current pair.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.cert.Load(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate that presents the current pair.
func (p *Pair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.cert.Load(), nil
}

// Watch reloads the pair whenever either file changes, until ctx ends. A reload that fails is
// logged and retried at the next change.
func (p *Pair) Watch(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		changed := p.state() != p.seen
		p.mu.Unlock()
		if !changed {
			continue
		}
		if err := p.Reload(); err != nil {
			p.log.Error("TLS certificate changed on disk but cannot be loaded; the previous one keeps serving", "err", err)
			// Do not retry the same broken files every tick: wait for the next change.
			p.mu.Lock()
			p.seen = p.state()
			p.mu.Unlock()
		}
	}
}
