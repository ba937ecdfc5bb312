// Package httplog is Kong's http-log plugin: log entries are queued in
// memory and sent in batches by a background sender with retries, so the
// request never waits on the log endpoint.
package httplog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/logserializer"
)

// Name and Priority are Kong's.
const (
	Name     = "http-log"
	Priority = 12
)

func init() { plugin.Register(Name, Priority, New) }

// QueueConfig is Kong's queue record. Delays and times are in seconds.
type QueueConfig struct {
	MaxBatchSize       int     `json:"max_batch_size"`
	MaxCoalescingDelay float64 `json:"max_coalescing_delay"`
	MaxEntries         int     `json:"max_entries"`
	MaxBytes           *int    `json:"max_bytes"`
	MaxRetryTime       float64 `json:"max_retry_time"`
	InitialRetryDelay  float64 `json:"initial_retry_delay"`
	MaxRetryDelay      float64 `json:"max_retry_delay"`
	ConcurrencyLimit   int     `json:"concurrency_limit"`
}

// Config is the plugin configuration with Kong's defaults filled in.
// Timeout and Keepalive are in milliseconds.
type Config struct {
	HTTPEndpoint string            `json:"http_endpoint"`
	Method       string            `json:"method"`
	ContentType  string            `json:"content_type"`
	Timeout      int               `json:"timeout"`
	Keepalive    int               `json:"keepalive"`
	Headers      map[string]string `json:"headers"`
	Queue        QueueConfig       `json:"queue"`
}

// HTTPLog is a built http-log instance; it owns its queue and sender.
type HTTPLog struct {
	cfg    Config
	url    string
	client *http.Client
	logger *slog.Logger

	entries chan []byte
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

var (
	_ plugin.LogHandler          = (*HTTPLog)(nil)
	_ interface{ Close() error } = (*HTTPLog)(nil)
)

// New builds an http-log instance and starts its sender.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{Method: "POST", ContentType: "application/json", Timeout: 10000, Keepalive: 60000,
		Queue: QueueConfig{MaxBatchSize: 1, MaxCoalescingDelay: 1, MaxEntries: 10000, MaxRetryTime: 60, InitialRetryDelay: 0.01, MaxRetryDelay: 60, ConcurrencyLimit: 1}}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("http-log: invalid config: %w", err)
	}
	u, err := url.Parse(cfg.HTTPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http-log: http_endpoint: invalid url %q", cfg.HTTPEndpoint)
	}
	switch cfg.Method {
	case "POST", "PUT", "PATCH":
	default:
		return nil, fmt.Errorf("http-log: method: expected one of: POST, PUT, PATCH")
	}
	switch cfg.ContentType {
	case "application/json", "application/json; charset=utf-8":
	default:
		return nil, fmt.Errorf("http-log: content_type: expected one of: application/json, application/json; charset=utf-8")
	}
	for k := range cfg.Headers {
		switch strings.ToLower(k) {
		case "host", "content-length", "content-type":
			return nil, fmt.Errorf("http-log: headers: cannot contain %q header", k)
		}
	}
	q := &cfg.Queue
	if q.MaxBatchSize < 1 || q.MaxEntries < 1 {
		return nil, errors.New("http-log: queue.max_batch_size and queue.max_entries must be positive")
	}
	h := &HTTPLog{
		cfg: cfg, url: cfg.HTTPEndpoint, logger: env.Logger().With("plugin", Name, "plugin_id", env.Plugin().ID),
		client: &http.Client{
			Timeout:   time.Duration(cfg.Timeout) * time.Millisecond,
			Transport: &http.Transport{IdleConnTimeout: time.Duration(cfg.Keepalive) * time.Millisecond, MaxIdleConnsPerHost: max(1, q.ConcurrencyLimit)},
		},
		entries: make(chan []byte, q.MaxEntries),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go h.run()
	return h, nil
}

// Log implements [plugin.LogHandler]: it serializes the entry and queues
// it; when the queue is full the entry is dropped and logged, never
// waited on.
func (h *HTTPLog) Log(c *plugin.Ctx) {
	select {
	case h.entries <- logserializer.JSON(c):
	default:
		h.logger.Warn("queue full, dropping log entry", "max_entries", h.cfg.Queue.MaxEntries)
	}
}

// run batches entries: a batch is sent when full or when the coalescing
// delay since its first entry expires.
func (h *HTTPLog) run() {
	defer close(h.done)
	q := h.cfg.Queue
	delay := time.Duration(q.MaxCoalescingDelay * float64(time.Second))
	var batch [][]byte
	var timer <-chan time.Time
	flush := func() {
		if len(batch) > 0 {
			h.sendWithRetry(batch)
			batch = nil
		}
		timer = nil
	}
	for {
		select {
		case e := <-h.entries:
			batch = append(batch, e)
			if len(batch) >= q.MaxBatchSize {
				flush()
			} else if timer == nil {
				timer = time.After(delay)
			}
		case <-timer:
			flush()
		case <-h.stop:
			// Drain what is queued, then stop.
			for {
				select {
				case e := <-h.entries:
					batch = append(batch, e)
					if len(batch) >= q.MaxBatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

func (h *HTTPLog) payload(batch [][]byte) []byte {
	if h.cfg.Queue.MaxBatchSize == 1 {
		return batch[0]
	}
	return append(append([]byte{'['}, bytes.Join(batch, []byte{','})...), ']')
}

// sendWithRetry retries with exponential backoff from initial_retry_delay,
// capped at max_retry_delay, until max_retry_time has passed; then the
// batch is dropped.
func (h *HTTPLog) sendWithRetry(batch [][]byte) {
	q := h.cfg.Queue
	body := h.payload(batch)
	deadline := time.Now().Add(time.Duration(q.MaxRetryTime * float64(time.Second)))
	wait := time.Duration(q.InitialRetryDelay * float64(time.Second))
	maxWait := time.Duration(q.MaxRetryDelay * float64(time.Second))
	for {
		err := h.send(body)
		if err == nil {
			return
		}
		if time.Now().Add(wait).After(deadline) {
			h.logger.Error("could not send log batch, dropping it", "entries", len(batch), "error", err)
			return
		}
		h.logger.Warn("sending log batch failed, retrying", "error", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-h.stop:
			// Closing: one last attempt was made; do not keep retrying.
			h.logger.Error("dropping log batch on shutdown", "entries", len(batch), "error", err)
			return
		}
		wait = min(wait*2, maxWait)
	}
}

func (h *HTTPLog) send(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.cfg.Timeout)*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, h.cfg.Method, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", h.cfg.ContentType)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	if u, err := url.Parse(h.url); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pw)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return nil
}

// Close stops the sender after sending what is queued (one attempt per
// batch).
func (h *HTTPLog) Close() error {
	h.once.Do(func() { close(h.stop) })
	<-h.done
	h.client.CloseIdleConnections()
	return nil
}
