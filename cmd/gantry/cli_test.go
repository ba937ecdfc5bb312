package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const fakeGroupID = "11111111-2222-3333-4444-555555555555"

// fakeDeclarativeAPI answers the calls of the config and backup verbs for one group, "default":
// a dry run of a body containing "invalid" fails with Kong's flattened errors, one containing
// "same" changes nothing, any other adds a service.
type fakeDeclarativeAPI struct {
	mu      sync.Mutex // guards applied
	applied []string
}

func (f *fakeDeclarativeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	group := map[string]any{"id": fakeGroupID, "name": "default", "is_default": true, "labels": map[string]string{"env": "test"}}
	jsonAnswer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	base := "/v2/runtime-groups/" + fakeGroupID
	switch {
	case r.URL.Path == "/v2/runtime-groups":
		jsonAnswer(200, map[string]any{"data": []any{group}, "meta": map[string]any{"page": map[string]int{"number": 1, "size": 100, "total": 1}}})
	case r.URL.Path == base:
		jsonAnswer(200, group)
	case r.URL.Path == base+"/dp-client-certificates":
		jsonAnswer(200, map[string]any{"items": []any{}})
	case r.URL.Path == base+"/declarative-config" && r.Method == http.MethodGet:
		if r.Header.Get("Accept") == "application/yaml" {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = io.WriteString(w, "_format_version: \"3.0\"\nservices:\n- name: echo\n")
			return
		}
		jsonAnswer(200, map[string]any{"_format_version": "3.0", "services": []any{map[string]any{"name": "echo"}}})
	case r.URL.Path == base+"/declarative-config" && r.Method == http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(body), "invalid"):
			jsonAnswer(400, map[string]any{"code": 14, "name": "invalid declarative configuration", "message": "declarative config is invalid",
				"flattened_errors": []any{
					map[string]any{"entity_type": "route", "entity_name": "r1", "errors": []any{map[string]any{"field": "service", "message": "unknown service 'nope'"}}},
					map[string]any{"entity_type": "service", "entity_name": "dup", "errors": []any{map[string]any{"field": "name", "message": "name 'dup' is used twice"}}},
				}})
		case r.URL.Query().Get("dry_run") == "true" && strings.Contains(string(body), "same"):
			jsonAnswer(200, map[string]any{"dry_run": true, "diff": map[string]any{"entities": []any{}}})
		case r.URL.Query().Get("dry_run") == "true":
			jsonAnswer(200, map[string]any{"dry_run": true, "diff": map[string]any{"entities": []any{
				map[string]any{"entity_type": "services", "id": "s1", "name": "new-svc", "change": "added"},
				map[string]any{"entity_type": "routes", "id": "r1", "name": "r", "change": "changed", "fields": []string{"paths"}},
			}}})
		default:
			f.mu.Lock()
			f.applied = append(f.applied, r.Header.Get("Content-Type"))
			f.mu.Unlock()
			jsonAnswer(200, map[string]any{"revision": 5, "summary": map[string]any{}})
		}
	default:
		http.NotFound(w, r)
	}
}

// execute runs the gantry command line with args and stdin against the server.
func execute(t *testing.T, server, stdin string, args ...string) (string, error) {
	t.Helper()
	t.Setenv("GANTRY_SERVER", server)
	t.Setenv("GANTRY_TOKEN", "gpat_test")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestConfigVerbs(t *testing.T) {
	fake := &fakeDeclarativeAPI{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	changed := write("changed.yaml", "_format_version: \"3.0\"\nservices:\n- name: new-svc\n")
	same := write("same.json", `{"_format_version":"3.0","_comment":"same"}`)
	invalid := write("invalid.yaml", "_format_version: \"3.0\"\n# invalid\n")

	exitCode := func(err error) int {
		var ce *exitCodeError
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ce):
			return ce.code
		case errors.As(err, &ue):
			return exitUsage
		}
		return exitFailure
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"diff with changes", "", []string{"config", "diff", "--group", "default", changed}, 3, []string{"1 to add, 1 to change, 0 to remove", "+ added     services   new-svc", "paths"}},
		{"diff without changes", "", []string{"config", "diff", "--group", "default", same}, 0, []string{"No changes"}},
		{"diff as json", "", []string{"config", "diff", "--group", fakeGroupID, changed, "-o", "json"}, 3, []string{`"entity_type": "services"`}},
		{"validate invalid", "", []string{"config", "validate", "--group", "default", invalid}, 1, []string{"route r1: service: unknown service 'nope'", "service dup: name: name 'dup' is used twice"}},
		{"validate valid", "", []string{"config", "validate", "--group", "default", changed}, 0, []string{"is valid for group default"}},
		{"sync answered n", "n\n", []string{"config", "sync", "--group", "default", changed}, 1, []string{"aborted: nothing changed"}},
		{"sync answered y", "y\n", []string{"config", "sync", "--group", "default", changed}, 0, []string{"Applied to group default: revision 5."}},
		{"sync of a missing file", "", []string{"config", "sync", "--group", "default", "--yes", same + "x"}, 1, []string{"no such file"}},
		{"sync from stdin needs --yes", "services: []\n", []string{"config", "sync", "--group", "default"}, 2, []string{"pass --yes"}},
		{"sync from stdin --yes", "services: []\n", []string{"config", "sync", "--group", "default", "-y"}, 0, []string{"revision 5"}},
		{"sync without changes", "", []string{"config", "sync", "--group", "default", same}, 0, []string{"nothing to do"}},
		{"sync invalid", "", []string{"config", "sync", "--group", "default", "--yes", invalid}, 1, []string{"unknown service 'nope'"}},
		{"dump yaml", "", []string{"config", "dump", "--group", "default"}, 0, []string{"_format_version: \"3.0\"\nservices:\n- name: echo"}},
		{"dump json", "", []string{"config", "dump", "--group", "default", "-o", "json"}, 0, []string{`"_format_version":"3.0"`}},
		{"dump table", "", []string{"config", "dump", "--group", "default", "-o", "table"}, 2, []string{"use yaml or json"}},
		{"no group", "", []string{"config", "diff", changed}, 2, []string{"--group is required"}},
		{"two files", "", []string{"config", "diff", "--group", "default", changed, same}, 2, []string{"accepts at most 1 arg"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, srv.URL, tc.stdin, tc.args...)
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", got, err, tc.code, out)
			}
			all := out
			if err != nil {
				all += err.Error()
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not contain %q:\n%s", w, all)
				}
			}
		})
	}
	if strings.Join(fake.applied, ",") != "application/yaml,application/yaml" {
		t.Errorf("applied imports: %v, want the two confirmed YAML syncs", fake.applied)
	}
}

func TestBackupVerb(t *testing.T) {
	srv := httptest.NewServer(&fakeDeclarativeAPI{})
	defer srv.Close()
	for _, name := range []string{"all.yaml", "all.json"} {
		path := filepath.Join(t.TempDir(), name)
		out, err := execute(t, srv.URL, "", "backup", "--output", path)
		if err != nil || !strings.Contains(out, "Backed up 1 runtime groups") {
			t.Fatalf("backup: %v\n%s", err, out)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"gantry_backup_format", "default", "echo", "env"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %q:\n%s", name, want, b)
			}
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, fi.Mode())
		}
	}
	if _, err := execute(t, srv.URL, "", "backup"); err == nil || !strings.Contains(err.Error(), "--output is required") {
		t.Fatalf("backup without --output: %v", err)
	}
	if _, err := execute(t, srv.URL, "", "restore", "--input", filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "open the backup") {
		t.Fatalf("restore of a missing file: %v", err)
	}
}
