package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestDeclarativeImport imports a nested declarative file (a service with two routes, key-auth on
// one, a consumer with its key) through the HTTP API and checks that a real runtime serves it:
// one revision of source import, the runtime converged to the group's expected hash, the open
// route answering through the proxy, the protected one only with the consumer's key. A second
// import of the same file makes no revision.
func TestDeclarativeImport(t *testing.T) {
	e := newGatewayEnv(t, "declarative")
	up := newEcho(t, "up")
	revs := "/v2/runtime-groups/" + e.group + "/revisions"
	file := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: backend
    url: http://%s/base
    routes:
      - name: open
        paths: [/open]
      - name: closed
        paths: [/closed]
        plugins:
          - name: key-auth
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-secret
`, hostPort(up))

	post := func() map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", e.cp.base+"/v2/runtime-groups/"+e.group+"/declarative-config", bytes.NewBufferString(file))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.cp.token)
		req.Header.Set("Content-Type", "application/yaml")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]any
		if res.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("import: %d %s", res.StatusCode, raw)
		}
		return out
	}
	_, before := e.cp.call(t, "GET", revs, nil)
	total := func(list map[string]any) float64 {
		return list["meta"].(map[string]any)["page"].(map[string]any)["total"].(float64)
	}
	out := post()

	code, list := e.cp.call(t, "GET", revs, nil)
	if code != 200 || total(list) != total(before)+1 {
		t.Fatalf("revisions after the import: %d %v", code, list)
	}
	newest := list["data"].([]any)[0].(map[string]any)
	if newest["source"] != "import" || newest["number"] != out["revision"] {
		t.Fatalf("the import's revision: %v (answer %v)", newest, out)
	}

	e.converge(t)
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/open/x"), nil)); res.StatusCode != 200 || decodeSeen(t, body).Path != "/base/x" {
		t.Fatalf("/open through the proxy: %d %s", res.StatusCode, body)
	}
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/closed"), nil)); res.StatusCode != 401 {
		t.Fatalf("/closed without a key: %d %s", res.StatusCode, body)
	}
	req := mustRequest(t, "GET", e.proxyURL("/closed"), nil)
	req.Header.Set("apikey", "alice-secret")
	if res, body := e.send(t, req); res.StatusCode != 200 {
		t.Fatalf("/closed with alice's key: %d %s", res.StatusCode, body)
	}

	// The same file again: nothing changes, no revision.
	if again := post(); again["revision"] != out["revision"] {
		t.Fatalf("second import: %v, want revision %v", again, out["revision"])
	}
	if _, list := e.cp.call(t, "GET", revs, nil); total(list) != total(before)+1 {
		t.Fatalf("the second import made a revision: %v", list)
	}
}
