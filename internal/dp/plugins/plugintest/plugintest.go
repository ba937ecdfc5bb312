// Package plugintest runs plugins through the plugin harness for tests:
// compile a configuration, send requests, and read what the upstream saw.
package plugintest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Seen is what the echo upstream received, returned as its JSON body.
type Seen struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  string              `json:"query"`
	Header map[string][]string `json:"header"`
	Body   string              `json:"body"`
}

// Echo is an upstream that answers 200 with the request it saw as JSON.
func Echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header, Body: string(b)})
}

// Setup is a compiled configuration behind the harness.
type Setup struct {
	Set     *plugin.Set
	Handler http.Handler
}

// Options describe a test configuration.
type Options struct {
	Env      plugin.MemEnvOptions
	Plugins  []plugin.PluginEntity
	Routes   []plugin.RouteRef
	RouteID  string
	Upstream http.Handler
	// URICaptures, when set, gives each request regex captures.
	URICaptures func(r *http.Request) plugin.URICaptures
}

// New compiles opts and fails the test on error. Upstream defaults to
// [Echo]; the Set is closed when the test ends.
func New(t testing.TB, opts Options) *Setup {
	t.Helper()
	set, err := Compile(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	up := opts.Upstream
	if up == nil {
		up = http.HandlerFunc(Echo)
	}
	h, err := plugin.NewHandler(plugin.HandlerOptions{Set: set, RouteID: opts.RouteID, Upstream: up, URICaptures: opts.URICaptures})
	if err != nil {
		t.Fatal(err)
	}
	return &Setup{Set: set, Handler: h}
}

// Compile compiles opts and returns the error instead of failing.
func Compile(opts Options) (*plugin.Set, error) {
	env, err := plugin.NewMemEnv(opts.Env)
	if err != nil {
		return nil, err
	}
	for i := range opts.Plugins {
		opts.Plugins[i].Enabled = true
		if opts.Plugins[i].ID == "" {
			opts.Plugins[i].ID = opts.Plugins[i].Name + "-id"
		}
	}
	return plugin.Compile(context.Background(), plugin.CompileOptions{Plugins: opts.Plugins, Routes: opts.Routes, Env: env})
}

// Result is a finished response.
type Result struct {
	Status int
	Header http.Header
	Body   string
}

// Seen decodes the echo upstream's body; ok is false when the response did
// not come from the echo upstream.
func (r Result) Seen() (Seen, bool) {
	var s Seen
	err := json.Unmarshal([]byte(r.Body), &s)
	return s, err == nil && s.Method != ""
}

// Do sends req through the setup.
func (s *Setup) Do(req *http.Request) Result {
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return Result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// Config marshals v as a plugin configuration.
func Config(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// ErrorBody returns the kong.response.error body prefix for message (the
// request id that follows varies).
func ErrorBody(message string) string {
	b, _ := json.Marshal(message)
	return "{\n  \"message\":" + string(b) + ",\n  \"request_id\":\""
}
