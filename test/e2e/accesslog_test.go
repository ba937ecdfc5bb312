package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAccessLog: with --access-log <file> every proxied request is one JSON line with its route,
// service, consumer, status, latencies, bytes and upstream address, and never its credentials or
// query string; a failed upstream request is logged at warn with its cause.
func TestAccessLog(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	e := newGatewayEnv(t, "accesslog", "--access-log", logFile)
	up := newEcho(t, "up")
	// A port nobody listens on: the upstream refuses the connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	svc := e.create(t, "services", map[string]any{"name": "echo", "url": up.URL})
	route := e.create(t, "services/echo/routes", map[string]any{"name": "echo", "paths": []string{"/echo"}})
	e.create(t, "services", map[string]any{"name": "down", "url": "http://" + dead})
	e.create(t, "services/down/routes", map[string]any{"name": "down", "paths": []string{"/down"}})
	e.create(t, "routes/echo/plugins", map[string]any{"name": "key-auth"})
	consumer := e.create(t, "consumers", map[string]any{"username": "alice"})
	e.create(t, "consumers/alice/key-auth", map[string]any{"key": "topsecret"})
	e.converge(t)

	req, _ := http.NewRequest("GET", e.proxyURL("/echo/x?apikey=topsecret&q=1"), nil)
	if res, body := e.send(t, req); res.StatusCode != 200 {
		t.Fatalf("proxied request: %d %s", res.StatusCode, body)
	}
	req, _ = http.NewRequest("GET", e.proxyURL("/down"), nil)
	if res, _ := e.send(t, req); res.StatusCode != http.StatusBadGateway {
		t.Fatalf("request to a dead upstream: %d", res.StatusCode)
	}

	var lines []map[string]any
	waitFor(t, "two access log lines", func() bool {
		b, _ := os.ReadFile(logFile)
		lines = nil
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
			}
		}
		return len(lines) >= 2
	})
	raw, _ := os.ReadFile(logFile)
	if strings.Contains(string(raw), "topsecret") || strings.Contains(string(raw), "apikey") {
		t.Fatalf("the access log holds a credential or the query string:\n%s", raw)
	}
	ok := lines[0]
	if ok["route_id"] != route["id"] || ok["service_id"] != svc["id"] || ok["consumer_id"] != consumer["id"] ||
		ok["status"] != 200.0 || ok["path"] != "/echo/x" || ok["method"] != "GET" || ok["upstream_addr"] != strings.TrimPrefix(up.URL, "http://") ||
		ok["request_id"] == nil || ok["latencies"] == nil || ok["response_bytes"].(float64) <= 0 {
		t.Errorf("access log line of the proxied request: %v", ok)
	}
	if failed := lines[1]; failed["status"] != 502.0 || failed["upstream_addr"] != dead {
		t.Errorf("access log line of the failed request: %v", failed)
	}
	e.rt.waitOutput(regexp.MustCompile(`level=WARN msg="upstream request failed" component=proxy status=502 cause=.*refused.*upstream=`+regexp.QuoteMeta(dead)), 10*time.Second)
}
