package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startEnrolledRuntime runs gantry runtime with --enroll instead of certificate files.
func startEnrolledRuntime(t *testing.T, cluster, token, cacheDir string) *runtime {
	t.Helper()
	rt := &runtime{proxy: freeAddr(t), status: freeAddr(t), cacheDir: cacheDir}
	rt.args = []string{"runtime", "--control-plane", "https://" + cluster, "--enroll", token, "--server-name", "localhost",
		"--proxy-listen", rt.proxy, "--proxy-tls-listen", "off", "--status-listen", rt.status, "--cache-dir", cacheDir, "--ping-interval", "1s"}
	rt.proc = start(t, nil, rt.args...)
	return rt
}

// TestEnrollment: a runtime given only a one-time token and the control plane's address makes
// its own key, gets a certificate for the token's group (no CA file, no pasted key), connects with
// the token's labels, and keeps its certificate across restarts; the same token is refused a
// second time, as is a revoked one, and unpinning the enrolled certificate disconnects the node.
func TestEnrollment(t *testing.T) {
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), base, cluster, "")
	group := cp.createGroup(t, "enrolled")
	code, out := cp.call(t, "POST", "/v2/runtime-groups/"+group+"/enrollment-tokens", map[string]any{"ttl": 600, "labels": map[string]string{"zone": "eu-1"}})
	if code != 201 {
		t.Fatalf("create token: %d %v", code, out)
	}
	token := out["token"].(string)
	tokenID := out["item"].(map[string]any)["id"].(string)
	if !strings.HasPrefix(token, "gent_") {
		t.Fatalf("token %q", token)
	}

	dir := t.TempDir()
	rt := startEnrolledRuntime(t, cluster, token, dir)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 30*time.Second)
	waitFor(t, "the enrolled runtime connected", func() bool { return rt.getStatus(t)["connected"] == true })
	fi, err := os.Stat(filepath.Join(dir, "enrollment", "tls.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enrolled key: %v %v, want mode 0600", fi, err)
	}
	var node map[string]any
	waitFor(t, "the node with the token's labels", func() bool {
		_, nodes := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/nodes", nil)
		items, _ := nodes["items"].([]any)
		if len(items) != 1 {
			return false
		}
		node = items[0].(map[string]any)
		labels, _ := node["labels"].(map[string]any)
		return labels["zone"] == "eu-1" && node["enrollment_token_id"] == tokenID && node["status"] == "in_sync"
	})
	_, list := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/enrollment-tokens", nil)
	if items, _ := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["status"] != "used_up" || strings.Contains(list["items"].([]any)[0].(map[string]any)["hint"].(string), token[10:]) {
		t.Fatalf("token list after use: %v", list)
	}

	// A restart reuses the certificate: the used token does not matter any more.
	rt.stop()
	rt = startEnrolledRuntime(t, cluster, token, dir)
	rt.waitOutput(regexp.MustCompile(`already enrolled`), 20*time.Second)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second) // the status listener is up
	waitFor(t, "the restarted runtime connected", func() bool { return rt.getStatus(t)["connected"] == true })

	// The same token for another instance is refused, and the runtime exits 1 saying why.
	again := startEnrolledRuntime(t, cluster, token, t.TempDir())
	<-again.done
	if code := again.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(again.output(), "already used") {
		t.Fatalf("second use of the token: exit %d\n%s", code, again.output())
	}
	// A revoked token is refused too.
	_, out = cp.call(t, "POST", "/v2/runtime-groups/"+group+"/enrollment-tokens", map[string]any{})
	revoked := out["token"].(string)
	if code, _ := cp.call(t, "DELETE", "/v2/runtime-groups/"+group+"/enrollment-tokens/"+out["item"].(map[string]any)["id"].(string), nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	gone := startEnrolledRuntime(t, cluster, revoked, t.TempDir())
	<-gone.done
	if code := gone.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(gone.output(), "revoked") {
		t.Fatalf("revoked token: exit %d\n%s", code, gone.output())
	}
	// A token of another control plane (another CA) is refused before anything is sent.
	forged := token[:strings.Index(token, ".")+1] + strings.Repeat("0", 64)
	wrongCA := startEnrolledRuntime(t, cluster, forged, t.TempDir())
	<-wrongCA.done
	if code := wrongCA.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(wrongCA.output(), "not issued by the CA the enrollment token names") {
		t.Fatalf("token naming another CA: exit %d\n%s", code, wrongCA.output())
	}

	// Unpinning the enrolled certificate disconnects the node, and it is refused from then on.
	_, certs := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/dp-client-certificates", nil)
	items, _ := certs["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["enrollment_token_id"] != tokenID {
		t.Fatalf("certificates: %v", certs)
	}
	if code, _ := cp.call(t, "DELETE", "/v2/runtime-groups/"+group+"/dp-client-certificates/"+items[0].(map[string]any)["id"].(string), nil); code != 204 {
		t.Fatalf("unpin: %d", code)
	}
	waitFor(t, "the node disconnected", func() bool { return rt.getStatus(t)["connected"] == false })
	waitFor(t, "the runtime refused", func() bool { return strings.Contains(rt.getStatus(t)["last_error"].(string), "not pinned") })
}

// TestCertificateRenewal: an enrolled runtime whose certificate nears its expiry gets a new one
// over its authenticated link and reconnects with it, while its traffic goes on undisturbed.
func TestCertificateRenewal(t *testing.T) {
	upstream := newEcho(t, "up")
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlaneWith(t, []string{"--data-dir", t.TempDir(), "--enrolled-cert-validity", "1m"}, base, cluster, "")
	group := cp.createGroup(t, "renewing")
	cp.entity(t, group, "services", map[string]any{"name": "web", "url": upstream.URL})
	cp.entity(t, group, "services/web/routes", map[string]any{"name": "web", "paths": []string{"/web"}})
	_, out := cp.call(t, "POST", "/v2/runtime-groups/"+group+"/enrollment-tokens", map[string]any{})
	dir := t.TempDir()
	rt := &runtime{proxy: freeAddr(t), status: freeAddr(t), cacheDir: dir}
	rt.proc = start(t, nil, "runtime", "--control-plane", cluster, "--enroll", out["token"].(string), "--server-name", "localhost",
		"--proxy-listen", rt.proxy, "--proxy-tls-listen", "off", "--status-listen", rt.status, "--cache-dir", dir,
		"--ping-interval", "1s", "--renew-before", "45s")
	converge(t, []*runtime{rt}, cp.expectedHash(t, group), time.Now(), 30*time.Second)
	expiry := func() float64 {
		_, nodes := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/nodes", nil)
		items, _ := nodes["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["status"] != "in_sync" {
			return 0
		}
		e, _ := items[0].(map[string]any)["cert_expiry"].(float64)
		return e
	}
	var first float64
	waitFor(t, "the node's certificate expiry", func() bool { first = expiry(); return first > 0 })
	tr := startTraffic([]*runtime{rt}, "/web")
	rt.waitOutput(regexp.MustCompile(`renewed the client certificate`), 40*time.Second)
	waitFor(t, "the node reconnected with the renewed certificate", func() bool { return expiry() > first })
	ok, failed, failures := tr.finish()
	if failed != 0 || ok < 100 {
		t.Fatalf("traffic across the renewal: %d ok, %d failed %v", ok, failed, failures[:min(len(failures), 5)])
	}
	_, certs := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/dp-client-certificates", nil)
	if items, _ := certs["items"].([]any); len(items) < 2 {
		t.Fatalf("certificates after renewal: %v", certs)
	}
}
