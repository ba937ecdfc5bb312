package httplog_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/httplog"
	"github.com/gantry-gw/gantry/internal/dp/plugins/logserializer"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

type collector struct {
	mu sync.Mutex
	// guarded by mu:
	bodies  []string
	headers []http.Header
	got     chan struct{}
}

func newCollector(t *testing.T, fail int32) (*collector, *httptest.Server) {
	c := &collector{got: make(chan struct{}, 100)}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= fail {
			w.WriteHeader(500)
			return
		}
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.bodies = append(c.bodies, string(b))
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
		c.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *collector) wait(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-c.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d deliveries", i, n)
		}
	}
}

func cfg(endpoint string, batch int, delay float64) httplog.Config {
	return httplog.Config{HTTPEndpoint: endpoint, Method: "POST", ContentType: "application/json", Timeout: 1000, Keepalive: 1000,
		Headers: map[string]string{"X-Token": "t"},
		Queue:   httplog.QueueConfig{MaxBatchSize: batch, MaxCoalescingDelay: delay, MaxEntries: 100, MaxRetryTime: 5, InitialRetryDelay: 0.01, MaxRetryDelay: 0.05, ConcurrencyLimit: 1}}
}

func TestSingleEntries(t *testing.T) {
	col, srv := newCollector(t, 0)
	s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "http-log", Config: plugintest.Config(cfg(srv.URL, 1, 1))}}})
	r := httptest.NewRequest("GET", "/a?x=1", nil)
	r.Header.Set("Authorization", "secret")
	if res := s.Do(r); res.Status != 200 {
		t.Fatal(res.Status)
	}
	col.wait(t, 1)
	col.mu.Lock()
	defer col.mu.Unlock()
	var e logserializer.Entry
	if err := json.Unmarshal([]byte(col.bodies[0]), &e); err != nil {
		t.Fatalf("%v: %s", err, col.bodies[0])
	}
	if e.Request.Method != "GET" || e.Request.URI != "/a?x=1" || e.Response.Status != 200 || e.Request.Headers["authorization"] != "REDACTED" || e.ClientIP != "192.0.2.1" {
		t.Errorf("entry %s", col.bodies[0])
	}
	if col.headers[0].Get("X-Token") != "t" || col.headers[0].Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", col.headers[0])
	}
}

func TestBatchAndRetry(t *testing.T) {
	col, srv := newCollector(t, 2) // the first two attempts fail
	s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "http-log", Config: plugintest.Config(cfg(srv.URL, 3, 0.05))}}})
	for i := 0; i < 3; i++ {
		s.Do(httptest.NewRequest("GET", "/", nil))
	}
	col.wait(t, 1)
	col.mu.Lock()
	defer col.mu.Unlock()
	var batch []logserializer.Entry
	if err := json.Unmarshal([]byte(col.bodies[0]), &batch); err != nil || len(batch) != 3 {
		t.Fatalf("batch %v %s", err, col.bodies[0])
	}
}

func TestNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c := cfg(srv.URL, 1, 1)
	c.Queue.MaxEntries = 1
	c.Timeout = 300
	c.Queue.MaxRetryTime = 0.5
	s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "http-log", Config: plugintest.Config(c)}}})
	start := time.Now()
	for i := 0; i < 20; i++ {
		s.Do(httptest.NewRequest("GET", "/", nil))
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("20 requests took %v with a stuck endpoint", d)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []httplog.Config{
		cfg("ftp://x", 1, 1),
		func() httplog.Config { c := cfg("http://x", 1, 1); c.Method = "GET"; return c }(),
		func() httplog.Config {
			c := cfg("http://x", 1, 1)
			c.Headers = map[string]string{"Host": "x"}
			return c
		}(),
	} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "http-log", Config: plugintest.Config(c)}}}); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
