package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// TestCLIConfigAndBackup drives config dump/diff/validate/sync and backup/restore with the built
// binary: a dump synced back changes nothing, a changed file is a diff (exit 3) until synced, an
// invalid one is refused with its errors, and a backup restored into a fresh control plane dumps
// the same configuration for every group, on SQLite and on PostgreSQL.
func TestCLIConfigAndBackup(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { testCLIConfigAndBackup(t, dialect) })
	}
}

func testCLIConfigAndBackup(t *testing.T, dialect string) {
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlaneOn(t, dialect, base, cluster)
	e := cliEnv{server: base, token: cp.token, home: t.TempDir()}
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }

	def := okJSON[map[string]any](t, e, "groups", "get", "default")["id"].(string)
	pay := okJSON[map[string]any](t, e, "groups", "create", "payments", "--label", "team=billing", "--description", "Payments API")["id"].(string)
	svc := cp.entity(t, def, "services", map[string]any{"name": "echo", "url": "http://127.0.0.1:9000"})
	cp.entity(t, def, "routes", map[string]any{"name": "echo-route", "paths": []string{"/echo"}, "service": map[string]any{"id": svc["id"]}})
	cp.entity(t, def, "consumers", map[string]any{"username": "alice"})
	cp.entity(t, def, "plugins", map[string]any{"name": "key-auth"})
	cp.entity(t, pay, "services", map[string]any{"name": "billing", "url": "http://127.0.0.1:9001"})
	e.ok(t, "certificates", "generate", "--group", "payments", "--out-dir", filepath.Join(dir, "certs"))

	// Dump, in YAML by default and JSON on request; the dump is what the group has.
	dumpYAML := e.ok(t, "config", "dump", "--group", "default")
	if !strings.Contains(dumpYAML, "_format_version") || !strings.Contains(dumpYAML, "echo-route") {
		t.Fatalf("config dump:\n%s", dumpYAML)
	}
	e.ok(t, "config", "dump", "--group", "default", file("default.yaml"))
	e.ok(t, "config", "dump", "--group", "default", file("default.json"), "-o", "json")
	if out := e.ok(t, "config", "diff", "--group", "default", file("default.yaml")); !strings.Contains(out, "No changes") {
		t.Fatalf("diff of the group's own dump:\n%s", out)
	}
	e.ok(t, "config", "validate", "--group", "default", file("default.json"))

	// A changed file: diff exits 3 until it is synced; "n" changes nothing.
	var doc map[string]any
	b, err := os.ReadFile(file("default.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["services"] = append(doc["services"].([]any), map[string]any{"name": "added-by-sync", "url": "http://127.0.0.1:9002"})
	changed, _ := json.Marshal(doc)
	if err := os.WriteFile(file("changed.json"), changed, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "", "config", "diff", "--group", "default", file("changed.json"))
	if r.code != 3 || !strings.Contains(r.stdout, "added-by-sync") || !strings.Contains(r.stdout, "1 to add, 0 to change, 0 to remove") {
		t.Fatalf("config diff of a changed file: %+v", r)
	}
	if r := e.run(t, "n\n", "config", "sync", "--group", "default", file("changed.json")); r.code != 1 || !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("sync answered n: %+v", r)
	}
	if out := e.ok(t, "config", "dump", "--group", "default"); out != dumpYAML {
		t.Fatalf("a refused sync changed the configuration:\n%s", out)
	}
	if r := e.run(t, "y\n", "config", "sync", "--group", "default", file("changed.json")); r.code != 0 || !strings.Contains(r.stdout, "Applied to group default: revision") || !strings.Contains(r.stdout, "(services +1)") {
		t.Fatalf("sync answered y: %+v", r)
	}
	if out := e.ok(t, "config", "diff", "--group", "default", file("changed.json")); !strings.Contains(out, "No changes") {
		t.Fatalf("diff after sync:\n%s", out)
	}
	if revs := okJSON[[]map[string]any](t, e, "revisions", "list", "--group", "default", "--limit", "1"); revs[0]["source"] != "import" {
		t.Fatalf("the sync's revision: %v", revs)
	}

	// Round trip: syncing the first dump back gives the same dump.
	e.ok(t, "config", "sync", "--group", "default", "--yes", file("default.yaml"))
	if out := e.ok(t, "config", "dump", "--group", "default"); out != dumpYAML {
		t.Fatalf("dump after syncing the first dump back:\n%s\nwant:\n%s", out, dumpYAML)
	}

	// An invalid file: every error printed, exit 1, nothing changed.
	invalid := "_format_version: \"3.0\"\nroutes:\n- name: orphan\n  paths: [/x]\n  service: no-such-service\nplugins:\n- name: no-such-plugin\n"
	if err := os.WriteFile(file("invalid.yaml"), []byte(invalid), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, "", "config", "validate", "--group", "default", file("invalid.yaml"))
	if r.code != 1 || !strings.Contains(r.stderr, "is not valid for group default") || !strings.Contains(r.stderr, "orphan") || !strings.Contains(r.stderr, "no-such-plugin") {
		t.Fatalf("validate of an invalid file: %+v", r)
	}
	if r := e.run(t, "", "config", "sync", "--group", "default", "--yes", file("invalid.yaml")); r.code != 1 {
		t.Fatalf("sync of an invalid file: %+v", r)
	}
	if out := e.ok(t, "config", "dump", "--group", "default"); out != dumpYAML {
		t.Fatal("a refused import changed the configuration")
	}

	// Backup, then restore into a fresh control plane: every group dumps the same.
	e.ok(t, "backup", "--output", file("backup.yaml"))
	dumps := map[string]string{}
	for _, g := range []string{"default", "payments"} {
		dumps[g] = e.ok(t, "config", "dump", "--group", g)
	}
	base2 := "http://" + freeAddr(t)
	cp2 := startControlPlaneOn(t, dialect, base2, freeAddr(t))
	e2 := cliEnv{server: base2, token: cp2.token, home: t.TempDir()}
	if out := e2.ok(t, "restore", "--input", file("backup.yaml")); !strings.Contains(out, "Restored 2 runtime groups") {
		t.Fatalf("restore:\n%s", out)
	}
	for g, want := range dumps {
		if got := e2.ok(t, "config", "dump", "--group", g); got != want {
			t.Errorf("group %s after restore:\n%s\nwant:\n%s", g, got, want)
		}
	}
	restored := okJSON[map[string]any](t, e2, "groups", "get", "payments")
	if restored["description"] != "Payments API" || restored["labels"].(map[string]any)["team"] != "billing" {
		t.Errorf("restored group: %v", restored)
	}
	if certs := okJSON[[]map[string]any](t, e2, "certificates", "list", "--group", "payments"); len(certs) != 1 {
		t.Errorf("restored certificates: %v", certs)
	}
	e2.fails(t, 1, "already has runtime groups named payments", "restore", "--input", file("backup.yaml"))

	// Delete with a backup first, then restore that one group.
	e.ok(t, "groups", "delete", "payments", "--yes", "--backup-to", file("payments.json"))
	e.fails(t, 1, "No runtime group", "groups", "get", "payments")
	if out := e.ok(t, "restore", "--input", file("payments.json"), "--group", "payments"); !strings.Contains(out, "into group payments") {
		t.Fatalf("restore of one group:\n%s", out)
	}
	if got := e.ok(t, "config", "dump", "--group", "payments"); got != dumps["payments"] {
		t.Errorf("payments after delete and restore:\n%s\nwant:\n%s", got, dumps["payments"])
	}

	// The API's own delete with ?backup=true answers a backup gantry restore reads.
	id := okJSON[map[string]any](t, e, "groups", "get", "payments")["id"].(string)
	req, _ := http.NewRequest("DELETE", base+"/v2/runtime-groups/"+id+"?backup=true", nil)
	req.Header.Set("Authorization", "Bearer "+cp.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("DELETE ?backup=true: %d %s", res.StatusCode, body)
	}
	if err := os.WriteFile(file("api-backup.json"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	e.fails(t, 1, "No runtime group", "groups", "get", "payments")
	e.ok(t, "restore", "--input", file("api-backup.json"), "--group", "payments")
	if got := e.ok(t, "config", "dump", "--group", "payments"); got != dumps["payments"] {
		t.Errorf("payments after the API's delete with backup and a restore:\n%s\nwant:\n%s", got, dumps["payments"])
	}
	if certs := okJSON[[]map[string]any](t, e, "certificates", "list", "--group", "payments"); len(certs) != 1 {
		t.Errorf("certificates after the API's backup and a restore: %v", certs)
	}
}
