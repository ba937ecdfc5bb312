package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

var adminTokenRE = regexp.MustCompile(`(?m)^\s+(gpat_[a-z2-7]+)\s*$`)

// TestServeRestartKeepsData starts gantry serve on a fresh SQLite directory, changes things over
// HTTP, restarts it, and finds everything still there and no second organization or default group.
func TestServeRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"serve", "--listen", addr, "--data-dir", dataDir}

	first := start(t, nil, args...)
	token := first.waitOutput(adminTokenRE, 30*time.Second)
	waitReady(t, base+"/readyz")

	status, created := call(t, ctx, "POST", base+"/v2/runtime-groups", token, map[string]any{"name": "edge", "labels": map[string]string{"env": "prod"}})
	if status != 201 {
		t.Fatalf("create group: %d %v", status, created)
	}
	status, tok := call(t, ctx, "POST", base+"/v2/users/me/personal-access-tokens", token, map[string]any{"name": "ci"})
	if status != 201 {
		t.Fatalf("create token: %d %v", status, tok)
	}
	status, org := call(t, ctx, "GET", base+"/v2/organizations/me", token, nil)
	if status != 200 || org["name"] != "Default Organization" {
		t.Fatalf("organizations/me: %d %v", status, org)
	}
	first.stop()
	if !strings.Contains(first.output(), "database closed") {
		t.Fatalf("shutdown did not close the database:\n%s", first.output())
	}

	second := start(t, nil, args...)
	waitReady(t, base+"/readyz")
	if adminTokenRE.MatchString(second.output()) {
		t.Fatal("restart printed a new admin token: it made a second organization")
	}
	for _, tk := range []string{token, tok["token"].(string)} {
		status, list := call(t, ctx, "GET", base+"/v2/runtime-groups?sort=name", tk, nil)
		if status != 200 {
			t.Fatalf("list after restart: %d %v", status, list)
		}
		data := list["data"].([]any)
		if len(data) != 2 {
			t.Fatalf("after restart: %d groups, want default and edge: %v", len(data), list)
		}
		defaults := 0
		for _, d := range data {
			if d.(map[string]any)["is_default"] == true {
				defaults++
			}
		}
		g := data[1].(map[string]any)
		if defaults != 1 || g["name"] != "edge" || g["id"] != created["id"] || g["labels"].(map[string]any)["env"] != "prod" {
			t.Fatalf("after restart: %v", data)
		}
	}
	status, org2 := call(t, ctx, "GET", base+"/v2/organizations/me", token, nil)
	if status != 200 || org2["id"] != org["id"] {
		t.Fatalf("organization changed across restart: %v vs %v", org2, org)
	}
	second.stop()
}

// TestServeAdminTokenFromEnvironment checks GANTRY_ADMIN_TOKEN and environment configuration.
func TestServeAdminTokenFromEnvironment(t *testing.T) {
	addr := freeAddr(t)
	const token = "gpat_fromenvironmenttokenforthetest"
	p := start(t, []string{"GANTRY_ADMIN_TOKEN=" + token, "GANTRY_LISTEN=" + addr, "GANTRY_DATA_DIR=" + t.TempDir(), "GANTRY_REGION=eu"}, "serve")
	waitReady(t, "http://"+addr+"/readyz")
	if strings.Contains(p.output(), token) {
		t.Fatal("the admin token from the environment was printed")
	}
	status, list := call(t, context.Background(), "GET", "http://"+addr+"/v2/control-planes", token, nil)
	if status != 200 || len(list["data"].([]any)) != 1 {
		t.Fatalf("list with env token: %d %v", status, list)
	}
	p.stop()
}
