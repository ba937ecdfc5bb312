package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var quickstartGroupRE = regexp.MustCompile(`default runtime group ([0-9a-f-]{36})`)

// TestQuickstart runs `gantry quickstart`, configures the default group through the API, and sends
// traffic through the local runtime instance; a restart finds the token, certificate and
// configuration again.
func TestQuickstart(t *testing.T) {
	ctx := context.Background()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream saw "+r.URL.Path)
	}))
	defer upstream.Close()
	dataDir := t.TempDir()
	api, cluster, proxy, status := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"quickstart", "--data-dir", dataDir, "--listen", api, "--cluster-listen", cluster,
		"--proxy-listen", proxy, "--proxy-tls-listen", "off", "--status-listen", status}

	p := start(t, nil, args...)
	group := p.waitOutput(quickstartGroupRE, 30*time.Second)
	tokenBytes, err := os.ReadFile(filepath.Join(dataDir, "quickstart", "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	if !strings.Contains(p.output(), token) || !strings.Contains(p.output(), "http://"+proxy) {
		t.Fatalf("the output does not say which token to use and where the proxy listens:\n%s", p.output())
	}
	waitReady(t, "http://"+status+"/status/ready")
	base := "http://" + api + "/v2/runtime-groups/" + group + "/core-entities"
	if code, body := call(t, ctx, "POST", base+"/services", token, map[string]any{"name": "up", "url": upstream.URL}); code != 201 {
		t.Fatalf("create service: %d %v", code, body)
	}
	if code, body := call(t, ctx, "POST", base+"/services/up/routes", token, map[string]any{"paths": []string{"/qs"}}); code != 201 {
		t.Fatalf("create route: %d %v", code, body)
	}
	waitBody(t, "http://"+proxy+"/qs/hello", "upstream saw /hello")
	p.stop()

	again := start(t, nil, args...)
	again.waitOutput(quickstartGroupRE, 30*time.Second)
	if strings.Contains(again.output(), token) {
		t.Fatal("the restart printed the admin token again")
	}
	waitBody(t, "http://"+proxy+"/qs/again", "upstream saw /again")
	again.stop()
}

// waitBody polls url until its body equals want.
func waitBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = res.Status + " " + string(b)
			if res.StatusCode == 200 && string(b) == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered %q; last: %s", url, want, last)
}
