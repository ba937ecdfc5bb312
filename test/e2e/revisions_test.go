package e2e

import (
	"fmt"
	"net/http"
	"testing"
)

// TestRevisionsRollback changes a group through the Admin API, lists and diffs its revisions,
// rolls back to the first change, and checks that a real runtime then serves the rolled-back
// configuration: the hash the control plane expects (which is the hash of the first change's
// configuration), the first route answering and the route added later gone.
func TestRevisionsRollback(t *testing.T) {
	e := newGatewayEnv(t, "revisions")
	up := newEcho(t, "up")
	revs := "/v2/runtime-groups/" + e.group + "/revisions"

	// Change 1 (two revisions: the service, then its route): /one is served.
	e.create(t, "services", map[string]any{"name": "svc", "url": "http://" + hostPort(up)})
	e.create(t, "services/svc/routes", map[string]any{"name": "one", "paths": []any{"/one"}})
	// Change 2: a second route. Change 3: the service gets a path prefix.
	e.create(t, "services/svc/routes", map[string]any{"name": "two", "paths": []any{"/two"}})
	if code, out := e.admin(t, "PATCH", "services/svc", map[string]any{"path": "/v2"}); code != 200 {
		t.Fatalf("patch service: %d %v", code, out)
	}
	e.converge(t)
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/two"), nil)); res.StatusCode != 200 || decodeSeen(t, body).Path != "/v2" {
		t.Fatalf("before the rollback /two: %d %s", res.StatusCode, body)
	}

	// Four revisions, newest first, made by the Admin API.
	code, list := e.cp.call(t, "GET", revs, nil)
	if code != 200 {
		t.Fatalf("list revisions: %d %v", code, list)
	}
	data := list["data"].([]any)
	if len(data) != 4 || list["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(4) {
		t.Fatalf("revisions: %v", list)
	}
	var numbers []int
	for _, d := range data {
		r := d.(map[string]any)
		numbers = append(numbers, int(r["number"].(float64)))
		if r["source"] != "admin-api" || r["actor"] == nil {
			t.Errorf("revision %v: %v", r["number"], r)
		}
	}
	newest, first := numbers[0], numbers[3]
	if newest != first+3 {
		t.Fatalf("revision numbers %v", numbers)
	}
	firstChange := first + 1 // the service and its first route

	// Diffs: the second route was added by the next revision, and the service changed its path
	// by the newest.
	code, diff := e.cp.call(t, "GET", fmt.Sprintf("%s/%d/diff", revs, firstChange+1), nil)
	if ents, _ := diff["entities"].([]any); code != 200 || len(ents) != 1 || ents[0].(map[string]any)["change"] != "added" || ents[0].(map[string]any)["name"] != "two" {
		t.Fatalf("diff of the second change: %d %v", code, diff)
	}
	code, diff = e.cp.call(t, "GET", fmt.Sprintf("%s/%d/diff?against=%d", revs, newest, firstChange), nil)
	ents, _ := diff["entities"].([]any)
	if code != 200 || len(ents) != 2 {
		t.Fatalf("diff newest against the first change: %d %v", code, diff)
	}
	changed := ents[0].(map[string]any)
	if changed["entity_type"] != "services" || changed["change"] != "changed" || fmt.Sprint(changed["fields"]) != "[path]" {
		t.Errorf("service change: %v", changed)
	}

	// The configuration of the first change, and its hash.
	code, target := e.cp.call(t, "GET", fmt.Sprintf("%s/%d?include=config", revs, firstChange), nil)
	if code != 200 || target["config_hash"] == nil {
		t.Fatalf("revision %d with config: %d %v", firstChange, code, target)
	}

	// Roll back to it.
	code, rb := e.cp.call(t, "POST", fmt.Sprintf("%s/%d/rollback", revs, firstChange), nil)
	if code != http.StatusCreated || rb["source"] != "rollback" || int(rb["number"].(float64)) != newest+1 {
		t.Fatalf("rollback: %d %v", code, rb)
	}
	hash := e.converge(t)
	if hash != target["config_hash"] {
		t.Errorf("the group expects hash %s after the rollback, revision %d's configuration hashes to %v", hash, firstChange, target["config_hash"])
	}
	if got := e.rt.getStatus(t)["configuration_hash"]; got != hash {
		t.Errorf("runtime serves %v, want %s", got, hash)
	}
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/two"), nil)); res.StatusCode != 404 {
		t.Errorf("the route added later still answers: %d %s", res.StatusCode, body)
	}
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/one"), nil)); res.StatusCode != 200 || decodeSeen(t, body).Path != "/" {
		t.Errorf("/one after the rollback: %d %s", res.StatusCode, body)
	}

	// The rollback is itself a revision, equal to the first change.
	_, list = e.cp.call(t, "GET", revs+"?page[size]=1", nil)
	top := list["data"].([]any)[0].(map[string]any)
	if top["source"] != "rollback" || int(top["number"].(float64)) != newest+1 || list["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(5) {
		t.Errorf("newest revision after the rollback: %v", list)
	}
	// Its history row carries the hash the runtime reports (recorded once the control plane built
	// the configuration, after the commit).
	waitFor(t, "the rollback's hash in its history row", func() bool {
		_, r := e.cp.call(t, "GET", fmt.Sprintf("%s/%d", revs, newest+1), nil)
		return r["config_hash"] == hash
	})
	code, diff = e.cp.call(t, "GET", fmt.Sprintf("%s/%d/diff?against=%d", revs, newest+1, firstChange), nil)
	if ents, _ := diff["entities"].([]any); code != 200 || len(ents) != 0 {
		t.Errorf("the rollback differs from revision %d: %d %v", firstChange, code, diff)
	}
}
