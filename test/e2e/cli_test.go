package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliResult is what one run of the gantry CLI printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliEnv is the environment of CLI runs: a private configuration directory, and the control
// plane's address and token unless empty.
type cliEnv struct {
	server, token, home string
}

// run runs the built binary with args, stdin as its input, and returns its output and exit code.
func (e cliEnv) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GANTRY_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+e.home, "XDG_CONFIG_HOME="+filepath.Join(e.home, ".config"))
	if e.server != "" {
		env = append(env, "GANTRY_SERVER="+e.server)
	}
	if e.token != "" {
		env = append(env, "GANTRY_TOKEN="+e.token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("gantry %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{stdout: out.String(), stderr: errOut.String(), code: code}
}

// ok runs the CLI and requires exit 0.
func (e cliEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("gantry %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI and requires exit code with stderr containing want.
func (e cliEnv) fails(t *testing.T, code int, want string, args ...string) cliResult {
	t.Helper()
	r := e.run(t, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("gantry %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

// okJSON runs the CLI with -o json and decodes its output.
func okJSON[T any](t *testing.T, e cliEnv, args ...string) T {
	t.Helper()
	var v T
	out := e.ok(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("gantry %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// TestCLIFleet drives groups, certificates, nodes, tokens, login and revisions with the built
// binary against a real control plane and runtime, as a user would.
func TestCLIFleet(t *testing.T) {
	base, cluster, dataDir := "http://"+freeAddr(t), freeAddr(t), t.TempDir()
	cp := startControlPlane(t, dataDir, base, cluster, "")
	e := cliEnv{server: base, token: cp.token, home: t.TempDir()}

	// Groups.
	if out := e.ok(t, "groups", "list"); !regexp.MustCompile(`(?m)^NAME\s+ID\s+DEFAULT.*\ndefault\s+\S+\s+yes`).MatchString(out) {
		t.Fatalf("groups list:\n%s", out)
	}
	created := okJSON[map[string]any](t, e, "groups", "create", "payments", "--label", "team=billing", "--description", "Payments API")
	if created["name"] != "payments" || created["labels"].(map[string]any)["team"] != "billing" {
		t.Fatalf("groups create: %v", created)
	}
	if out := e.ok(t, "groups", "get", "payments", "-o", "yaml"); !strings.Contains(out, "team: billing") || !strings.Contains(out, "description: Payments API") {
		t.Fatalf("groups get -o yaml:\n%s", out)
	}
	if out := e.ok(t, "groups", "update", "payments", "--name", "pay", "--label", "env=prod", "--remove-label", "team"); !regexp.MustCompile(`(?m)^pay\s+\S+\s+env=prod`).MatchString(out) {
		t.Fatalf("groups update:\n%s", out)
	}
	byID := okJSON[map[string]any](t, e, "groups", "get", created["id"].(string))
	if byID["name"] != "pay" {
		t.Fatalf("groups get by id: %v", byID)
	}
	if gs := okJSON[[]map[string]any](t, e, "groups", "list"); len(gs) != 2 {
		t.Fatalf("groups list -o json: %v", gs)
	}

	// Errors: the API's detail and exit 1; usage errors exit 2.
	e.fails(t, 1, "default runtime group cannot be deleted", "groups", "delete", "default", "--yes")
	e.fails(t, 1, `No runtime group is named or has the id "nope"`, "groups", "get", "nope")
	e.fails(t, 1, "already exists", "groups", "create", "pay")
	e.fails(t, 1, "name: must be 1 to 100 characters", "groups", "create", strings.Repeat("x", 101))
	e.fails(t, 2, "accepts 1 arg(s), received 0", "groups", "get")
	e.fails(t, 2, `unknown command "frob"`, "groups", "frob")
	e.fails(t, 2, `unknown command "frob"`, "frob")
	e.fails(t, 2, "unknown flag: --nope", "groups", "list", "--nope")
	e.fails(t, 2, `-o "xml": use table, json or yaml`, "groups", "list", "-o", "xml")
	e.fails(t, 2, "--group is required", "revisions", "list")
	e.fails(t, 2, "give a revision number", "revisions", "show", "zero", "--group", "default")
	(cliEnv{server: base, token: "gpat_wrong", home: e.home}).fails(t, 1, "gantry login", "groups", "list")
	(cliEnv{server: "http://" + freeAddr(t), token: cp.token, home: e.home}).fails(t, 1, "cannot reach the control plane", "groups", "list")

	// Delete asks; "n" keeps the group, "y" deletes it.
	e.ok(t, "groups", "create", "scratch")
	if r := e.run(t, "n\n", "groups", "delete", "scratch"); r.code != 1 || !strings.Contains(r.stderr, "nothing was deleted") {
		t.Fatalf("delete answered n: %+v", r)
	}
	e.ok(t, "groups", "get", "scratch")
	if r := e.run(t, "y\n", "groups", "delete", "scratch"); r.code != 0 || !strings.Contains(r.stdout, "Deleted runtime group scratch") {
		t.Fatalf("delete answered y: %+v", r)
	}
	e.fails(t, 1, "No runtime group", "groups", "get", "scratch")

	// Certificates: generate writes the files and prints the runtime command, which connects.
	certDir := filepath.Join(t.TempDir(), "rt")
	out := e.ok(t, "certificates", "generate", "--group", "pay", "--out-dir", certDir, "--title", "e2e")
	if !strings.Contains(out, "gantry runtime --control-plane "+cluster+" --cert "+filepath.Join(certDir, "tls.crt")) {
		t.Fatalf("certificates generate:\n%s", out)
	}
	files := certFiles{filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"), filepath.Join(certDir, "ca.crt")}
	for _, f := range []string{files.cert, files.key, files.ca} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	certs := okJSON[[]map[string]any](t, e, "certificates", "list", "--group", "pay")
	if len(certs) != 1 || certs[0]["title"] != "e2e" {
		t.Fatalf("certificates list: %v", certs)
	}
	startRuntime(t, cluster, files, t.TempDir())
	waitFor(t, "the runtime in gantry nodes list", func() bool {
		nodes := okJSON[[]map[string]any](t, e, "nodes", "list", "--group", "pay")
		return len(nodes) == 1 && nodes[0]["status"] == "in_sync" && nodes[0]["group"] == "pay"
	})
	if out := e.ok(t, "nodes", "list"); !regexp.MustCompile(`(?m)^pay\s+\S+\s+\S+\s+gantry`).MatchString(out) {
		t.Fatalf("nodes list of every group:\n%s", out)
	}
	e.ok(t, "certificates", "revoke", "--group", "pay", certs[0]["id"].(string))
	if certs := okJSON[[]map[string]any](t, e, "certificates", "list", "--group", "pay"); len(certs) != 0 {
		t.Fatalf("certificates after revoke: %v", certs)
	}

	// Tokens: a created token works until it is revoked.
	tok := okJSON[map[string]any](t, e, "tokens", "create", "ci", "--expires-in", "1h")
	secret, _ := tok["token"].(string)
	if !strings.HasPrefix(secret, "gpat_") {
		t.Fatalf("tokens create: %v", tok)
	}
	if out := e.ok(t, "tokens", "list"); !regexp.MustCompile(`(?m)^` + tok["id"].(string) + `\s+ci\s+`).MatchString(out) {
		t.Fatalf("tokens list:\n%s", out)
	}
	ci := cliEnv{server: base, token: secret, home: e.home}
	ci.ok(t, "groups", "list")
	e.ok(t, "tokens", "revoke", tok["id"].(string))
	ci.fails(t, 1, "The token is invalid, expired or revoked.", "groups", "list")

	// Login stores the server and token (mode 0600); logout forgets them.
	bare := cliEnv{home: t.TempDir()}
	nowhere := "http://" + freeAddr(t)
	bare.fails(t, 1, "cannot reach the control plane at "+nowhere, "groups", "list", "--server", nowhere)
	bare.fails(t, 1, "The token is invalid", "login", "--server", base, "--token", "gpat_wrong")
	bare.ok(t, "login", "--server", base, "--token", cp.token)
	if fi, err := os.Stat(filepath.Join(bare.home, ".config", "gantry", "config.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored login: %v", err)
	}
	if out := bare.ok(t, "groups", "list"); !strings.Contains(out, "pay") {
		t.Fatalf("groups list after login:\n%s", out)
	}
	bare.ok(t, "logout")
	bare.fails(t, 1, "cannot reach the control plane at http://localhost:8080", "groups", "list")

	// Revisions: three changes, listed, shown, diffed and rolled back.
	var group string
	for _, g := range okJSON[[]map[string]any](t, e, "groups", "list") {
		if g["name"] == "default" {
			group = g["id"].(string)
		}
	}
	for _, name := range []string{"svc-a", "svc-b", "svc-c"} {
		cp.entity(t, group, "services", map[string]any{"name": name, "url": "http://127.0.0.1:9"})
	}
	revs := okJSON[[]map[string]any](t, e, "revisions", "list", "--group", "default")
	if len(revs) != 3 || revs[0]["number"].(float64) != 3 || revs[0]["source"] != "admin-api" {
		t.Fatalf("revisions list: %v", revs)
	}
	if out := e.ok(t, "revisions", "list", "--group", group); !regexp.MustCompile(`(?m)^3\s+.*admin-api\s+.*services \+1`).MatchString(out) {
		t.Fatalf("revisions list:\n%s", out)
	}
	if out := e.ok(t, "revisions", "show", "2", "--group", "default"); !strings.Contains(out, "services: 1 created, 0 updated, 0 deleted") {
		t.Fatalf("revisions show:\n%s", out)
	}
	// Two revisions that differ: exit 3, as config diff; a revision against itself: exit 0.
	if r := e.run(t, "", "revisions", "diff", "3", "--against", "1", "--group", "default"); r.code != 3 || !regexp.MustCompile(`(?m)^\+ added\s+services\s+svc-b`).MatchString(r.stdout) || !strings.Contains(r.stdout, "svc-c") || strings.Contains(r.stdout, "svc-a") {
		t.Fatalf("revisions diff: %+v", r)
	}
	e.ok(t, "revisions", "diff", "3", "--against", "3", "--group", "default")
	e.fails(t, 1, "has no revision 9", "revisions", "show", "9", "--group", "default")
	if out := e.ok(t, "revisions", "rollback", "1", "--group", "default"); !strings.Contains(out, "back to revision 1: new revision 4") {
		t.Fatalf("revisions rollback:\n%s", out)
	}
	if revs := okJSON[[]map[string]any](t, e, "revisions", "list", "--group", "default", "--limit", "1"); len(revs) != 1 || revs[0]["source"] != "rollback" {
		t.Fatalf("revisions after rollback: %v", revs)
	}

	// Completion: the scripts, and group names completed from the API.
	if out := e.ok(t, "completion", "bash"); !strings.Contains(out, "__start_gantry") {
		t.Fatalf("completion bash:\n%.200s", out)
	}
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		e.ok(t, "completion", shell)
	}
	if out := e.ok(t, "__complete", "revisions", "list", "--group", ""); !strings.Contains(out, "default\n") || !strings.Contains(out, "pay\n") {
		t.Fatalf("completion of --group:\n%s", out)
	}
}

// TestCLIHelp checks that every verb's --help has an example.
func TestCLIHelp(t *testing.T) {
	e := cliEnv{home: t.TempDir()}
	verbs := [][]string{
		{"login"}, {"logout"},
		{"groups"}, {"groups", "list"}, {"groups", "get"}, {"groups", "create"}, {"groups", "update"}, {"groups", "delete"},
		{"nodes"}, {"nodes", "list"},
		{"certificates"}, {"certificates", "generate"}, {"certificates", "list"}, {"certificates", "revoke"},
		{"tokens"}, {"tokens", "create"}, {"tokens", "list"}, {"tokens", "revoke"},
		{"revisions"}, {"revisions", "list"}, {"revisions", "show"}, {"revisions", "diff"}, {"revisions", "rollback"},
		{"config"}, {"config", "dump"}, {"config", "sync"}, {"config", "diff"}, {"config", "validate"},
		{"backup"}, {"restore"},
	}
	for _, v := range verbs {
		out := e.ok(t, append(v, "--help")...)
		if !strings.Contains(out, "Example") {
			t.Errorf("gantry %s --help has no example:\n%s", strings.Join(v, " "), out)
		}
	}
}
