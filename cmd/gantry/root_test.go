package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBindConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gantry.yaml")
	if err := os.WriteFile(file, []byte("listen: \":7000\"\nregion: eu\ndata-dir: /from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		env        map[string]string
		args       []string
		wantListen string
		wantRegion string
		wantDir    string
	}{
		{"file only", nil, nil, ":7000", "eu", "/from/file"},
		{"env beats file", map[string]string{"GANTRY_LISTEN": ":7001"}, nil, ":7001", "eu", "/from/file"},
		{"flag beats env", map[string]string{"GANTRY_LISTEN": ":7001"}, []string{"--listen", ":7002"}, ":7002", "eu", "/from/file"},
		{"env for dashed flag", map[string]string{"GANTRY_DATA_DIR": "/from/env"}, nil, ":7000", "eu", "/from/env"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			root := newRootCmd()
			serve, _, err := root.Find([]string{"serve"})
			if err != nil {
				t.Fatal(err)
			}
			if err := serve.ParseFlags(append([]string{"--config", file}, c.args...)); err != nil {
				t.Fatal(err)
			}
			if err := bindConfig(serve); err != nil {
				t.Fatal(err)
			}
			get := func(n string) string { v, _ := serve.Flags().GetString(n); return v }
			if get("listen") != c.wantListen || get("region") != c.wantRegion || get("data-dir") != c.wantDir {
				t.Fatalf("listen=%s region=%s data-dir=%s", get("listen"), get("region"), get("data-dir"))
			}
		})
	}
}

func TestBindConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file, want string
		env              map[string]string
	}{
		{"unknown key", write("a.yaml", "listne: x\n"), `unknown key "listne"`, nil},
		{"bad yaml", write("b.yaml", "listen: [\n"), "not valid YAML", nil},
		{"missing file", filepath.Join(dir, "none.yaml"), "read config file", nil},
		{"bad duration in env", write("c.yaml", ""), "GANTRY_SHUTDOWN_TIMEOUT", map[string]string{"GANTRY_SHUTDOWN_TIMEOUT": "soon"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			serve, _, _ := newRootCmd().Find([]string{"serve"})
			if err := serve.ParseFlags([]string{"--config", c.file}); err != nil {
				t.Fatal(err)
			}
			err := bindConfig(serve)
			var ue *usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, c.want)
			}
		})
	}
}

// TestPerRunFlagsIgnoreEnvironment checks that GANTRY_OUTPUT, which sets the output format of the
// CLI's listing verbs, does not name the file `gantry backup` writes, while it still sets the
// format elsewhere.
func TestPerRunFlagsIgnoreEnvironment(t *testing.T) {
	t.Setenv("GANTRY_OUTPUT", "json")
	root := newRootCmd()
	backup, _, err := root.Find([]string{"backup"})
	if err != nil {
		t.Fatal(err)
	}
	if err := backup.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := bindConfig(backup); err != nil {
		t.Fatal(err)
	}
	if v, _ := backup.Flags().GetString("output"); v != "" {
		t.Errorf("backup --output = %q from GANTRY_OUTPUT, want it unset", v)
	}
	list, _, err := newRootCmd().Find([]string{"groups", "list"})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := bindConfig(list); err != nil {
		t.Fatal(err)
	}
	if v, _ := list.Flags().GetString("output"); v != "json" {
		t.Errorf("groups list --output = %q, want json from GANTRY_OUTPUT", v)
	}
}
