package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// phaseRec records the phases test plugins run, in order.
type phaseRec struct {
	mu sync.Mutex
	// guarded by mu:
	events []string
}

func (p *phaseRec) add(s string) {
	p.mu.Lock()
	p.events = append(p.events, s)
	p.mu.Unlock()
}

// phasePlugin is a test plugin recording every phase it runs. Its config
// selects what it does besides recording.
type phasePlugin struct {
	name string
	rec  *phaseRec
	cfg  phaseCfg
}

type phaseCfg struct {
	RewriteExit int    `json:"rewrite_exit"` // exit with this status in rewrite
	AccessExit  int    `json:"access_exit"`  // exit with this status in access
	SetPath     string `json:"set_path"`     // rewrite the upstream path in access
	Upper       bool   `json:"upper"`        // body filter upper-cases the body
	Status      int    `json:"status"`       // header filter replaces the status
	// LogWait makes the log phase wait for the test to release it, to prove
	// the client had its response before logging started.
	LogWait bool `json:"log_wait"`
}

// logGate is released by tests waiting for a client to read a response
// before the log phase finishes.
var logGate = make(chan struct{}, 16)

func (p *phasePlugin) Rewrite(c *plugin.Ctx) error {
	p.rec.add("rewrite:" + p.name)
	if p.cfg.RewriteExit != 0 {
		c.ExitJSON(p.cfg.RewriteExit, "rewrite "+p.name, nil)
	}
	return nil
}

func (p *phasePlugin) Access(c *plugin.Ctx) error {
	p.rec.add("access:" + p.name)
	c.SetUpstreamHeader("X-Access-"+p.name, "1")
	c.SetResponseHeader("X-Pending-"+p.name, "1")
	if p.cfg.SetPath != "" {
		c.Request.URL.Path = p.cfg.SetPath
	}
	if p.cfg.AccessExit != 0 {
		c.ExitJSON(p.cfg.AccessExit, "stopped by "+p.name, nil)
	}
	return nil
}

func (p *phasePlugin) HeaderFilter(c *plugin.Ctx) error {
	p.rec.add("header:" + p.name)
	c.Response.Header.Set("X-Header-"+p.name, "1")
	if p.cfg.Status != 0 {
		c.Response.Status = p.cfg.Status
	}
	return nil
}

func (p *phasePlugin) WantsBody(*plugin.Ctx) bool { return p.cfg.Upper }

func (p *phasePlugin) BodyFilter(c *plugin.Ctx) error {
	p.rec.add("body:" + p.name)
	c.Response.Body = append(bytes.ToUpper(c.Response.Body), "!"...)
	return nil
}

func (p *phasePlugin) Log(c *plugin.Ctx) {
	if p.cfg.LogWait {
		select {
		case <-logGate:
			p.rec.add("log-released")
		case <-time.After(2 * time.Second):
			p.rec.add("log-timeout")
		}
	}
	p.rec.add("log:" + p.name + ":" + itoa(int64(c.Log.Status)))
}

// phaseSet compiles test plugins: "g" global (rewrite only runs for
// globals), and "a" (priority 1000), "b" (priority 500) on route r1.
func phaseSet(t testing.TB, rec *phaseRec, g, a, b *phaseCfg) *plugin.Set {
	t.Helper()
	reg := plugin.NewRegistry()
	for _, r := range []struct {
		name string
		prio int
	}{{"g", 2000}, {"a", 1000}, {"b", 500}} {
		name := r.name
		err := reg.Add(plugin.Registration{Name: name, Priority: r.prio, New: func(cfg json.RawMessage, _ plugin.Env) (plugin.Instance, error) {
			pp := &phasePlugin{name: name, rec: rec}
			return pp, json.Unmarshal(cfg, &pp.cfg)
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	env, err := plugin.NewMemEnv(plugin.MemEnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ents []plugin.PluginEntity
	add := func(name string, c *phaseCfg, route string) {
		if c == nil {
			return
		}
		raw, _ := json.Marshal(c)
		ents = append(ents, plugin.PluginEntity{ID: name + "-id", Name: name, Enabled: true, RouteID: route, Config: raw})
	}
	add("g", g, "")
	add("a", a, "r1")
	add("b", b, "r1")
	set, err := plugin.Compile(context.Background(), plugin.CompileOptions{Plugins: ents, Env: env, Registry: reg,
		Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set
}

func TestPluginPhases(t *testing.T) { bothServers(t, testPluginPhases) }

func testPluginPhases(t *testing.T, sk serverKind) {
	var upCalls atomic.Int64
	var upPath, upHeader atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upCalls.Add(1)
		upPath.Store(r.URL.Path)
		upHeader.Store(r.Header.Get("X-Access-A") + r.Header.Get("X-Access-B"))
		w.Header().Set("X-Up", "yes")
		_, _ = io.WriteString(w, "aaaaaaaaaa")
	}))
	t.Cleanup(up.Close)
	svc := serviceFor(t, up.Listener.Addr().String())
	refused := serviceFor(t, "127.0.0.1:1")
	refused.Retries = 0

	tests := []struct {
		name      string
		g, a, b   *phaseCfg
		svc       *Service
		status    int
		body      string // exact, or prefix when ending in "*"
		events    string
		upstream  bool
		upPath    string
		hdrs      []string // response headers that must be present
		noHdrs    []string // response headers that must be absent
		releaseFn bool     // the test releases a log gate after reading
	}{
		{
			name: "all phases in Kong's order", g: &phaseCfg{}, a: &phaseCfg{}, b: &phaseCfg{},
			status: 200, body: "aaaaaaaaaa", upstream: true, upPath: "/p",
			events: "rewrite:g access:g access:a access:b header:g header:a header:b log:g:200 log:a:200 log:b:200",
			hdrs:   []string{"X-Header-A", "X-Header-B", "X-Pending-A", "X-Pending-B", "X-Up"},
		},
		{
			name: "access short-circuit skips upstream, later plugins still collected",
			a:    &phaseCfg{AccessExit: 403}, b: &phaseCfg{},
			status: 403, body: `{"message":"stopped by a"}`, upstream: false,
			events: "access:a header:a header:b log:a:403 log:b:403",
			hdrs:   []string{"X-Header-A", "X-Header-B", "X-Pending-A", "X-Gantry-Request-Id"},
			noHdrs: []string{"X-Pending-B", "X-Up"},
		},
		{
			name: "rewrite short-circuit skips routing and access",
			g:    &phaseCfg{RewriteExit: 429}, a: &phaseCfg{},
			status: 429, body: `{"message":"rewrite g"}`, upstream: false,
			events: "rewrite:g",
		},
		{
			name: "body filter buffers and rewrites the body, length fixed",
			a:    &phaseCfg{}, b: &phaseCfg{Upper: true, Status: 201},
			status: 201, body: "AAAAAAAAAA!", upstream: true, upPath: "/p",
			events: "access:a access:b header:a header:b body:b log:a:201 log:b:201",
		},
		{
			name:   "access rewrites the upstream path",
			a:      &phaseCfg{SetPath: "/rewritten"},
			status: 200, body: "aaaaaaaaaa", upstream: true, upPath: "/rewritten",
			events: "access:a header:a log:a:200",
		},
		{
			name: "upstream failure still runs header and log",
			a:    &phaseCfg{}, svc: refused,
			status: 502, body: "{\n  \"message\":\"An invalid response*", upstream: false,
			events: "access:a header:a log:a:502",
			hdrs:   []string{"X-Header-A"},
		},
		{
			name:   "log runs after the client has the response",
			a:      &phaseCfg{LogWait: true},
			status: 200, body: "aaaaaaaaaa", upstream: true, upPath: "/p", releaseFn: true,
			events: "access:a header:a log-released log:a:200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &phaseRec{}
			set := phaseSet(t, rec, tt.g, tt.a, tt.b)
			s := svc
			if tt.svc != nil {
				s = tt.svc
			}
			cfg := &Config{Resolver: resolverFunc(func(r *http.Request, m *Match) {
				m.Service, m.RouteID, m.Plugins = s, "r1", set.Route("r1")
			})}
			if tt.g != nil {
				cfg.Global = set
			}
			env := newEnv(t, sk, cfg, h1client.Options{})
			before := upCalls.Load()
			resp, err := http.Get(env.url + "/p")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tt.releaseFn {
				// The whole response arrived while the log phase was held.
				logGate <- struct{}{}
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if want, ok := strings.CutSuffix(tt.body, "*"); ok {
				if !strings.HasPrefix(string(body), want) {
					t.Errorf("body %q, want prefix %q", body, want)
				}
			} else if string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			if called := upCalls.Load() > before; called != tt.upstream {
				t.Errorf("upstream called = %v, want %v", called, tt.upstream)
			}
			if tt.upstream {
				if got := upPath.Load(); got != tt.upPath {
					t.Errorf("upstream path %q, want %q", got, tt.upPath)
				}
				if tt.a != nil && upHeader.Load() == "" {
					t.Error("upstream did not get the header set in access")
				}
			}
			for _, h := range tt.hdrs {
				if resp.Header.Get(h) == "" {
					t.Errorf("response header %s missing: %v", h, resp.Header)
				}
			}
			for _, h := range tt.noHdrs {
				if resp.Header.Get(h) != "" {
					t.Errorf("response header %s present", h)
				}
			}
			// The log phase runs after the response: wait for it.
			deadline := time.Now().Add(3 * time.Second)
			var got string
			for {
				rec.mu.Lock()
				got = strings.Join(rec.events, " ")
				rec.mu.Unlock()
				if got == tt.events || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got != tt.events {
				t.Errorf("phases:\n got %s\nwant %s", got, tt.events)
			}
		})
	}
}

// TestPluginFailureIs500 checks that an access error becomes Kong's 500.
func TestPluginAccessError(t *testing.T) { bothServers(t, testPluginAccessError) }

func testPluginAccessError(t *testing.T, sk serverKind) {
	reg := plugin.NewRegistry()
	_ = reg.Add(plugin.Registration{Name: "fail", Priority: 1, New: func(json.RawMessage, plugin.Env) (plugin.Instance, error) {
		return failPlugin{}, nil
	}})
	env, _ := plugin.NewMemEnv(plugin.MemEnvOptions{})
	set, err := plugin.Compile(context.Background(), plugin.CompileOptions{Env: env, Registry: reg,
		Plugins: []plugin.PluginEntity{{ID: "f", Name: "fail", Enabled: true, Config: []byte("{}")}},
		Routes:  []plugin.RouteRef{{ID: "r1"}}})
	if err != nil {
		t.Fatal(err)
	}
	up := newRawUpstream(t, fixedResponder(okResp))
	svc := serviceFor(t, up.addr())
	env2 := newEnv(t, sk, &Config{Resolver: resolverFunc(func(r *http.Request, m *Match) {
		m.Service, m.Plugins = svc, set.Route("r1")
	})}, h1client.Options{})
	resp, body := get(t, env2.url+"/")
	if resp.StatusCode != 500 || !strings.Contains(string(body), MsgUnexpected) {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if up.conns.Load() != 0 {
		t.Error("upstream was called after a failing access phase")
	}
}

type failPlugin struct{}

func (failPlugin) Access(*plugin.Ctx) error { return errors.New("boom") }
