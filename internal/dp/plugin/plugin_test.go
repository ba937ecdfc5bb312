package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// probe is a test plugin: access tags the upstream request with its config
// tag and may exit; header filter tags the response; log records the tag.
type probe struct {
	name string
	cfg  struct {
		Tag  string `json:"tag"`
		Exit int    `json:"exit"`
		Fail bool   `json:"fail"`
	}
	logs *logSink
}

type logSink struct {
	mu sync.Mutex
	// guarded by mu:
	lines []string
}

func (l *logSink) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *logSink) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

func (p *probe) Access(c *Ctx) error {
	if p.cfg.Fail {
		return errors.New("boom")
	}
	c.Request.Header.Add("X-Access", p.name+"="+p.cfg.Tag)
	if p.cfg.Exit != 0 {
		c.ExitJSON(p.cfg.Exit, "stopped by "+p.name, nil)
	}
	return nil
}

func (p *probe) HeaderFilter(c *Ctx) error {
	c.Response.Header.Add("X-Header", p.name+"="+p.cfg.Tag)
	return nil
}

func (p *probe) Log(c *Ctx) { p.logs.add(p.name + "=" + p.cfg.Tag) }

var (
	_ Accesser       = (*probe)(nil)
	_ HeaderFilterer = (*probe)(nil)
	_ LogHandler     = (*probe)(nil)
)

// authProbe authenticates the consumer named in the X-User header.
type authProbe struct{ env Env }

func (a *authProbe) Access(c *Ctx) error {
	if u := c.Request.Header.Get("X-User"); u != "" {
		if cons := a.env.ConsumerByUsername(u); cons != nil {
			SetConsumer(c, cons, &Credential{ID: "cred-" + u, ConsumerID: cons.ID, Identifier: "cred-" + u})
		}
	}
	return nil
}

func testRegistry(sink *logSink) *Registry {
	r := NewRegistry()
	add := func(name string, prio int) {
		_ = r.Add(Registration{Name: name, Priority: prio, New: func(cfg json.RawMessage, env Env) (Instance, error) {
			p := &probe{name: name, logs: sink}
			if err := json.Unmarshal(cfg, &p.cfg); err != nil {
				return nil, err
			}
			if p.cfg.Tag == "bad" {
				return nil, errors.New("bad tag")
			}
			return p, nil
		}})
	}
	add("alpha", 1000)
	add("beta", 900)
	add("gamma", 900)
	add("delta", 10)
	_ = r.Add(Registration{Name: "auth", Priority: 5000, New: func(cfg json.RawMessage, env Env) (Instance, error) {
		return &authProbe{env: env}, nil
	}})
	return r
}

func testEnv(t *testing.T) *MemEnv {
	t.Helper()
	env, err := NewMemEnv(MemEnvOptions{
		Consumers: []Consumer{{ID: "c1", Username: "alice"}, {ID: "c2", Username: "bob"}, {ID: "c3", Username: "carol"}},
		ConsumerGroups: []ConsumerGroup{
			{ID: "g-gold", Name: "gold"}, {ID: "g-silver", Name: "silver"}, {ID: "g-alpha", Name: "a-team"},
		},
		ConsumerGroupMembers: []ConsumerGroupMember{
			{ConsumerID: "c2", ConsumerGroupID: "g-silver"},
			{ConsumerID: "c2", ConsumerGroupID: "g-gold"},
			{ConsumerID: "c3", ConsumerGroupID: "g-silver"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func cfgTag(tag string) json.RawMessage { return json.RawMessage(`{"tag":"` + tag + `"}`) }

// serve runs one request through a compiled set and returns the response.
func serve(t *testing.T, set *Set, routeID string, req *http.Request, upstream http.HandlerFunc) *http.Response {
	t.Helper()
	if upstream == nil {
		upstream = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen-Access", strings.Join(r.Header.Values("X-Access"), ","))
			w.Header().Set("X-Seen-Consumer", r.Header.Get(HeaderConsumerID))
			_, _ = io.WriteString(w, "upstream")
		}
	}
	h, err := NewHandler(HandlerOptions{Set: set, RouteID: routeID, Upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestScopingPrecedence(t *testing.T) {
	sink := &logSink{}
	reg := testRegistry(sink)
	env := testEnv(t)
	// One "alpha" instance at every scope; the tag names the scope.
	plugins := []PluginEntity{
		{ID: "auth", Name: "auth", Enabled: true, Config: json.RawMessage(`{}`)},
		{ID: "p-global", Name: "alpha", Enabled: true, Config: cfgTag("global")},
		{ID: "p-s1", Name: "alpha", Enabled: true, ServiceID: "s1", Config: cfgTag("service")},
		{ID: "p-r1", Name: "alpha", Enabled: true, RouteID: "r1", Config: cfgTag("route")},
		{ID: "p-r1s1", Name: "alpha", Enabled: true, RouteID: "r1", ServiceID: "s1", Config: cfgTag("route+service")},
		{ID: "p-c1", Name: "alpha", Enabled: true, ConsumerID: "c1", Config: cfgTag("consumer")},
		{ID: "p-c1s1", Name: "alpha", Enabled: true, ConsumerID: "c1", ServiceID: "s1", Config: cfgTag("consumer+service")},
		{ID: "p-c1r2", Name: "alpha", Enabled: true, ConsumerID: "c1", RouteID: "r2", Config: cfgTag("consumer+route")},
		{ID: "p-c1r1s1", Name: "alpha", Enabled: true, ConsumerID: "c1", RouteID: "r1", ServiceID: "s1", Config: cfgTag("consumer+route+service")},
		{ID: "p-gsilver", Name: "alpha", Enabled: true, ConsumerGroupID: "g-silver", Config: cfgTag("group-silver")},
		{ID: "p-ggold", Name: "alpha", Enabled: true, ConsumerGroupID: "g-gold", Config: cfgTag("group-gold")},
		{ID: "p-gsilver-s2", Name: "alpha", Enabled: true, ConsumerGroupID: "g-silver", ServiceID: "s2", Config: cfgTag("group+service")},
		{ID: "p-gsilver-r3", Name: "alpha", Enabled: true, ConsumerGroupID: "g-silver", RouteID: "r3", Config: cfgTag("group+route")},
		{ID: "p-r3s2", Name: "alpha", Enabled: true, RouteID: "r3", ServiceID: "s2", Config: cfgTag("route3+service2")},
		{ID: "p-c3r3", Name: "alpha", Enabled: true, ConsumerID: "c3", RouteID: "r3", Config: cfgTag("carol+route3")},
		{ID: "p-disabled", Name: "alpha", Enabled: false, RouteID: "r4", Config: cfgTag("disabled")},
	}
	set, err := Compile(context.Background(), CompileOptions{
		Plugins: plugins, Env: env, Registry: reg,
		Routes: []RouteRef{{ID: "r1", ServiceID: "s1"}, {ID: "r2", ServiceID: "s1"}, {ID: "r3", ServiceID: "s2"}, {ID: "r4", ServiceID: "s9"}, {ID: "r5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	tests := []struct {
		name, route, user, want string
	}{
		{"route+service beats route and service", "r1", "", "route+service"},
		{"consumer+route+service wins for alice on r1", "r1", "alice", "consumer+route+service"},
		{"consumer+route beats consumer+service", "r2", "alice", "consumer+route"},
		{"service applies to other route of the service", "r2", "", "service"},
		{"group beats service; gold before silver", "r2", "bob", "group-gold"},
		{"group+route beats route+service", "r3", "bob", "group+route"},
		{"route+service without groups", "r3", "alice", "route3+service2"},
		{"consumer+route beats route+service", "r3", "carol", "carol+route3"},
		{"global when nothing else applies", "r4", "", "global"},
		{"disabled plugin ignored", "r4", "bob", "group-gold"},
		{"consumer beats group", "r5", "alice", "consumer"},
		{"group beats global", "r5", "carol", "group-silver"},
		{"no route: global", "", "alice", "consumer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			if tt.user != "" {
				req.Header.Set("X-User", tt.user)
			}
			resp := serve(t, set, tt.route, req, nil)
			if got := resp.Header.Get("X-Seen-Access"); got != "alpha="+tt.want {
				t.Errorf("upstream saw %q, want alpha=%s", got, tt.want)
			}
			if got := sink.take(); len(got) != 1 || got[0] != "alpha="+tt.want {
				t.Errorf("log phase ran %v", got)
			}
		})
	}
}

func TestGroupLevelsInterleave(t *testing.T) {
	sink := &logSink{}
	env := testEnv(t)
	plugins := []PluginEntity{
		{ID: "auth", Name: "auth", Enabled: true, Config: json.RawMessage(`{}`)},
		{ID: "a", Name: "alpha", Enabled: true, ConsumerGroupID: "g-silver", RouteID: "r1", ServiceID: "s1", Config: cfgTag("group+route+service")},
		{ID: "b", Name: "alpha", Enabled: true, ConsumerID: "c3", RouteID: "r1", Config: cfgTag("consumer+route")},
		{ID: "c", Name: "alpha", Enabled: true, RouteID: "r1", ServiceID: "s1", Config: cfgTag("route+service")},
		{ID: "d", Name: "beta", Enabled: true, ConsumerGroupID: "g-silver", RouteID: "r1", Config: cfgTag("group+route")},
		{ID: "e", Name: "beta", Enabled: true, ConsumerID: "c3", Config: cfgTag("consumer")},
	}
	set, err := Compile(context.Background(), CompileOptions{Plugins: plugins, Env: env, Registry: testRegistry(sink), Routes: []RouteRef{{ID: "r1", ServiceID: "s1"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-User", "carol")
	resp := serve(t, set, "r1", req, nil)
	// group+route+service beats consumer+route; group+route beats consumer.
	if got, want := resp.Header.Get("X-Seen-Access"), "alpha=group+route+service,beta=group+route"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPriorityOrderAndShortCircuit(t *testing.T) {
	sink := &logSink{}
	env := testEnv(t)
	plugins := []PluginEntity{
		{ID: "d", Name: "delta", Enabled: true, Config: cfgTag("d")},
		{ID: "g", Name: "gamma", Enabled: true, Config: json.RawMessage(`{"tag":"g","exit":403}`)},
		{ID: "b", Name: "beta", Enabled: true, Config: cfgTag("b")},
		{ID: "a", Name: "alpha", Enabled: true, Config: cfgTag("a")},
	}
	set, err := Compile(context.Background(), CompileOptions{Plugins: plugins, Env: env, Registry: testRegistry(sink)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(set.NoRoute().Plugins(), ","), "alpha,gamma,beta,delta"; got != want {
		t.Fatalf("order %s, want %s (ties by name descending)", got, want)
	}
	called := false
	resp := serve(t, set, "", httptest.NewRequest("GET", "/", nil), func(w http.ResponseWriter, r *http.Request) { called = true })
	body, _ := io.ReadAll(resp.Body)
	if called {
		t.Error("upstream called after exit")
	}
	if resp.StatusCode != 403 || string(body) != `{"message":"stopped by gamma"}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != ContentTypeJSON {
		t.Errorf("content-type %q", got)
	}
	// Every plugin, including those after the exit, runs header and log.
	if got, want := strings.Join(resp.Header.Values("X-Header"), ","), "alpha=a,gamma=g,beta=b,delta=d"; got != want {
		t.Errorf("header phase %s, want %s", got, want)
	}
	if got, want := strings.Join(sink.take(), ","), "alpha=a,gamma=g,beta=b,delta=d"; got != want {
		t.Errorf("log phase %s, want %s", got, want)
	}
}

func TestDynamicOrdering(t *testing.T) {
	sink := &logSink{}
	env := testEnv(t)
	tests := []struct {
		name    string
		plugins []PluginEntity
		want    string
		wantErr string
	}{
		{
			name: "delta before alpha",
			plugins: []PluginEntity{
				{ID: "a", Name: "alpha", Enabled: true, Config: cfgTag("a")},
				{ID: "b", Name: "beta", Enabled: true, Config: cfgTag("b")},
				{ID: "d", Name: "delta", Enabled: true, Config: cfgTag("d"), Ordering: &Ordering{Before: map[string][]string{"access": {"alpha"}}}},
			},
			want: "delta,alpha,beta",
		},
		{
			name: "alpha after beta, unknown names ignored, other phases ignored",
			plugins: []PluginEntity{
				{ID: "a", Name: "alpha", Enabled: true, Config: cfgTag("a"), Ordering: &Ordering{After: map[string][]string{"access": {"beta", "nope"}, "log": {"delta"}}}},
				{ID: "b", Name: "beta", Enabled: true, Config: cfgTag("b")},
				{ID: "d", Name: "delta", Enabled: true, Config: cfgTag("d")},
			},
			want: "beta,alpha,delta",
		},
		{
			name: "cycle",
			plugins: []PluginEntity{
				{ID: "a", Name: "alpha", Enabled: true, Config: cfgTag("a"), Ordering: &Ordering{After: map[string][]string{"access": {"beta"}}}},
				{ID: "b", Name: "beta", Enabled: true, Config: cfgTag("b"), Ordering: &Ordering{After: map[string][]string{"access": {"alpha"}}}},
			},
			wantErr: "dynamic ordering has a cycle involving plugin",
		},
		{
			name: "consumer scoped ordering rejected",
			plugins: []PluginEntity{
				{ID: "a", Name: "alpha", Enabled: true, ConsumerID: "c1", Config: cfgTag("a"), Ordering: &Ordering{After: map[string][]string{"access": {"beta"}}}},
			},
			wantErr: "dynamic ordering is not supported for consumer-scoped plugins",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Compile(context.Background(), CompileOptions{Plugins: tt.plugins, Env: env, Registry: testRegistry(sink)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp := serve(t, set, "", httptest.NewRequest("GET", "/", nil), nil)
			var got []string
			for _, v := range strings.Split(resp.Header.Get("X-Seen-Access"), ",") {
				got = append(got, strings.SplitN(v, "=", 2)[0])
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("access order %v, want %s", got, tt.want)
			}
			// Header phase keeps priority order.
			if h := resp.Header.Values("X-Header"); !strings.HasPrefix(h[0], "alpha") {
				t.Errorf("header phase not in priority order: %v", h)
			}
			sink.take()
		})
	}
}

func TestCompileErrors(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		name    string
		plugins []PluginEntity
		want    string
	}{
		{"unknown plugin", []PluginEntity{{ID: "x", Name: "nope", Enabled: true}}, `plugin nope (x): plugin "nope" is not available`},
		{"factory error", []PluginEntity{{ID: "x", Name: "alpha", Enabled: true, Config: cfgTag("bad")}}, "plugin alpha (x): bad tag"},
		{"duplicate scope", []PluginEntity{
			{ID: "x", Name: "alpha", Enabled: true, RouteID: "r", Config: cfgTag("1")},
			{ID: "y", Name: "alpha", Enabled: true, RouteID: "r", Config: cfgTag("2")},
		}, "plugin alpha (y): another plugin of this name has the same scope"},
		{"consumer and group", []PluginEntity{{ID: "x", Name: "alpha", Enabled: true, ConsumerID: "c", ConsumerGroupID: "g", Config: cfgTag("1")}}, "both a consumer and a consumer group"},
		{"unresolvable vault", []PluginEntity{{ID: "x", Name: "alpha", Enabled: true, Config: json.RawMessage(`{"tag":"{vault://env/gantry-test-missing}"}`)}}, "environment variable GANTRY_TEST_MISSING is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(context.Background(), CompileOptions{Plugins: tt.plugins, Env: env, Registry: testRegistry(&logSink{})})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			var ee *EntityError
			if !errors.As(err, &ee) {
				t.Errorf("error is not an *EntityError: %T", err)
			}
		})
	}
}

func TestAccessErrorIs500(t *testing.T) {
	sink := &logSink{}
	set, err := Compile(context.Background(), CompileOptions{
		Plugins: []PluginEntity{{ID: "a", Name: "alpha", Enabled: true, Config: json.RawMessage(`{"tag":"x","fail":true}`)}},
		Env:     testEnv(t), Registry: testRegistry(sink),
	})
	if err != nil {
		t.Fatal(err)
	}
	resp := serve(t, set, "", httptest.NewRequest("GET", "/", nil), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || !strings.HasPrefix(string(body), "{\n  \"message\":\"An unexpected error occurred\",\n  \"request_id\":\"") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestVaultResolve(t *testing.T) {
	vars := map[string]string{
		"SECRET_TOKEN":          "s3cr3t",
		"SECRET_TOKEN_PREVIOUS": "old",
		"SSL_CERT":              "pem",
		"CREDS":                 `{"user":"u","port":5432}`,
		"OTHER_CERT":            "other",
	}
	r, err := NewVaultResolver(VaultResolverOptions{
		Vaults:    []VaultEntity{{ID: "v1", Name: "env", Prefix: "my-env", EnvPrefix: "SSL_"}},
		LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ ref, want, err string }{
		{"{vault://env/secret-token}", "s3cr3t", ""},
		{"{vault://env/secret-token#2}", "old", ""},
		{"{vault://my-env/cert}", "pem", ""},
		{"{vault://my-env/cert?prefix=other_}", "other", ""},
		{"{vault://env/creds/user}", "u", ""},
		{"{vault://env/creds/port}", "5432", ""},
		{"{vault://env/creds/nope}", "", `key "nope" not found`},
		{"{vault://env/missing}", "", "environment variable MISSING is not set"},
		{"{vault://aws/x}", "", `vault "aws" is not configured`},
		{"{vault://env}", "", "missing vault name or resource"},
		{"vault://env/x", "", "not a vault reference"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := r.Resolve(tt.ref)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := NewVaultResolver(VaultResolverOptions{Vaults: []VaultEntity{{Name: "env", Prefix: "p", EnvPrefix: "1bad"}}, LookupEnv: func(string) (string, bool) { return "", false }}); err == nil {
		t.Error("invalid env prefix accepted")
	}
}

func TestVaultInPluginConfig(t *testing.T) {
	t.Setenv("GANTRY_PLUGIN_TEST_TAG", "from-env")
	sink := &logSink{}
	set, err := Compile(context.Background(), CompileOptions{
		Plugins: []PluginEntity{{ID: "a", Name: "alpha", Enabled: true, Config: json.RawMessage(`{"tag":"{vault://env/gantry-plugin-test-tag}"}`)}},
		Env:     testEnv(t), Registry: testRegistry(sink),
	})
	if err != nil {
		t.Fatal(err)
	}
	resp := serve(t, set, "", httptest.NewRequest("GET", "/", nil), nil)
	if got := resp.Header.Get("X-Seen-Access"); got != "alpha=from-env" {
		t.Errorf("got %q", got)
	}
}

func TestMemEnvChecks(t *testing.T) {
	tests := []struct {
		name string
		opts MemEnvOptions
		want string
	}{
		{"dup username", MemEnvOptions{Consumers: []Consumer{{ID: "1", Username: "a"}, {ID: "2", Username: "a"}}}, "duplicate username"},
		{"dangling key", MemEnvOptions{KeyAuths: []KeyAuthCredential{{ID: "k", ConsumerID: "x", Key: "k"}}}, `consumer "x" does not exist`},
		{"dup key", MemEnvOptions{Consumers: []Consumer{{ID: "1"}}, KeyAuths: []KeyAuthCredential{{ID: "k1", ConsumerID: "1", Key: "k"}, {ID: "k2", ConsumerID: "1", Key: "k"}}}, "duplicate key"},
		{"missing group", MemEnvOptions{Consumers: []Consumer{{ID: "1"}}, ConsumerGroupMembers: []ConsumerGroupMember{{ConsumerID: "1", ConsumerGroupID: "g"}}}, `group "g" does not exist`},
		{"dup kid in set", MemEnvOptions{Keys: []Key{{ID: "k1", Kid: "a", SetID: "s"}, {ID: "k2", Kid: "a", SetID: "s"}}}, `kid "a" is already used`},
		{"dup kid without set", MemEnvOptions{Keys: []Key{{ID: "k1", Kid: "a"}, {ID: "k2", Kid: "a"}}}, `kid "a" is already used`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMemEnv(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

type closer struct{ closed *int }

func (c closer) Close() error { *c.closed++; return nil }

func TestStateRegistryPrune(t *testing.T) {
	s := NewStateRegistry()
	closed := 0
	for _, k := range []string{"a", "b"} {
		if _, err := s.LoadOrCreate(k, func() (any, error) { return closer{&closed}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	again, _ := s.LoadOrCreate("a", func() (any, error) { t.Fatal("recreated"); return nil, nil })
	if _, ok := again.(closer); !ok {
		t.Fatal("lost state")
	}
	if _, err := s.LoadOrCreate("c", func() (any, error) { return nil, errors.New("no") }); err == nil {
		t.Fatal("create error swallowed")
	}
	if err := s.Prune(func(k string) bool { return k == "a" }); err != nil {
		t.Fatal(err)
	}
	if closed != 1 || strings.Join(s.Keys(), ",") != "a" {
		t.Errorf("closed=%d keys=%v", closed, s.Keys())
	}
}

func TestSetConsumerHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(HeaderConsumerCustomID, "spoofed")
	r.Header.Set(HeaderAnonymousConsumer, "true")
	c := AcquireCtx(r)
	defer ReleaseCtx(c)
	SetConsumer(c, &Consumer{ID: "id1", Username: "u"}, &Credential{ID: "k", Identifier: "k"})
	want := map[string]string{HeaderConsumerID: "id1", HeaderConsumerUsername: "u", HeaderCredentialIdentifier: "k", HeaderConsumerCustomID: "", HeaderAnonymousConsumer: ""}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	SetConsumer(c, &Consumer{ID: "anon", CustomID: "cid"}, nil)
	want = map[string]string{HeaderConsumerID: "anon", HeaderConsumerUsername: "", HeaderCredentialIdentifier: "", HeaderConsumerCustomID: "cid", HeaderAnonymousConsumer: "true"}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("anonymous: %s = %q, want %q", k, got, v)
		}
	}
}

func TestErrorRenderer(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/plain")
	c := AcquireCtx(r)
	defer ReleaseCtx(c)
	c.SetRequestID("abc")
	c.RenderError = func(dst []byte, r *http.Request, msg, id string) (string, []byte) {
		return "text/plain; charset=utf-8", append(dst, msg+"\nrequest_id: "+id+"\n"...)
	}
	c.Error(403, "", http.Header{"X-A": {"1"}})
	if c.Response.Status != 403 || string(c.Response.Body) != "Forbidden\nrequest_id: abc\n" ||
		c.Response.Header.Get("Content-Type") != "text/plain; charset=utf-8" || c.Response.Header.Get("X-A") != "1" {
		t.Errorf("got %d %q %v", c.Response.Status, c.Response.Body, c.Response.Header)
	}
	c.RenderError = nil
	c.Error(401, `say "hi"`, nil)
	if want := "{\n  \"message\":\"say \\\"hi\\\"\",\n  \"request_id\":\"abc\"\n}"; string(c.Response.Body) != want {
		t.Errorf("json body %q, want %q", c.Response.Body, want)
	}
}

func TestKeysByKid(t *testing.T) {
	env, err := NewMemEnv(MemEnvOptions{Keys: []Key{
		{ID: "k1", Kid: "a", SetID: "s1", SetName: "one"},
		{ID: "k2", Kid: "b"},
		{ID: "k3", Kid: "a"},
		{ID: "k4", Kid: "a", SetID: "s2", SetName: "two"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kid  string
		want []string
	}{
		{"a", []string{"k1", "k3", "k4"}},
		{"b", []string{"k2"}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			var got []string
			for _, k := range env.KeysByKid(tt.kid) {
				got = append(got, k.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// nameProbe records the route and service names the chain hands plugins.
type nameProbe struct{ sink *logSink }

func (n nameProbe) Log(c *Ctx) {
	n.sink.add(c.RouteID + "|" + c.RouteName + "|" + c.ServiceID + "|" + c.ServiceName)
}

func TestRouteAndServiceNames(t *testing.T) {
	sink := &logSink{}
	reg := NewRegistry()
	_ = reg.Add(Registration{Name: "names", Priority: 1, New: func(json.RawMessage, Env) (Instance, error) { return nameProbe{sink}, nil }})
	set, err := Compile(context.Background(), CompileOptions{
		Plugins: []PluginEntity{{ID: "p", Name: "names", Enabled: true, Config: json.RawMessage(`{}`)}},
		Routes: []RouteRef{
			{ID: "r1", ServiceID: "s1", Name: "orders", ServiceName: "orders-svc"},
			{ID: "r2", ServiceID: "s1", ServiceName: "orders-svc"},
		},
		Env: testEnv(t), Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ route, want string }{
		{"r1", "r1|orders|s1|orders-svc"},
		{"r2", "r2|r2|s1|orders-svc"}, // a route without a name is named by its id
		{"", "|||"},                   // no route matched: nothing to name
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			serve(t, set, tt.route, httptest.NewRequest("GET", "/", nil), nil)
			if got := sink.take(); len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %v, want %q", got, tt.want)
			}
		})
	}
}
