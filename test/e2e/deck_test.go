package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"go.yaml.in/yaml/v3"
)

// deckEnv names the environment variable holding the path of a stock decK binary. make test-deck
// builds one from tools/deck and sets it.
const deckEnv = "GANTRY_E2E_DECK"

// TestDeck runs stock decK's whole workflow against a runtime group's Admin API, on SQLite and on
// PostgreSQL: ping, online validate, sync of a configuration with every entity type, an idempotent
// diff, a dump that round-trips byte for byte, drift made through the Admin API, updates and
// deletes, a select-tag sync beside other entities, reset, and the restore of a backup into a new
// group. Each step asserts decK's exit code and its summary (Created/Updated/Deleted).
// Select tags are used both ways decK offers: _info.select_tags in a file and --select-tag.
func TestDeck(t *testing.T) {
	bin := os.Getenv(deckEnv)
	if bin == "" {
		t.Skip("needs a decK binary in " + deckEnv + ": run make test-deck, which builds decK and runs this test")
	}
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { testDeck(t, bin, dialect) })
	}
}

// deckCLI runs decK in Kong mode against one control plane.
type deckCLI struct {
	bin, base, token, home, dir string
}

// deckResult is one decK run: its exit code and its standard output and error.
type deckResult struct {
	code           int
	stdout, stderr string
}

// run runs `deck gateway <verb> <args>` against group and returns its result; it fails the test
// only when decK cannot be started or does not end within two minutes.
func (d deckCLI) run(t *testing.T, group, verb string, args ...string) deckResult {
	t.Helper()
	return d.runAt(t, d.base+"/v2/runtime-groups/"+group+"/core-entities", verb, args...)
}

// runAt is run with the Admin API address given in full.
func (d deckCLI) runAt(t *testing.T, addr, verb string, args ...string) deckResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"gateway", verb,
		"--kong-addr", addr,
		"--headers", "Authorization: Bearer " + d.token,
		"--analytics=false",
	}, args...)
	cmd := exec.CommandContext(ctx, d.bin, full...)
	cmd.Dir = d.dir
	// A HOME of its own keeps a developer's ~/.deck.yaml out of the test.
	cmd.Env = append(os.Environ(), "HOME="+d.home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
	default:
		t.Fatalf("deck %s: %v", verb, err)
	}
	return deckResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

// summaryRE reads decK's closing summary of a sync, diff or reset.
var summaryRE = regexp.MustCompile(`Summary:\s+Created: (\d+)\s+Updated: (\d+)\s+Deleted: (\d+)`)

// want checks the exit code and, when summary is not "", the Created/Updated/Deleted counts
// ("31/0/0").
func (r deckResult) want(t *testing.T, step string, code int, summary string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: deck exited %d, want %d\nstdout:\n%s\nstderr:\n%s", step, r.code, code, r.stdout, r.stderr)
	}
	if summary == "" {
		return
	}
	m := summaryRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("%s: no summary in decK's output\nstdout:\n%s\nstderr:\n%s", step, r.stdout, r.stderr)
	}
	if got := m[1] + "/" + m[2] + "/" + m[3]; got != summary {
		t.Fatalf("%s: Created/Updated/Deleted %s, want %s\nstdout:\n%s\nstderr:\n%s", step, got, summary, r.stdout, r.stderr)
	}
}

func testDeck(t *testing.T, bin, dialect string) {
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlaneOn(t, dialect, base, cluster)
	dir := t.TempDir()
	d := deckCLI{bin: bin, base: base, token: cp.token, home: t.TempDir(), dir: dir}
	group := cp.createGroup(t, "deck")
	file := func(name string) string { return filepath.Join(dir, name) }
	full := testdataPath(t, "deck/kong.yaml")
	team := testdataPath(t, "deck/team.yaml")
	// Each step works on what the steps before it left: once one fails, the rest are not run.
	step := func(name string, fn func(t *testing.T)) {
		if !t.Failed() {
			t.Run(name, fn)
		}
	}

	step("ping", func(t *testing.T) {
		r := d.run(t, group, "ping")
		r.want(t, "ping", 0, "")
		if !strings.Contains(r.stdout, "Successfully connected to Kong!") || !strings.Contains(r.stdout, "Kong version:  3.") {
			t.Fatalf("ping output: %s", r.stdout)
		}
		// The same Admin API under Konnect's name for a group.
		r = d.runAt(t, base+"/v2/control-planes/"+group+"/core-entities", "ping")
		r.want(t, "ping via /v2/control-planes", 0, "")
		// An unknown group is not a Kong.
		if r := d.run(t, "00000000-0000-4000-8000-000000000000", "ping"); r.code == 0 {
			t.Fatalf("ping of an unknown group succeeded: %s", r.stdout)
		}
	})

	step("validate online", func(t *testing.T) {
		// Every entity of the file goes through /schemas/{entity}/validate, with its foreign
		// keys as decK sends them ({"id", "name"}).
		r := d.run(t, group, "validate", full)
		r.want(t, "validate", 0, "")
		if strings.Contains(r.stderr, "validate entity") {
			t.Fatalf("validate reported errors: %s", r.stderr)
		}
		// A file with two invalid entities: both are reported, with Kong's messages.
		bad := file("bad.yaml")
		writeFile(t, bad, `_format_version: "3.0"
services:
  - name: bad-port
    host: bad.test
    port: 70000
vaults:
  - name: env
    prefix: env
`)
		r = d.run(t, group, "validate", bad)
		if r.code == 0 {
			t.Fatalf("an invalid file validated:\n%s", r.stdout)
		}
		for _, msg := range []string{"schema violation (port: value should be between 0 and 65535)", "schema violation (prefix: must not be one of: env)"} {
			if !strings.Contains(r.stderr, msg) {
				t.Errorf("validate did not report %q:\n%s", msg, r.stderr)
			}
		}
	})

	step("sync every entity type", func(t *testing.T) {
		d.run(t, group, "sync", full).want(t, "first sync", 0, "31/0/0")
		counts := map[string]int{
			"services": 2, "routes": 3, "consumers": 2, "consumer_groups": 1, "plugins": 6,
			"upstreams": 1, "upstreams/orders.internal/targets": 2, "certificates": 1, "snis": 2,
			"ca_certificates": 1, "vaults": 1, "key-sets": 1, "keys": 1, "key-auths": 1,
			"basic-auths": 1, "jwts": 1, "hmac-auths": 1, "acls": 1,
			"consumer_groups/gold/consumers": 2,
		}
		for coll, n := range counts {
			code, body := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/core-entities/"+coll, nil)
			data, _ := body["data"].([]any)
			if code != 200 || len(data) != n {
				t.Errorf("%s after sync: %d, %d entities, want %d: %v", coll, code, len(data), n, body)
			}
		}
		// Plugins at every scope: global, service, route, consumer and consumer group.
		code, body := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/core-entities/plugins", nil)
		scopes := map[string]bool{}
		for _, p := range body["data"].([]any) {
			pm := p.(map[string]any)
			scope := "global"
			for _, f := range []string{"service", "route", "consumer", "consumer_group"} {
				if pm[f] != nil {
					scope = f
				}
			}
			scopes[scope] = true
		}
		if code != 200 || len(scopes) != 5 {
			t.Errorf("plugin scopes %v", scopes)
		}
	})

	step("idempotent diff", func(t *testing.T) {
		d.run(t, group, "diff", "--non-zero-exit-code", full).want(t, "diff after sync", 0, "0/0/0")
	})

	step("dump round trip", func(t *testing.T) {
		d.run(t, group, "dump", "-o", file("dump1.yaml")).want(t, "dump", 0, "")
		d.run(t, group, "sync", file("dump1.yaml")).want(t, "sync of the dump", 0, "0/0/0")
		d.run(t, group, "dump", "-o", file("dump2.yaml")).want(t, "second dump", 0, "")
		if a, b := readFile(t, file("dump1.yaml")), readFile(t, file("dump2.yaml")); a != b {
			t.Fatalf("dumps differ:\n%s\n---\n%s", a, b)
		}
	})

	step("drift", func(t *testing.T) {
		code, body := cp.call(t, "PATCH", "/v2/runtime-groups/"+group+"/core-entities/services/orders", map[string]any{"retries": 9})
		if code != 200 {
			t.Fatalf("PATCH: %d %v", code, body)
		}
		r := d.run(t, group, "diff", "--non-zero-exit-code", full)
		r.want(t, "diff after drift", 2, "0/1/0")
		if !strings.Contains(r.stdout, "updating service orders") || !strings.Contains(r.stdout, `"retries": 9`) {
			t.Fatalf("diff does not show the drift:\n%s", r.stdout)
		}
	})

	step("updates and deletes", func(t *testing.T) {
		// The service's timeout and a target's weight change, an ACL group is added and the
		// consumer bob (with his consumer group membership) goes.
		changed := replaceAll(t, readFile(t, full),
			"connect_timeout: 5000", "connect_timeout: 6000",
			"weight: 50", "weight: 25",
			"  - username: bob\n    tags: [e2e]\n    groups:\n      - name: gold\n", "",
			"      - group: admins\n        tags: [e2e]\n", "      - group: admins\n        tags: [e2e]\n      - group: auditors\n        tags: [e2e]\n")
		writeFile(t, file("changed.yaml"), changed)
		r := d.run(t, group, "sync", file("changed.yaml"))
		r.want(t, "sync of the changes", 0, "1/2/2")
		for _, line := range []string{"creating acl-group auditors for consumer alice", "updating service orders",
			"updating target 10.0.0.2:8080", "deleting consumer bob", "deleting consumer-group-consumer bob"} {
			if !strings.Contains(r.stdout, line) {
				t.Errorf("sync output lacks %q:\n%s", line, r.stdout)
			}
		}
		d.run(t, group, "diff", "--non-zero-exit-code", file("changed.yaml")).want(t, "diff after the changes", 0, "0/0/0")
	})

	step("select tag", func(t *testing.T) {
		d.run(t, group, "sync", team).want(t, "select-tag sync", 0, "5/0/0")
		d.run(t, group, "diff", "--non-zero-exit-code", team).want(t, "select-tag diff", 0, "0/0/0")
		code, body := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/core-entities/tags/"+url.PathEscape("team billing"), nil)
		if data, _ := body["data"].([]any); code != 200 || len(data) != 5 {
			t.Fatalf("/tags/team billing: %d %v", code, body)
		}
		// The other entities stayed: the whole configuration differs only by the team's five.
		d.run(t, group, "diff", "--non-zero-exit-code", file("changed.yaml")).want(t, "full diff beside the team's entities", 2, "0/0/5")
		d.run(t, group, "dump", "--select-tag", "team billing", "-o", file("team-dump.yaml")).want(t, "select-tag dump", 0, "")
		if dump := readFile(t, file("team-dump.yaml")); !strings.Contains(dump, "name: billing") || strings.Contains(dump, "name: orders") {
			t.Fatalf("select-tag dump:\n%s", dump)
		}

		// A second team's file without select_tags, synced with the --select-tag flag: decK
		// tags what it creates and leaves the first team's entities alone.
		search := replaceAll(t, readFile(t, team),
			"_info:\n  select_tags:\n    - team billing\n", "",
			"billing", "search", "carol", "erin")
		writeFile(t, file("search.yaml"), search)
		d.run(t, group, "sync", "--select-tag", "team search", file("search.yaml")).want(t, "--select-tag sync", 0, "5/0/0")
		d.run(t, group, "diff", "--non-zero-exit-code", "--select-tag", "team search", file("search.yaml")).want(t, "--select-tag diff", 0, "0/0/0")
		d.run(t, group, "diff", "--non-zero-exit-code", team).want(t, "the first team's diff", 0, "0/0/0")
		d.run(t, group, "diff", "--non-zero-exit-code", file("changed.yaml")).want(t, "full diff beside both teams", 2, "0/0/10")
	})

	step("reset", func(t *testing.T) {
		d.run(t, group, "reset", "--force").want(t, "reset", 0, "0/0/40")
		d.run(t, group, "dump", "-o", file("empty.yaml")).want(t, "dump after reset", 0, "")
		if got := readFile(t, file("empty.yaml")); got != "_format_version: \"3.0\"\n" {
			t.Fatalf("dump after reset:\n%s", got)
		}
	})

	step("restore into a new group", func(t *testing.T) {
		// The backup is the first dump (without ids: decK v1.62.1's --with-id dump writes a
		// key's set as {id, name} and reports it as an update on every later diff, on any Kong).
		restored := cp.createGroup(t, "deck-restore")
		backup := file("dump1.yaml")
		d.run(t, restored, "sync", backup).want(t, "restore", 0, "31/0/0")
		d.run(t, restored, "diff", "--non-zero-exit-code", backup).want(t, "diff after restore", 0, "0/0/0")
		d.run(t, restored, "dump", "-o", file("restored.yaml")).want(t, "dump of the restored group", 0, "")
		consumerID := func(username string) string {
			code, body := cp.call(t, "GET", "/v2/runtime-groups/"+restored+"/core-entities/consumers/"+username, nil)
			if code != 200 {
				t.Fatalf("consumer %s: %d %v", username, code, body)
			}
			return body["id"].(string)
		}
		compareRestored(t, readFile(t, backup), readFile(t, file("restored.yaml")), consumerID)
	})
}

// compareRestored checks that a restored group dumps exactly as its backup, but for basic-auth
// passwords: in Kong mode decK sends a dumped password hash as the password, and Kong stores
// sha1(password .. consumer_id) (kong/plugins/basic-auth/crypto.lua), so each restored hash is the
// hash of the backed-up one with the restored consumer's id, as it would be on Kong (decK warns
// that basic-auth import/export does not keep passwords). consumerID gives a restored consumer's
// id by username.
func compareRestored(t *testing.T, backup, restored string, consumerID func(username string) string) {
	t.Helper()
	hashes := basicAuthHashes(t, backup)
	if len(hashes) == 0 {
		t.Fatal("the backup has no basic-auth credential")
	}
	want := backup
	for old, username := range hashes {
		sum := sha1.Sum([]byte(old + consumerID(username)))
		want = strings.ReplaceAll(want, "password: "+old, "password: "+hex.EncodeToString(sum[:]))
	}
	if restored != want {
		t.Fatalf("restored dump differs from the backup:\n%s", lineDiff(want, restored))
	}
}

// basicAuthHashes maps each basic-auth password hash of a dump to its consumer's username.
func basicAuthHashes(t *testing.T, dump string) map[string]string {
	t.Helper()
	var doc struct {
		Consumers []struct {
			Username string `yaml:"username"`
			Basic    []struct {
				Password string `yaml:"password"`
			} `yaml:"basicauth_credentials"`
		} `yaml:"consumers"`
	}
	if err := yaml.Unmarshal([]byte(dump), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range doc.Consumers {
		for _, b := range c.Basic {
			out[b.Password] = c.Username
		}
	}
	return out
}

// lineDiff lists the lines that differ between two texts of the same length in lines, or both
// texts when the lengths differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al) != len(bl) {
		return a + "\n---\n" + b
	}
	var out strings.Builder
	for i := range al {
		if al[i] != bl[i] {
			fmt.Fprintf(&out, "line %d:\n- %s\n+ %s\n", i+1, al[i], bl[i])
		}
	}
	return out.String()
}

// replaceAll applies old/new pairs to s, failing the test when an old text is absent (the test
// data changed under the test).
func replaceAll(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("test data lacks %q", pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
