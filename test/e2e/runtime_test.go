package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// controlPlane is a running gantry serve with its cluster listener.
type controlPlane struct {
	*proc
	base, cluster, token, dataDir string
}

// startControlPlane runs gantry serve on dataDir. On the first start of a
// directory it reads the admin token from the output; later starts reuse
// the one given.
func startControlPlane(t *testing.T, dataDir, base, cluster, token string) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, []string{"--data-dir", dataDir}, base, cluster, token)
}

// startControlPlaneOn runs gantry serve on a fresh database of dialect ("sqlite": a new data
// directory; "postgres": a new database on the test server).
func startControlPlaneOn(t *testing.T, dialect, base, cluster string) *controlPlane {
	t.Helper()
	if dialect == "postgres" {
		return startControlPlaneWith(t, []string{"--database-url", storetest.NewPostgresDatabase(t)}, base, cluster, "")
	}
	return startControlPlane(t, t.TempDir(), base, cluster, "")
}

// startControlPlaneWith runs gantry serve with the database flags db.
func startControlPlaneWith(t *testing.T, db []string, base, cluster, token string) *controlPlane {
	t.Helper()
	args := append([]string{"serve", "--listen", strings.TrimPrefix(base, "http://")}, db...)
	args = append(args, "--cluster-listen", cluster, "--cluster-endpoint", "https://"+cluster)
	p := start(t, nil, args...)
	if token == "" {
		token = p.waitOutput(adminTokenRE, 30*time.Second)
	}
	waitReady(t, base+"/readyz")
	dataDir := ""
	if len(db) == 2 && db[0] == "--data-dir" {
		dataDir = db[1]
	}
	return &controlPlane{proc: p, base: base, cluster: cluster, token: token, dataDir: dataDir}
}

// kill stops the control plane the hard way, as a crash would.
func (cp *controlPlane) kill() {
	_ = cp.cmd.Process.Signal(syscall.SIGKILL) // one that already exited is just as stopped
	<-cp.done
}

func (cp *controlPlane) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return call(t, ctx, method, cp.base+path, cp.token, body)
}

func (cp *controlPlane) createGroup(t *testing.T, name string) string {
	t.Helper()
	code, g := cp.call(t, "POST", "/v2/runtime-groups", map[string]any{"name": name})
	if code != 201 {
		t.Fatalf("create group %s: %d %v", name, code, g)
	}
	return g["id"].(string)
}

// certFiles are a runtime's --cert, --key and --ca.
type certFiles struct{ cert, key, ca string }

// generateCert has the control plane issue a client certificate for group.
func (cp *controlPlane) generateCert(t *testing.T, group string) certFiles {
	t.Helper()
	code, out := cp.call(t, "POST", "/v2/runtime-groups/"+group+"/dp-client-certificates/generate", map[string]any{"title": "e2e"})
	if code != 201 {
		t.Fatalf("generate certificate: %d %v", code, out)
	}
	dir := t.TempDir()
	item := out["item"].(map[string]any)
	f := certFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")}
	for path, pem := range map[string]any{f.cert: item["cert"], f.key: out["key"], f.ca: out["ca_cert"]} {
		if err := os.WriteFile(path, []byte(pem.(string)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (cp *controlPlane) entity(t *testing.T, group, collection string, body map[string]any) map[string]any {
	t.Helper()
	code, out := cp.call(t, "POST", "/v2/runtime-groups/"+group+"/core-entities/"+collection, body)
	if code != 201 {
		t.Fatalf("create %s: %d %v", collection, code, out)
	}
	return out
}

func (cp *controlPlane) expectedHash(t *testing.T, group string) string {
	t.Helper()
	code, out := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/expected-config-hash", nil)
	if code != 200 {
		t.Fatalf("expected-config-hash: %d %v", code, out)
	}
	return out["expected_hash"].(string)
}

// runtime is a running gantry runtime.
type runtime struct {
	*proc
	proxy, status, cacheDir string
	args                    []string
}

func startRuntime(t *testing.T, cluster string, certs certFiles, cacheDir string) *runtime {
	t.Helper()
	rt := &runtime{proxy: freeAddr(t), status: freeAddr(t), cacheDir: cacheDir}
	rt.args = []string{"runtime", "--control-plane", cluster, "--cert", certs.cert, "--key", certs.key, "--ca", certs.ca,
		"--server-name", "localhost", "--proxy-listen", rt.proxy, "--proxy-tls-listen", "off", "--status-listen", rt.status,
		"--cache-dir", cacheDir, "--ping-interval", "1s", "--label", "suite=e2e"}
	rt.proc = start(t, []string{"GANTRY_LOG_LEVEL=debug"}, rt.args...)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second)
	return rt
}

// restart stops the runtime and starts it again with the same flags and
// cache directory.
func (rt *runtime) restart(t *testing.T) *runtime {
	t.Helper()
	rt.stop()
	n := &runtime{proxy: rt.proxy, status: rt.status, cacheDir: rt.cacheDir, args: rt.args}
	n.proc = start(t, []string{"GANTRY_LOG_LEVEL=debug"}, n.args...)
	n.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second)
	return n
}

func (rt *runtime) getStatus(t *testing.T) map[string]any {
	t.Helper()
	res, err := http.Get("http://" + rt.status + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m) // a non-JSON answer leaves m nil, which callers check
	return m
}

func (rt *runtime) ready(t *testing.T) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + rt.status + "/status/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// get sends a request through the runtime's proxy.
func (rt *runtime) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + rt.proxy + path)
	if err != nil {
		t.Fatalf("proxy %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRuntimeFleet runs a control plane and runtime instances as users do,
// through the life of a group: connect, configure, lose the control plane,
// restart instances from their cache, refuse a damaged cache, converge
// again, and outlive the group's deletion.
func TestRuntimeFleet(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "upstream saw %s", r.URL.Path)
	}))
	defer upstream.Close()

	base, cluster, dataDir := "http://"+freeAddr(t), freeAddr(t), t.TempDir()
	cp := startControlPlane(t, dataDir, base, cluster, "")
	edge := cp.createGroup(t, "edge")
	other := cp.createGroup(t, "other")
	edgeCerts := cp.generateCert(t, edge)
	otherCerts := cp.generateCert(t, other)

	// Three instances of edge, one of other.
	var fleet []*runtime
	for range 3 {
		fleet = append(fleet, startRuntime(t, cluster, edgeCerts, t.TempDir()))
	}
	outsider := startRuntime(t, cluster, otherCerts, t.TempDir())
	for i, rt := range append(fleet, outsider) {
		waitFor(t, fmt.Sprintf("runtime %d connected", i), func() bool { return rt.getStatus(t)["connected"] == true })
	}

	t.Run("an unpinned certificate is refused", func(t *testing.T) {
		// A certificate from the control plane's own CA would be pinned,
		// so take the other group's files and swap in a key pair no
		// group knows: a self-signed one.
		stranger := selfSigned(t, edgeCerts.ca)
		rt := startRuntime(t, cluster, stranger, t.TempDir())
		waitFor(t, "a refusal", func() bool { s, _ := rt.getStatus(t)["last_error"].(string); return s != "" })
		st := rt.getStatus(t)
		if st["connected"] == true || st["configuration_loaded"] == true || !strings.Contains(st["last_error"].(string), "refused") {
			t.Fatalf("an unpinned certificate connected, or the refusal is not explained: %v", st)
		}
		if code, _ := rt.ready(t); code != 503 {
			t.Fatalf("ready = %d without configuration", code)
		}
		rt.stop()
	})

	// Configure edge; every instance of it serves the change.
	svc := cp.entity(t, edge, "services", map[string]any{"name": "echo", "url": upstream.URL})
	cp.entity(t, edge, "routes", map[string]any{"name": "echo", "paths": []string{"/echo"}, "service": map[string]any{"id": svc["id"]}})
	want := cp.expectedHash(t, edge)
	for i, rt := range fleet {
		waitFor(t, fmt.Sprintf("runtime %d serving /echo", i), func() bool {
			code, body := rt.get(t, "/echo/x")
			return code == 200 && body == "upstream saw /x"
		})
		st := rt.getStatus(t)
		if st["configuration_hash"] != want || st["revision"].(float64) < 1 || st["configuration_source"] != "control_plane" {
			t.Fatalf("runtime %d status %v, want hash %s", i, st, want)
		}
		if code, body := rt.ready(t); code != 200 || !strings.Contains(body, `"ready"`) {
			t.Fatalf("runtime %d ready: %d %s", i, code, body)
		}
	}
	// The other group's instance never sees edge's configuration.
	if code, body := outsider.get(t, "/echo/x"); code != 404 || !strings.Contains(body, "no Route matched") {
		t.Fatalf("an instance of another group proxied edge's route: %d %s", code, body)
	}

	// The control plane dies. Instances keep serving; a restarted one
	// serves from its cache.
	cp.kill()
	if code, _ := fleet[0].get(t, "/echo/y"); code != 200 {
		t.Fatalf("serving stopped with the control plane: %d", code)
	}
	fleet[0] = fleet[0].restart(t)
	if code, body := fleet[0].get(t, "/echo/y"); code != 200 || body != "upstream saw /y" {
		t.Fatalf("restarted without a control plane: %d %s", code, body)
	}
	st := fleet[0].getStatus(t)
	if st["configuration_source"] != "cache" || st["configuration_hash"] != want || st["connected"] != false {
		t.Fatalf("restarted from cache: status %v", st)
	}
	if code, _ := fleet[0].ready(t); code != 200 {
		t.Fatalf("restarted from cache: ready %d", code)
	}

	// A damaged cache is refused as a whole.
	fleet[1].stop()
	cacheFile := filepath.Join(fleet[1].cacheDir, "config.cache")
	b, err := os.ReadFile(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(cacheFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fleet[1] = fleet[1].restart(t)
	fleet[1].waitOutput(regexp.MustCompile(`cached configuration refused.*checksum mismatch`), 10*time.Second)
	if code, _ := fleet[1].ready(t); code != 503 {
		t.Fatalf("a corrupted cache was loaded: ready %d", code)
	}
	if code, _ := fleet[1].get(t, "/echo/z"); code != 404 {
		t.Fatalf("a corrupted cache was loaded: proxy %d", code)
	}

	// The control plane returns; a new revision reaches every instance,
	// the one with the damaged cache included.
	cp = startControlPlane(t, dataDir, base, cluster, cp.token)
	svc2 := cp.entity(t, edge, "services", map[string]any{"name": "echo2", "url": upstream.URL + "/two"})
	cp.entity(t, edge, "routes", map[string]any{"name": "echo2", "paths": []string{"/echo2"}, "service": map[string]any{"id": svc2["id"]}})
	want = cp.expectedHash(t, edge)
	for i, rt := range fleet {
		waitFor(t, fmt.Sprintf("runtime %d converged", i), func() bool {
			st := rt.getStatus(t)
			return st["configuration_hash"] == want && st["connected"] == true
		})
		if code, body := rt.get(t, "/echo2/a"); code != 200 || body != "upstream saw /two/a" {
			t.Fatalf("runtime %d after convergence: %d %s", i, code, body)
		}
	}

	// Deleting the group orphans its instances; they keep serving.
	if code, out := cp.call(t, "DELETE", "/v2/runtime-groups/"+edge, nil); code != 204 {
		t.Fatalf("delete group: %d %v", code, out)
	}
	for i, rt := range fleet {
		waitFor(t, fmt.Sprintf("runtime %d orphaned", i), func() bool { return rt.getStatus(t)["orphaned"] == true })
		if code, _ := rt.get(t, "/echo/still"); code != 200 {
			t.Fatalf("orphaned runtime %d stopped serving: %d", i, code)
		}
		if !strings.Contains(rt.output(), "orphaned and keeps serving") {
			t.Fatalf("runtime %d did not log that it is orphaned", i)
		}
	}
}

// selfSigned writes a self-signed client certificate no group has pinned,
// with ca as the CA to trust for the control plane.
func selfSigned(t *testing.T, ca string) certFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "stranger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := certFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), ca}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRuntimeConfiguration checks gantry runtime takes its settings from
// a --config file and GANTRY_* variables, and refuses bad ones with exit
// status 2 and a message naming the setting.
func TestRuntimeConfiguration(t *testing.T) {
	certs := selfSigned(t, "")
	certs.ca = certs.cert
	status, cache := freeAddr(t), t.TempDir()
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	yaml := fmt.Sprintf("control-plane: 127.0.0.1:1\ncert: %s\nkey: %s\nca: %s\nproxy-listen: %s\nproxy-tls-listen: \"off\"\nstatus-listen: %s\ncache-dir: %s\nlabel: [zone=a, tier=edge]\n",
		certs.cert, certs.key, certs.ca, freeAddr(t), status, cache)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	rt := start(t, []string{"GANTRY_HOSTNAME=from-env"}, "runtime", "--config", file)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second)
	st := (&runtime{proc: rt, status: status}).getStatus(t)
	labels, _ := st["labels"].(map[string]any)
	if st["control_plane"] != "127.0.0.1:1" || st["hostname"] != "from-env" || labels["zone"] != "a" || labels["tier"] != "edge" {
		t.Fatalf("status %v: settings not taken from the file and environment", st)
	}
	if _, err := os.Stat(filepath.Join(cache, "node.id")); err != nil {
		t.Fatalf("no node id in the cache directory: %v", err)
	}
	rt.waitOutput(regexp.MustCompile(`nothing accepts connections at the control plane's address`), 10*time.Second)
	rt.stop()

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no control plane", []string{"--cert", certs.cert, "--key", certs.key}, "--control-plane required"},
		{"bad label", []string{"--control-plane", "127.0.0.1:1", "--cert", certs.cert, "--key", certs.key, "--label", "novalue"}, `--label "novalue": want key=value`},
		{"missing key file", []string{"--control-plane", "127.0.0.1:1", "--cert", certs.cert, "--key", "/nonexistent"}, "--key /nonexistent"},
		{"address without port", []string{"--control-plane", "cp.example", "--cert", certs.cert, "--key", certs.key}, "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(gantryBin, append([]string{"runtime", "--cache-dir", t.TempDir()}, tt.args...)...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output does not say %q:\n%s", tt.want, out)
			}
		})
	}
}
