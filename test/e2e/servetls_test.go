package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
)

// TestServeTLS: with --tls-cert/--tls-key the API answers HTTPS to a client that trusts the CA,
// answers plain HTTP with 400, and serves a renewed certificate after SIGHUP; with
// --cluster-tls-cert/--cluster-tls-key runtimes connect to the cluster listener trusting the
// user's CA.
func TestServeTLS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	writePair := func(cert, key string) {
		t.Helper()
		for path, body := range map[string]string{certFile: cert, keyFile: key} {
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cert, key := ca.issue(t, "localhost", "127.0.0.1")
	writePair(cert, key)
	clusterCert, clusterKey := ca.issue(t, "localhost", "127.0.0.1")
	clusterCertFile, clusterKeyFile := filepath.Join(dir, "cluster.crt"), filepath.Join(dir, "cluster.key")
	for path, body := range map[string]string{clusterCertFile: clusterCert, clusterKeyFile: clusterKey} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, []byte(ca.certPEM()), 0o600); err != nil {
		t.Fatal(err)
	}

	addr, cluster, token := freeAddr(t), freeAddr(t), auth.NewToken()
	p := start(t, []string{"GANTRY_ADMIN_TOKEN=" + token}, "serve", "--listen", addr, "--data-dir", t.TempDir(),
		"--cluster-listen", cluster, "--tls-cert", certFile, "--tls-key", keyFile,
		"--cluster-tls-cert", clusterCertFile, "--cluster-tls-key", clusterKeyFile)
	p.waitOutput(regexp.MustCompile("control plane API listening.*scheme=https"), 20*time.Second)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(ca.certPEM()))
	servedSerial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("TLS to the API with the CA: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	res, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("HTTPS with the CA: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/readyz over HTTPS: %d", res.StatusCode)
	}

	// Plain HTTP to the TLS port is refused with a 400 that says why.
	res, err = http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("plain HTTP: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP answered %d %q", res.StatusCode, body)
	}

	// A renewed certificate is served after SIGHUP.
	before := servedSerial()
	renewed, renewedKey := ca.issue(t, "localhost", "127.0.0.1")
	writePair(renewed, renewedKey)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewed certificate served", func() bool { return servedSerial() != before })

	// A runtime trusting the user's CA joins through the user's cluster certificate.
	api := func(method, path string, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v %v", method, path, res.StatusCode, out, err)
		}
		return out
	}
	groups := api("GET", "/v2/runtime-groups", "")
	group := groups["data"].([]any)[0].(map[string]any)["id"].(string)
	gen := api("POST", "/v2/runtime-groups/"+group+"/dp-client-certificates/generate", `{"title":"tls"}`)
	files := certFiles{filepath.Join(dir, "rt.crt"), filepath.Join(dir, "rt.key"), caFile}
	for path, body := range map[string]any{files.cert: gen["item"].(map[string]any)["cert"], files.key: gen["key"]} {
		if err := os.WriteFile(path, []byte(body.(string)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rt := startRuntime(t, cluster, files, t.TempDir())
	waitFor(t, "the runtime connected through the user's cluster certificate", func() bool { return rt.getStatus(t)["connected"] == true })
}
