// Package accesslog writes the runtime's access log: one JSON line per proxied request, written off
// the request path. Record only copies a fixed-size Entry into a bounded queue; a background
// goroutine encodes and writes the lines. When the queue is full (the destination is slower than
// the traffic) entries are dropped and counted, never waited for. Entries hold no credentials,
// headers, query strings or bodies: the proxy fills only the fields below.
package accesslog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultQueue is how many entries may wait to be written.
	DefaultQueue = 8192
	// DefaultFlushInterval is how often buffered lines are flushed when traffic is steady.
	DefaultFlushInterval = time.Second
)

// Entry is one finished request. Strings must not be modified after Record (the proxy passes
// configuration ids and per-request strings it does not reuse).
type Entry struct {
	// Time is when the request started.
	Time time.Time
	// RequestID is the request's id (the X-Kong-Request-Id / X-Gantry-Request-Id value).
	RequestID string
	// Method and Path are the request's method and path, without the query string.
	Method, Path string
	// ClientIP is the client's address as the proxy trusts it.
	ClientIP string
	// RouteID, ServiceID and ConsumerID are ids from the configuration; "" when none.
	RouteID, ServiceID, ConsumerID string
	// Status is the status sent to the client.
	Status int
	// Latency is the whole request's, Upstream the time waiting for the upstream (0 when none
	// answered).
	Latency, Upstream time.Duration
	// RequestBytes and ResponseBytes are body sizes.
	RequestBytes, ResponseBytes int64
	// UpstreamAddr is the upstream address of the last try; "" when none was tried.
	UpstreamAddr string
}

// Options configure New.
type Options struct {
	// Out receives the lines; required. A *os.File opened by Open is reopened by Reopen.
	Out io.Writer
	// Queue bounds the entries waiting; defaults to DefaultQueue.
	Queue int
	// FlushInterval bounds how long a line may sit in the buffer; defaults to
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Logger receives write failures and drop counts; nil discards them.
	Logger *slog.Logger
}

// Log is an access log. Record is safe for concurrent use and never blocks.
type Log struct {
	opts    Options
	log     *slog.Logger
	q       chan Entry
	dropped atomic.Int64

	mu  sync.Mutex // guards out and w: the writer goroutine and Reopen
	out io.Writer
	w   *bufio.Writer
	// path is set when Open opened the destination, for Reopen.
	path string
}

// New returns a Log writing to opts.Out; Run must be running for lines to be written.
func New(opts Options) (*Log, error) {
	if opts.Out == nil {
		return nil, errors.New("accesslog: Out is required")
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{opts: opts, log: log.With("component", "accesslog"), q: make(chan Entry, opts.Queue), out: opts.Out,
		w: bufio.NewWriterSize(opts.Out, 64<<10)}, nil
}

// Open returns a Log for the --access-log value: "stdout", or a file path (created 0600,
// appended to; Reopen opens it again after a log rotation). "off" and "" return nil.
func Open(dest string, opts Options) (*Log, error) {
	switch dest {
	case "", "off":
		return nil, nil
	case "stdout", "-":
		opts.Out = os.Stdout
		return New(opts)
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	opts.Out = f
	l, err := New(opts)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	l.path = dest
	return l, nil
}

// Record queues e; when the queue is full e is dropped and counted.
func (l *Log) Record(e *Entry) {
	select {
	case l.q <- *e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns how many entries were dropped because the queue was full.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Run writes queued entries until ctx ends, then writes what is left and flushes.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	var buf []byte
	var reported int64
	write := func(e *Entry) {
		buf = AppendJSON(buf[:0], e)
		l.mu.Lock()
		_, err := l.w.Write(buf)
		l.mu.Unlock()
		if err != nil {
			l.log.Error("cannot write the access log", "err", err)
		}
	}
	flush := func() {
		l.mu.Lock()
		err := l.w.Flush()
		l.mu.Unlock()
		if err != nil {
			l.log.Error("cannot write the access log", "err", err)
		}
		if d := l.dropped.Load(); d > reported {
			l.log.Warn("access log entries dropped: the destination is slower than the traffic", "dropped", d-reported, "total", d)
			reported = d
		}
	}
	for {
		select {
		case e := <-l.q:
			write(&e)
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-l.q:
					write(&e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Reopen flushes and reopens a file destination (after logrotate moved it); other destinations
// are only flushed.
func (l *Log) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		return err
	}
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	if c, ok := l.out.(io.Closer); ok {
		_ = c.Close() // the old file is done with either way
	}
	l.out = f
	l.w.Reset(f)
	return nil
}

// Close flushes and closes a file destination; call it after Run returned.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if c, ok := l.out.(io.Closer); ok && l.path != "" {
		err = errors.Join(err, c.Close())
	}
	return err
}

// AppendJSON appends e as one JSON line (with its newline) to b. Field names follow Kong's log
// plugins where they have one (latencies in milliseconds).
func AppendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, '"')
	b = appendStr(b, "request_id", e.RequestID)
	b = appendStr(b, "method", e.Method)
	b = appendStr(b, "path", e.Path)
	b = appendStr(b, "client_ip", e.ClientIP)
	b = appendStr(b, "route_id", e.RouteID)
	b = appendStr(b, "service_id", e.ServiceID)
	b = appendStr(b, "consumer_id", e.ConsumerID)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latencies":{"request":`...)
	b = strconv.AppendInt(b, e.Latency.Milliseconds(), 10)
	b = append(b, `,"proxy":`...)
	b = strconv.AppendInt(b, (e.Latency - e.Upstream).Milliseconds(), 10)
	b = append(b, `,"upstream":`...)
	b = strconv.AppendInt(b, e.Upstream.Milliseconds(), 10)
	b = append(b, `},"request_bytes":`...)
	b = strconv.AppendInt(b, e.RequestBytes, 10)
	b = append(b, `,"response_bytes":`...)
	b = strconv.AppendInt(b, e.ResponseBytes, 10)
	b = appendStr(b, "upstream_addr", e.UpstreamAddr)
	return append(b, "}\n"...)
}

// appendStr appends ,"key":"value" (JSON-escaped), or nothing for an empty value.
func appendStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	q, _ := json.Marshal(v) // a string always encodes
	return append(b, q...)
}
