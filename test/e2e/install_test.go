package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInstallScript: the install script served by a real control plane downloads that control
// plane's own binary, verifies its checksum, installs it under --prefix and execs the runtime,
// which enrolls with a fresh token and joins the group in sync with the token's labels; the same
// token run through the script again is refused with exit 1.
func TestInstallScript(t *testing.T) {
	if goruntime.GOOS != "linux" || (goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64") {
		t.Skip("the script installs linux/amd64 and linux/arm64 binaries")
	}
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), base, cluster, "")
	group := cp.createGroup(t, "installed")
	code, out := cp.call(t, "POST", "/v2/runtime-groups/"+group+"/enrollment-tokens",
		map[string]any{"ttl": 3600, "max_uses": 1, "labels": map[string]string{"site": "lab-1"}})
	if code != 201 {
		t.Fatalf("create enrollment token: %d %v", code, out)
	}
	token := out["token"].(string)

	res, err := http.Get(base + "/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	script, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /install.sh: %d %v", res.StatusCode, err)
	}
	scriptPath := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatal(err)
	}

	// install runs the script as a user would, with the API default it was served with.
	install := func(prefix, data string) (*syncBuffer, <-chan struct{}, *error) {
		status := freeAddr(t)
		cmd := exec.Command("sh", scriptPath, "--platform", "linux", "--no-systemd", "--prefix", prefix, "--data-dir", data,
			"--token", token, "--control-plane", "https://"+cluster,
			"--", "--server-name", "localhost", "--proxy-listen", freeAddr(t), "--proxy-tls-listen", "off", "--status-listen", status, "--ping-interval", "1s")
		outBuf := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = outBuf, outBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // it may have exited already
			<-done
			if t.Failed() {
				t.Logf("install.sh output:\n%s", outBuf.String())
			}
		})
		return outBuf, done, &waitErr
	}

	prefix, data := t.TempDir(), filepath.Join(t.TempDir(), "gantry")
	first, firstDone, firstErr := install(prefix, data)
	waitFor(t, "the installed runtime in sync with the token's labels", func() bool {
		select {
		case <-firstDone:
			t.Fatalf("install.sh exited (%v):\n%s", *firstErr, first.String())
		default:
		}
		_, nodes := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/nodes", nil)
		items, _ := nodes["items"].([]any)
		if len(items) != 1 {
			return false
		}
		node := items[0].(map[string]any)
		labels, _ := node["labels"].(map[string]any)
		return labels["site"] == "lab-1" && node["status"] == "in_sync"
	})
	installed, err := os.ReadFile(filepath.Join(prefix, "bin", "gantry"))
	if err != nil {
		t.Fatal(err)
	}
	served, err := os.ReadFile(gantryBin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(installed, served) {
		t.Fatalf("the installed binary (%d bytes) is not the control plane's own (%d bytes)", len(installed), len(served))
	}
	if !strings.Contains(first.String(), "Installed "+filepath.Join(prefix, "bin", "gantry")) {
		t.Fatalf("install.sh output:\n%s", first.String())
	}

	// The Kubernetes manifest for the same group names the token and the group's cluster endpoint.
	req, _ := http.NewRequest("GET", base+"/v2/runtime-groups/"+group+"/kubernetes-manifest?token="+token, nil)
	req.Header.Set("Authorization", "Bearer "+cp.token)
	mres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := io.ReadAll(mres.Body)
	_ = mres.Body.Close()
	if mres.StatusCode != 200 || !bytes.Contains(manifest, []byte(`"`+token+`"`)) || !bytes.Contains(manifest, []byte(`"https://`+cluster+`"`)) {
		t.Fatalf("manifest: %d\n%s", mres.StatusCode, manifest)
	}

	// The token is used up: a second instance installed with it is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second, secondDone, secondErr := install(t.TempDir(), filepath.Join(t.TempDir(), "gantry"))
	select {
	case <-secondDone:
		var ee *exec.ExitError
		if !errors.As(*secondErr, &ee) || ee.ExitCode() != 1 || !strings.Contains(second.String(), "already used") {
			t.Fatalf("second install with the same token: %v\n%s", *secondErr, second.String())
		}
	case <-ctx.Done():
		t.Fatalf("the second install with a used token did not exit:\n%s", second.String())
	}
}
