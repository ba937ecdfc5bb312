package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendJSON(t *testing.T) {
	e := Entry{Time: time.Date(2026, 12, 3, 10, 0, 0, 5e6, time.UTC), RequestID: "abc", Method: "GET", Path: `/a"b\c`,
		ClientIP: "10.0.0.1", RouteID: "r1", ServiceID: "s1", Status: 502, Latency: 1500 * time.Millisecond,
		Upstream: 1200 * time.Millisecond, RequestBytes: 3, ResponseBytes: 40, UpstreamAddr: "10.0.0.2:80"}
	line := AppendJSON(nil, &e)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	want := map[string]any{"time": "2026-12-03T10:00:00.005Z", "request_id": "abc", "method": "GET", "path": `/a"b\c`,
		"client_ip": "10.0.0.1", "route_id": "r1", "service_id": "s1", "status": 502.0,
		"latencies":     map[string]any{"request": 1500.0, "proxy": 300.0, "upstream": 1200.0},
		"request_bytes": 3.0, "response_bytes": 40.0, "upstream_addr": "10.0.0.2:80"}
	for k, v := range want {
		if gb, _ := json.Marshal(got[k]); string(gb) != mustJSON(v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["consumer_id"]; ok {
		t.Errorf("an empty consumer is written: %v", got)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestQueueBoundAndRun: Record never blocks: beyond the queue entries are dropped and counted;
// Run writes the queued ones and flushes them when ctx ends.
func TestQueueBoundAndRun(t *testing.T) {
	out := &syncBuffer{}
	l, err := New(Options{Out: out, Queue: 4, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Record(&Entry{Time: time.Now(), RequestID: string(rune('a' + i)), Status: 200})
	}
	if l.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6 beyond a queue of 4", l.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	cancel()
	<-done
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Fatalf("%d lines written, want 4:\n%s", n, out.String())
	}
}

// TestReopen: after the file is moved away (log rotation), Reopen makes later lines go to a new
// file at the configured path.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, Options{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	l.Record(&Entry{Time: time.Now(), RequestID: "before", Status: 200})
	waitContains(t, path, "before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Record(&Entry{Time: time.Now(), RequestID: "after", Status: 200})
	waitContains(t, path, "after")
	cancel()
	<-done
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".1"); strings.Contains(string(b), "after") {
		t.Fatal("a line after Reopen went to the rotated file")
	}
	if l, err := Open("off", Options{}); l != nil || err != nil {
		t.Fatalf(`Open("off") = %v, %v; want no log`, l, err)
	}
}

func waitContains(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q: %q", path, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
