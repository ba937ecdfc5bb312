package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is a small in-memory stand-in for the control plane's HTTP API.
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex // guards groups, calls, configs
	groups []Group
	calls  []string
	// configs holds the last imported body per group id.
	configs map[string]string
}

func newFakeAPI(t *testing.T, groups ...Group) (*fakeAPI, *Client) {
	t.Helper()
	f := &fakeAPI{t: t, groups: groups, configs: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Options{Server: srv.URL, Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "detail": detail})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer secret" {
		writeProblem(w, 401, "The token is invalid, expired or revoked.")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/runtime-groups"), "/")
	switch {
	case r.URL.Path == "/v2/runtime-groups" && r.Method == http.MethodGet:
		var match []Group
		for _, g := range f.groups {
			if name := r.URL.Query().Get("filter[name][eq]"); name == "" || g.Name == name {
				match = append(match, g)
			}
		}
		size, _ := strconv.Atoi(r.URL.Query().Get("page[size]"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page[number]"))
		lo := min((page-1)*size, len(match))
		hi := min(lo+size, len(match))
		writeJSON(w, 200, map[string]any{"data": match[lo:hi], "meta": map[string]any{"page": map[string]int{"number": page, "size": size, "total": len(match)}}})
	case r.URL.Path == "/v2/runtime-groups" && r.Method == http.MethodPost:
		var in struct {
			Name        string            `json:"name"`
			Description string            `json:"description"`
			Labels      map[string]string `json:"labels"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		g := Group{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", len(f.groups)+1), Name: in.Name, Description: in.Description, Labels: in.Labels}
		f.groups = append(f.groups, g)
		writeJSON(w, 201, g)
	case len(parts) >= 2:
		var g *Group
		for i := range f.groups {
			if f.groups[i].ID == parts[1] {
				g = &f.groups[i]
			}
		}
		if g == nil {
			writeProblem(w, 404, fmt.Sprintf("No runtime group with id %q.", parts[1]))
			return
		}
		switch {
		case len(parts) == 2 && r.Method == http.MethodGet:
			writeJSON(w, 200, g)
		case len(parts) == 2 && r.Method == http.MethodPatch:
			var in struct {
				Description *string            `json:"description"`
				Labels      map[string]*string `json:"labels"`
			}
			_ = json.NewDecoder(r.Body).Decode(&in)
			if in.Description != nil {
				g.Description = *in.Description
			}
			writeJSON(w, 200, g)
		case parts[2] == "declarative-config" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"_format_version": "3.0", "services": []any{map[string]any{"name": "svc-" + g.Name}}})
		case parts[2] == "declarative-config" && r.Method == http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			f.configs[g.ID] = r.Header.Get("Content-Type") + " " + string(b)
			writeJSON(w, 200, map[string]any{"revision": 7, "summary": map[string]any{}})
		case parts[2] == "dp-client-certificates" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"items": []Certificate{{ID: "c1", Title: "edge", Cert: "PEM"}}})
		case parts[2] == "dp-client-certificates" && r.Method == http.MethodPost:
			writeJSON(w, 201, map[string]any{"item": Certificate{ID: "c2"}})
		case parts[2] == "nodes":
			// Two pages: the cursor leads from the first to the second.
			if r.URL.Query().Get("page[after]") == "" {
				writeJSON(w, 200, map[string]any{"items": []Node{{ID: "n1"}}, "page": map[string]any{"next": "n1"}})
			} else {
				writeJSON(w, 200, map[string]any{"items": []Node{{ID: "n2"}}, "page": map[string]any{"next": nil}})
			}
		default:
			writeProblem(w, 404, "No API route matches "+r.Method+" "+r.URL.Path+".")
		}
	default:
		writeProblem(w, 404, "No API route matches "+r.Method+" "+r.URL.Path+".")
	}
}

func groupsNamed(names ...string) []Group {
	gs := make([]Group, len(names))
	for i, n := range names {
		gs[i] = Group{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", 1000+i), Name: n, IsDefault: n == "default"}
	}
	return gs
}

func TestListGroupsReadsEveryPage(t *testing.T) {
	names := make([]string, 0, 250)
	for i := range 250 {
		names = append(names, fmt.Sprintf("g%03d", i))
	}
	f, c := newFakeAPI(t, groupsNamed(names...)...)
	gs, err := c.ListGroups(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 250 || gs[249].Name != "g249" {
		t.Fatalf("got %d groups", len(gs))
	}
	if len(f.calls) != 3 {
		t.Fatalf("calls = %v, want 3 pages", f.calls)
	}
}

func TestResolveGroup(t *testing.T) {
	gs := groupsNamed("default", "payments")
	_, c := newFakeAPI(t, gs...)
	ctx := context.Background()
	for _, ref := range []string{"payments", gs[1].ID} {
		g, err := c.ResolveGroup(ctx, ref)
		if err != nil || g.Name != "payments" {
			t.Fatalf("ResolveGroup(%q) = %v, %v", ref, g.Name, err)
		}
	}
	_, err := c.ResolveGroup(ctx, "nope")
	if !IsNotFound(err) || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "gantry groups list") {
		t.Fatalf("err = %v, want a 404 naming the group and what to do", err)
	}
}

func TestProblemErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"status":400,"detail":"The runtime group is not valid.","invalid_parameters":[{"field":"name","rule":"required","reason":"is a required field"}]}`)
		case "/kong":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"code":14,"name":"invalid declarative configuration","message":"declarative config is invalid",
				"flattened_errors":[{"entity_type":"route","entity_name":"r1","errors":[{"field":"service","message":"unknown service 'nope'","type":"field"}]},
				{"entity_type":"plugin","entity_id":"p1","errors":[{"field":"config.minute","message":"expected a number"},{"message":"at least one limit"}]}]}`)
		case "/500":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"status":500,"detail":"An unexpected error occurred.","instance":"gantry:trace:abc123"}`)
		case "/text":
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "bad gateway")
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"status":401,"detail":"The token is invalid, expired or revoked."}`)
		}
	}))
	defer srv.Close()
	c, err := New(Options{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path   string
		status int
		want   []string
	}{
		{"/bad", 400, []string{"The runtime group is not valid.", "\n  name: is a required field"}},
		{"/kong", 400, []string{"declarative config is invalid", "\n  route r1: service: unknown service 'nope'", "\n  plugin p1: config.minute: expected a number", "\n  plugin p1: at least one limit"}},
		{"/text", 502, []string{"bad gateway", "its log tells why."}},
		{"/500", 500, []string{"An unexpected error occurred.", "request_id=abc123"}},
		{"/401", 401, []string{"The token is invalid", "gantry login"}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			_, err := c.Do(context.Background(), Request{Method: http.MethodGet, Path: tc.path})
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("err = %v, want an APIError %d", err, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err.Error(), w)
				}
			}
		})
	}
}

func TestConnectionError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Options{Server: url})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListGroups(context.Background(), nil)
	if !IsConnection(err) || !strings.Contains(err.Error(), "GANTRY_SERVER") {
		t.Fatalf("err = %v, want a connection error that says how to point the CLI elsewhere", err)
	}
}

func TestNewChecksServer(t *testing.T) {
	for _, s := range []string{"", "ftp://x", "http://"} {
		if _, err := New(Options{Server: s}); err == nil {
			t.Errorf("New(%q) accepted", s)
		}
	}
	c, err := New(Options{Server: "localhost:8080/"})
	if err != nil || c.Server() != "http://localhost:8080" {
		t.Fatalf("server = %v, %v", c, err)
	}
}

func TestListNodesFollowsCursor(t *testing.T) {
	gs := groupsNamed("default")
	_, c := newFakeAPI(t, gs...)
	ns, err := c.ListNodes(context.Background(), gs[0].ID)
	if err != nil || len(ns) != 2 || ns[1].ID != "n2" {
		t.Fatalf("nodes = %v, %v", ns, err)
	}
}

func TestPlanDecodesBothDiffShapes(t *testing.T) {
	for _, body := range []string{
		`{"dry_run":true,"diff":{"from":1,"to":2,"entities":[{"entity_type":"services","id":"s","name":"a","change":"added"}]}}`,
		`{"dry_run":true,"diff":[{"entity_type":"services","id":"s","name":"a","change":"added"}]}`,
	} {
		var p Plan
		if err := json.Unmarshal([]byte(body), &p); err != nil || p.Changes() != 1 || p.Diff.Entities[0].Name != "a" {
			t.Fatalf("%s: %+v %v", body, p, err)
		}
	}
}

func TestContentType(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"kong.json", "", "application/json"},
		{"kong.YML", "", "application/yaml"},
		{"-", "  {\"_format_version\":\"3.0\"}", "application/json"},
		{"-", "_format_version: \"3.0\"", "application/yaml"},
	}
	for _, tc := range cases {
		if got := ContentType(tc.name, []byte(tc.body)); got != tc.want {
			t.Errorf("ContentType(%q) = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPrint(t *testing.T) {
	v := []map[string]any{{"name": "a", "version": "3.0", "n": 1}}
	table := func() Table {
		return Table{Header: []string{"NAME", "N"}, Rows: [][]string{{"alpha", "1"}, {"b\tx", "22"}}}
	}
	cases := []struct{ format, want string }{
		{"", "NAME    N\nalpha   1\nb x     22\n"},
		{"json", "[\n  {\n    \"n\": 1,\n    \"name\": \"a\",\n    \"version\": \"3.0\"\n  }\n]\n"},
		// The string "3.0" stays a string; keys keep their JSON order.
		{"yaml", "- n: 1\n  name: a\n  version: \"3.0\"\n"},
	}
	for _, tc := range cases {
		var b bytes.Buffer
		if err := Print(&b, tc.format, v, table); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("-o %q:\n%s\nwant:\n%s", tc.format, b.String(), tc.want)
		}
	}
	if err := CheckOutput("xml"); err == nil {
		t.Error("CheckOutput accepted xml")
	}
}

func TestBackupRoundTrip(t *testing.T) {
	gs := groupsNamed("default", "payments")
	gs[1].Labels = map[string]string{"team": "billing"}
	_, c := newFakeAPI(t, gs...)
	var seen []string
	b, err := c.BackupGroups(context.Background(), gs, func(done, total int, group string) { seen = append(seen, fmt.Sprintf("%d/%d %s", done, total, group)) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ";") != "0/2 default;1/2 payments;2/2 " {
		t.Errorf("progress = %v", seen)
	}
	for _, format := range []string{FormatYAML, FormatJSON} {
		var buf bytes.Buffer
		if err := EncodeBackup(&buf, b, format); err != nil {
			t.Fatal(err)
		}
		got, err := ReadBackup(&buf)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(b)
		z, _ := json.Marshal(got)
		if !bytes.Equal(a, z) {
			t.Errorf("%s round trip:\n%s\n%s", format, a, z)
		}
		if got.Groups[1].Labels["team"] != "billing" || got.Groups[1].Config["services"] == nil || len(got.Groups[1].Certificates) != 1 {
			t.Errorf("%s: group = %+v", format, got.Groups[1])
		}
	}
	for body, want := range map[string]string{
		"groups: []\n":                              "no gantry_backup_format",
		"gantry_backup_format: \"9\"\n":             `format "9"`,
		"gantry_backup_format: \"1\"\ngroups: [{}]": "has no name",
		"{": "not valid YAML",
	} {
		if _, err := ReadBackup(strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadBackup(%q) = %v, want %q", body, err, want)
		}
	}
}

func TestRestore(t *testing.T) {
	backup := &Backup{FormatVersion: BackupFormatVersion, Groups: []BackupGroup{
		{Name: "default", IsDefault: true, Description: "d", Config: map[string]any{"_format_version": "3.0"}},
		{Name: "payments", Labels: map[string]string{"team": "billing"}, Certificates: []BackupCertificate{{Title: "t", Cert: "PEM"}}, Config: map[string]any{"_format_version": "3.0", "services": []any{}}},
	}}
	t.Run("empty control plane", func(t *testing.T) {
		f, c := newFakeAPI(t, groupsNamed("default")...)
		var log bytes.Buffer
		if err := c.Restore(context.Background(), backup, RestoreOptions{Log: &log}); err != nil {
			t.Fatal(err)
		}
		if len(f.groups) != 2 || f.groups[1].Name != "payments" || f.groups[1].Labels["team"] != "billing" || f.groups[0].Description != "d" {
			t.Fatalf("groups = %+v", f.groups)
		}
		if got := f.configs[f.groups[1].ID]; !strings.HasPrefix(got, "application/json {") || !strings.Contains(got, `"services":[]`) {
			t.Errorf("imported %q", got)
		}
		if _, ok := f.configs[f.groups[0].ID]; !ok {
			t.Error("the default group's configuration was not imported")
		}
		if !strings.Contains(log.String(), "restored group payments") {
			t.Errorf("log = %s", log.String())
		}
	})
	t.Run("name taken", func(t *testing.T) {
		f, c := newFakeAPI(t, groupsNamed("default", "payments")...)
		err := c.Restore(context.Background(), backup, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), "payments") {
			t.Fatalf("err = %v", err)
		}
		for _, call := range f.calls {
			if !strings.HasPrefix(call, "GET ") {
				t.Errorf("a refused restore changed something: %s", call)
			}
		}
	})
	t.Run("one group into a new name", func(t *testing.T) {
		f, c := newFakeAPI(t, groupsNamed("default", "payments")...)
		g, res, err := c.RestoreGroup(context.Background(), backup.Groups[1], "payments-copy", nil)
		if err != nil || g.Name != "payments-copy" || res.Revision != 7 || len(f.groups) != 3 {
			t.Fatalf("RestoreGroup = %+v %+v %v", g, res, err)
		}
	})
}

func TestLoginStore(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	if l, err := LoadLogin(); err != nil || l != (Login{}) {
		t.Fatalf("LoadLogin without a file = %+v, %v", l, err)
	}
	path, err := SaveLogin(Login{Server: "http://cp:8080", Token: "gpat_x"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || filepath.Base(filepath.Dir(path)) != "gantry" {
		t.Fatalf("stored %s: %v %v", path, fi.Mode(), err)
	}
	if l, err := LoadLogin(); err != nil || l.Token != "gpat_x" || l.Server != "http://cp:8080" {
		t.Fatalf("LoadLogin = %+v, %v", l, err)
	}
	if _, removed, err := RemoveLogin(); err != nil || !removed {
		t.Fatalf("RemoveLogin = %v, %v", removed, err)
	}
	if _, removed, err := RemoveLogin(); err != nil || removed {
		t.Fatalf("second RemoveLogin = %v, %v", removed, err)
	}
}

func TestLineProgress(t *testing.T) {
	var b bytes.Buffer
	p := LineProgress(&b, "backup")
	p(0, 4, "alpha")
	p(2, 4, "gamma")
	p(4, 4, "")
	want := "\r\033[Kbackup [..............................] 0/4 groups: alpha" +
		"\r\033[Kbackup [###############...............] 2/4 groups: gamma" +
		"\r\033[Kbackup [##############################] 4/4 groups\n"
	if b.String() != want {
		t.Fatalf("progress = %q, want %q", b.String(), want)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if TerminalProgress(f, "backup") != nil {
		t.Fatal("a progress on a file that is not a terminal")
	}
}
