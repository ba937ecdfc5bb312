package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// analyticsFlush is the runtimes' --analytics-flush-interval in these tests.
const analyticsFlush = 2 * time.Second

// startAnalyticsRuntime starts a runtime of the group whose certificate is
// certs, reporting hostname, with a short analytics flush interval.
func startAnalyticsRuntime(t *testing.T, cluster string, certs certFiles, hostname string, extra ...string) *runtime {
	t.Helper()
	rt := &runtime{proxy: freeAddr(t), status: freeAddr(t), cacheDir: t.TempDir()}
	rt.args = []string{"runtime", "--control-plane", cluster, "--cert", certs.cert, "--key", certs.key, "--ca", certs.ca,
		"--server-name", "localhost", "--proxy-listen", rt.proxy, "--proxy-tls-listen", "off", "--status-listen", rt.status,
		"--cache-dir", rt.cacheDir, "--ping-interval", "1s", "--hostname", hostname,
		"--analytics-flush-interval", analyticsFlush.String()}
	rt.args = append(rt.args, extra...)
	rt.proc = start(t, []string{"GANTRY_LOG_LEVEL=debug"}, rt.args...)
	rt.waitOutput(regexp.MustCompile(`status: +http://`), 20*time.Second)
	return rt
}

// analyticsAnswer is the analytics API's JSON answer.
type analyticsAnswer struct {
	Meta struct {
		Start       time.Time      `json:"start"`
		End         time.Time      `json:"end"`
		Granularity string         `json:"granularity"`
		Metrics     []string       `json:"metrics"`
		Dimensions  []string       `json:"dimensions"`
		Display     map[string]any `json:"display"`
	} `json:"meta"`
	Data []struct {
		Timestamp  time.Time           `json:"timestamp"`
		Dimensions map[string]string   `json:"dimensions"`
		Metrics    map[string]*float64 `json:"metrics"`
	} `json:"data"`
}

// analytics GETs path (with its query) from the control plane and decodes
// the answer, failing the test on a status other than 200.
func (cp *controlPlane) analytics(t *testing.T, path string) analyticsAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", cp.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+cp.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	var a analyticsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return a
}

// countsBy sums request_count over the rows per value of dimension dim.
func (a analyticsAnswer) countsBy(dim string) map[string]int {
	out := map[string]int{}
	for _, row := range a.Data {
		if v := row.Metrics["request_count"]; v != nil && *v != 0 {
			out[row.Dimensions[dim]] += int(*v)
		}
	}
	return out
}

// TestAnalyticsCounts sends a known mix of requests through two runtimes of
// one group and checks the analytics API reports exactly that mix, by
// status class, service, consumer and node, within two flush intervals, and
// latency percentiles that agree with what the client measured.
func TestAnalyticsCounts(t *testing.T) {
	t.Parallel()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
			time.Sleep(d)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)

	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), base, cluster, "")
	group := cp.createGroup(t, "analytics")
	certs := cp.generateCert(t, group)
	svcA := cp.entity(t, group, "services", map[string]any{"name": "svc-a", "url": upstream.URL})
	svcB := cp.entity(t, group, "services", map[string]any{"name": "svc-b", "url": upstream.URL})
	cp.entity(t, group, "services/svc-a/routes", map[string]any{"name": "route-a", "paths": []string{"/a"}})
	cp.entity(t, group, "services/svc-b/routes", map[string]any{"name": "route-b", "paths": []string{"/b"}})
	term := cp.entity(t, group, "services/svc-b/routes", map[string]any{"name": "route-term", "paths": []string{"/term"}})
	cp.entity(t, group, "plugins", map[string]any{"name": "key-auth"})
	cp.entity(t, group, "routes/"+term["id"].(string)+"/plugins", map[string]any{"name": "request-termination", "config": map[string]any{"status_code": 503}})
	alice := cp.entity(t, group, "consumers", map[string]any{"username": "alice"})
	bob := cp.entity(t, group, "consumers", map[string]any{"username": "bob"})
	cp.entity(t, group, "consumers/alice/key-auth", map[string]any{"key": "alice-key"})
	cp.entity(t, group, "consumers/bob/key-auth", map[string]any{"key": "bob-key"})

	rts := []*runtime{
		startAnalyticsRuntime(t, cluster, certs, "rt-one"),
		startAnalyticsRuntime(t, cluster, certs, "rt-two"),
	}
	want := cp.expectedHash(t, group)
	for _, rt := range rts {
		waitFor(t, "the runtime to serve the configuration", func() bool { return rt.getStatus(t)["configuration_hash"] == want })
	}

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(rt *runtime, path, key string) (int, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+rt.proxy+path, nil)
		if key != "" {
			req.Header.Set("apikey", key)
		}
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, time.Since(start)
	}
	// 20 x 200 on svc-a as alice (with known upstream delays), 10 x 200 on
	// svc-b as bob, 10 x 404 (no route), 5 x 503 from request-termination
	// on svc-b as alice; the first runtime takes 27, the second 18.
	var okLatencies []time.Duration
	perNode := map[string]int{}
	send := func(i int, path, key string, wantStatus int) {
		rt, host := rts[0], "rt-one"
		if i%5 >= 3 {
			rt, host = rts[1], "rt-two"
		}
		code, took := do(rt, path, key)
		if code != wantStatus {
			t.Fatalf("GET %s: %d, want %d", path, code, wantStatus)
		}
		perNode[host]++
		if code == 200 {
			okLatencies = append(okLatencies, took)
		}
	}
	for i := range 20 {
		send(i, fmt.Sprintf("/a?delay=%dms", 20*(i%10+1)), "alice-key", 200)
	}
	for i := range 10 {
		send(i, fmt.Sprintf("/b?delay=%dms", 20*(i%10+1)), "bob-key", 200)
	}
	for i := range 10 {
		send(i, "/nothing-here", "", 404)
	}
	for i := range 5 {
		send(i, "/term", "alice-key", 503)
	}
	sent := time.Now()

	groupPath := "/v2/runtime-groups/" + group + "/analytics?time_range=15m"
	wantClasses := map[string]int{"2XX": 30, "4XX": 10, "5XX": 5}
	var got analyticsAnswer
	deadline := sent.Add(2*analyticsFlush + 8*time.Second) // two flush intervals, and slack for a loaded machine
	for {
		got = cp.analytics(t, groupPath+"&dimensions=status_code_grouped")
		if mapsEqual(got.countsBy("status_code_grouped"), wantClasses) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("by status class after %s: %v, want %v", time.Since(sent).Round(time.Millisecond), got.countsBy("status_code_grouped"), wantClasses)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("counts complete %s after the last request", time.Since(sent).Round(time.Millisecond))

	checks := []struct {
		dim  string
		want map[string]int
	}{
		{"gateway_service", map[string]int{svcA["id"].(string): 20, svcB["id"].(string): 15}},
		{"consumer", map[string]int{alice["id"].(string): 25, bob["id"].(string): 10}},
		{"status_code", map[string]int{"200": 30, "404": 10, "503": 5}},
	}
	for _, c := range checks {
		a := cp.analytics(t, groupPath+"&dimensions="+c.dim)
		gotBy := a.countsBy(c.dim)
		for id, n := range c.want {
			if gotBy[id] != n {
				t.Errorf("by %s: %s has %d, want %d (all: %v)", c.dim, id, gotBy[id], n, gotBy)
			}
		}
		if total := sum(gotBy); total != 45 {
			t.Errorf("by %s: total %d, want 45 (%v)", c.dim, total, gotBy)
		}
	}
	// Nodes: ids in the rows, their hostnames in meta.display.
	byNode := cp.analytics(t, groupPath+"&dimensions=node")
	hosts := map[string]int{}
	for id, n := range byNode.countsBy("node") {
		hosts[displayName(t, byNode, "node", id)] += n
	}
	if !mapsEqual(hosts, perNode) {
		t.Errorf("by node: %v, want %v", hosts, perNode)
	}
	if name := displayName(t, cp.analytics(t, groupPath+"&dimensions=gateway_service"), "gateway_service", svcA["id"].(string)); name != "svc-a" {
		t.Errorf("display name of svc-a's id: %q", name)
	}
	// The organization-wide endpoint adds up to the same.
	org := cp.analytics(t, "/v2/analytics?time_range=15m&dimensions=control_plane")
	if byGroup := org.countsBy("control_plane"); byGroup[group] != 45 || sum(byGroup) != 45 {
		t.Errorf("org-wide by control plane: %v, want %s: 45", byGroup, group)
	}
	// Filters.
	filtered := cp.analytics(t, groupPath+"&dimensions=status_code&filter[gateway_service][eq]="+svcB["id"].(string))
	if by := filtered.countsBy("status_code"); !mapsEqual(by, map[string]int{"200": 10, "503": 5}) {
		t.Errorf("svc-b by status: %v", by)
	}

	// Latency percentiles of the 200s agree with the client's measurements:
	// the gateway's clock starts later and stops earlier than the client's,
	// by the loopback round trip, and the histogram adds its own error.
	lat := cp.analytics(t, groupPath+"&dimensions=status_code_grouped&metrics=request_count,response_latency_p50,response_latency_p95,response_latency_p99")
	slices.Sort(okLatencies)
	for _, row := range lat.Data {
		if row.Dimensions["status_code_grouped"] != "2XX" {
			continue
		}
		for _, q := range []struct {
			metric string
			q      float64
		}{{"response_latency_p50", 0.50}, {"response_latency_p95", 0.95}, {"response_latency_p99", 0.99}} {
			v := row.Metrics[q.metric]
			if v == nil {
				t.Errorf("%s is null", q.metric)
				continue
			}
			client := float64(okLatencies[int(math.Ceil(q.q*float64(len(okLatencies))))-1]) / float64(time.Millisecond)
			tolerance := client*2*telemetry.RelativeError + 10
			if *v > client*(1+2*telemetry.RelativeError) || *v < client-tolerance {
				t.Errorf("%s = %.2f ms, client measured %.2f ms (tolerance %.1f ms)", q.metric, *v, client, tolerance)
			}
		}
	}
}

// displayName reads meta.display[dim][id] (or meta.display[id]) as a string.
func displayName(t *testing.T, a analyticsAnswer, dim, id string) string {
	t.Helper()
	if m, ok := a.Meta.Display[dim].(map[string]any); ok {
		if s, ok := m[id].(string); ok {
			return s
		}
		if o, ok := m[id].(map[string]any); ok {
			if s, ok := o["name"].(string); ok {
				return s
			}
		}
	}
	if s, ok := a.Meta.Display[id].(string); ok {
		return s
	}
	t.Fatalf("meta.display has no name for %s %s: %v", dim, id, a.Meta.Display)
	return ""
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestAnalyticsOutage keeps steady traffic on a runtime while its control
// plane is killed for two minutes, restarts the runtime in the middle of
// the outage, then brings the control plane back: every minute of the
// window has data and the total equals what the client got answered,
// neither lost nor double counted.
func TestAnalyticsOutage(t *testing.T) {
	t.Parallel()
	upstream := newEcho(t, "steady")
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	cp := startControlPlane(t, dataDir, base, cluster, "")
	group := cp.createGroup(t, "outage")
	certs := cp.generateCert(t, group)
	cp.entity(t, group, "services", map[string]any{"name": "steady", "url": upstream.URL})
	cp.entity(t, group, "services/steady/routes", map[string]any{"paths": []string{"/"}})
	rt := startAnalyticsRuntime(t, cluster, certs, "steady-rt")
	want := cp.expectedHash(t, group)
	waitFor(t, "the runtime to serve the configuration", func() bool { return rt.getStatus(t)["configuration_hash"] == want })

	var rtMu sync.Mutex // guards rt while the traffic goroutine uses it
	var answered atomic.Int64
	stop := make(chan struct{})
	trafficDone := make(chan struct{})
	first := time.Now()
	go func() {
		defer close(trafficDone)
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rtMu.Lock()
			addr := rt.proxy
			rtMu.Unlock()
			res, err := client.Get("http://" + addr + "/steady")
			if err != nil {
				continue // the runtime is restarting: no answer, nothing to count
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			answered.Add(1)
		}
	}()

	time.Sleep(10 * time.Second)
	cp.kill()
	outageStart := time.Now()
	time.Sleep(time.Minute)
	// The runtime restarts while the control plane is away: it serves from
	// its cache and keeps the batches it had not delivered.
	rtMu.Lock()
	rt = rt.restart(t)
	rtMu.Unlock()
	time.Sleep(2*time.Minute - time.Since(outageStart))
	cp = startControlPlane(t, dataDir, base, cluster, cp.token)
	time.Sleep(5 * time.Second)
	close(stop)
	<-trafficDone
	last := time.Now()
	total := answered.Load()

	// After two minutes away the runtime's reconnect delay is at its cap
	// (30 s and jitter): wait for the link before timing the delivery.
	reconnect := time.Now().Add(90 * time.Second)
	for rt.getStatus(t)["connected"] != true {
		if time.Now().After(reconnect) {
			t.Fatal("the runtime did not reconnect within 90 s of the control plane's return")
		}
		time.Sleep(250 * time.Millisecond)
	}
	q := fmt.Sprintf("/v2/runtime-groups/%s/analytics?granularity=minute&start=%s&end=%s&dimensions=time",
		group, first.Truncate(time.Minute).UTC().Format(time.RFC3339), last.Truncate(time.Minute).Add(time.Minute).UTC().Format(time.RFC3339))
	var got analyticsAnswer
	deadline := time.Now().Add(2*analyticsFlush + 15*time.Second)
	for {
		got = cp.analytics(t, q)
		if n := sumCounts(got); n == int(total) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("stored %d requests, the client got %d answers", n, total)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Every whole minute between the first and last request has data.
	for _, row := range got.Data {
		ts := row.Timestamp
		if !ts.After(first) || ts.Add(time.Minute).After(last) {
			continue
		}
		if v := row.Metrics["request_count"]; v == nil || *v == 0 {
			t.Errorf("minute %s has no requests (the outage lasted from %s for 2 minutes)", ts.Format(time.TimeOnly), outageStart.UTC().Format(time.TimeOnly))
		}
	}
	t.Logf("%d requests over %s, all counted once", total, last.Sub(first).Round(time.Second))
}

func sumCounts(a analyticsAnswer) int {
	n := 0
	for _, row := range a.Data {
		if v := row.Metrics["request_count"]; v != nil {
			n += int(*v)
		}
	}
	return n
}

// TestAnalyticsPrivacy sends requests with a distinctive marker in the
// path, query string, headers, body and credential, from a distinctive
// client address, then searches every telemetry frame the runtime sent
// (read by a man in the middle holding the runtime's certificate) and every
// file of the control plane's database for them.
func TestAnalyticsPrivacy(t *testing.T) {
	t.Parallel()
	const marker = "zq9privacymarker"
	const clientIP = "127.0.0.77"
	upstream := newEcho(t, "private")
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	cp := startControlPlane(t, dataDir, base, cluster, "")
	group := cp.createGroup(t, "privacy")
	certs := cp.generateCert(t, group)
	cp.entity(t, group, "services", map[string]any{"name": "private", "url": upstream.URL})
	cp.entity(t, group, "services/private/routes", map[string]any{"paths": []string{"/open"}})
	locked := cp.entity(t, group, "services/private/routes", map[string]any{"paths": []string{"/locked"}})
	cp.entity(t, group, "routes/"+locked["id"].(string)+"/plugins", map[string]any{"name": "key-auth"})

	mitm := newFrameRecorder(t, cluster, certs)
	rtCerts := certs
	rtCerts.ca = mitm.caFile
	rt := startAnalyticsRuntime(t, mitm.addr, rtCerts, "private-rt")
	want := cp.expectedHash(t, group)
	waitFor(t, "the runtime to serve the configuration", func() bool { return rt.getStatus(t)["configuration_hash"] == want })

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	sent := 0
	for _, path := range []string{"/open", "/locked"} {
		for i := range 3 {
			u := fmt.Sprintf("http://%s%s/%s-%d?%s=%s", rt.proxy, path, marker, i, marker, marker)
			req, _ := http.NewRequest("POST", u, strings.NewReader(`{"secret":"`+marker+`"}`))
			req.Header.Set("X-Private", marker)
			req.Header.Set("User-Agent", marker)
			req.Header.Set("Cookie", "session="+marker)
			req.Header.Set("Authorization", "Bearer "+marker)
			req.Header.Set("apikey", marker+"-credential")
			req.Header.Set("X-Forwarded-For", marker)
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			sent++
		}
	}
	// Wait until the batches arrived and were stored.
	deadline := time.Now().Add(2*analyticsFlush + 8*time.Second)
	for sumCounts(cp.analytics(t, "/v2/runtime-groups/"+group+"/analytics?time_range=15m&dimensions=status_code")) != sent {
		if time.Now().After(deadline) {
			t.Fatalf("the %d requests did not reach the analytics store", sent)
		}
		time.Sleep(200 * time.Millisecond)
	}
	frames := mitm.telemetryFrames()
	if len(frames) == 0 {
		t.Fatal("no telemetry frame crossed the link")
	}
	for i, f := range frames {
		for _, secret := range []string{marker, clientIP} {
			if bytes.Contains(f, []byte(secret)) {
				t.Errorf("telemetry frame %d contains %q: %s", i, secret, f)
			}
		}
	}
	// The database, as files on disk (its WAL included).
	cp.stop()
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range []string{marker, clientIP} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains %q", path, secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("searched %d telemetry frames and the database files", len(frames))
}

// frameRecorder is a TLS man in the middle between a runtime and the
// control plane's cluster listener: it presents its own certificate to the
// runtime, connects to the control plane with the runtime's client
// certificate, relays both ways, and decodes the runtime's WebSocket
// frames so that the test can read what the runtime sent.
type frameRecorder struct {
	addr   string
	caFile string
	mu     sync.Mutex // guards frames
	frames [][]byte   // inflated telemetry frames, in arrival order
}

func newFrameRecorder(t *testing.T, cluster string, certs certFiles) *frameRecorder {
	t.Helper()
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "localhost")
	serverCert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(certs.cert, certs.key)
	if err != nil {
		t.Fatal(err)
	}
	cpCA, err := os.ReadFile(certs.ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cpCA)
	r := &frameRecorder{caFile: filepath.Join(t.TempDir(), "mitm-ca.crt")}
	if err := os.WriteFile(r.caFile, []byte(ca.certPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	r.addr = ln.Addr().String()
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer down.Close()
				up, err := tls.Dial("tcp", cluster, &tls.Config{Certificates: []tls.Certificate{clientCert}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
				if err != nil {
					return
				}
				defer up.Close()
				pr, pw := io.Pipe()
				go r.decode(pr)
				go func() { _, _ = io.Copy(down, up); _ = down.Close() }()
				_, _ = io.Copy(io.MultiWriter(up, pw), down)
				_ = pw.Close()
			}()
		}
	}()
	return r
}

// decode reads the runtime's side of one connection: the HTTP upgrade
// request, then masked client frames (RFC 6455 section 5.2), keeping the
// payload of every telemetry frame.
func (r *frameRecorder) decode(src io.Reader) {
	br := bufio.NewReader(src)
	defer func() { _, _ = io.Copy(io.Discard, br) }()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(br, mask[:]); err != nil {
				return
			}
		}
		if n > 64<<20 {
			return
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
		if h[0]&0x0f != 0x2 { // binary data frames only
			continue
		}
		m, err := wire.DecodeDPFrame(payload, 0)
		if err != nil {
			continue
		}
		if tf, ok := m.(*wire.Telemetry); ok {
			raw, _ := json.Marshal(tf)
			r.mu.Lock()
			r.frames = append(r.frames, raw)
			r.mu.Unlock()
		}
	}
}

func (r *frameRecorder) telemetryFrames() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

// TestAnalyticsAPIErrors checks bad queries get problem+json with
// invalid_parameters naming the parameter.
func TestAnalyticsAPIErrors(t *testing.T) {
	t.Parallel()
	base, cluster := "http://"+freeAddr(t), freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), base, cluster, "")
	group := cp.createGroup(t, "errors")
	now := time.Now().UTC()
	tests := []struct {
		name, query, field string
	}{
		{"unknown metric", "metrics=request_count,bogus", "metrics"},
		{"unknown dimension", "dimensions=colour", "dimensions"},
		{"too many dimensions", "dimensions=time,gateway_service,route,consumer", "dimensions"},
		{"start after end", "start=" + now.Format(time.RFC3339) + "&end=" + now.Add(-time.Hour).Format(time.RFC3339), "start"},
		{"range too long for minutes", "time_range=30d&granularity=minute", "granularity"},
		{"unknown time range", "time_range=2w", "time_range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+"/v2/runtime-groups/"+group+"/analytics?"+tt.query, nil)
			req.Header.Set("Authorization", "Bearer "+cp.token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var p struct {
				Status            int `json:"status"`
				InvalidParameters []struct {
					Field  string `json:"field"`
					Reason string `json:"reason"`
				} `json:"invalid_parameters"`
			}
			body, _ := io.ReadAll(res.Body)
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%d %s: %v", res.StatusCode, body, err)
			}
			if res.StatusCode != 400 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("status %d, content type %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			found := false
			for _, ip := range p.InvalidParameters {
				found = found || ip.Field == tt.field && ip.Reason != ""
			}
			if !found {
				t.Errorf("invalid_parameters does not name %s: %s", tt.field, body)
			}
		})
	}
	// CSV: the same rows with a header line.
	req, _ := http.NewRequest("GET", base+"/v2/runtime-groups/"+group+"/analytics?time_range=15m&dimensions=time", nil)
	req.Header.Set("Authorization", "Bearer "+cp.token)
	req.Header.Set("Accept", "text/csv")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	// 15 minutes of minute buckets: 15, or 16 when the range ends inside a minute.
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") || len(lines) < 16 || len(lines) > 17 || !strings.Contains(lines[0], "request_count") {
		t.Errorf("CSV: %d %q, %d lines:\n%s", res.StatusCode, res.Header.Get("Content-Type"), len(lines), body)
	}
	// The group's overview carries the last 24 hours' figures.
	code, g := cp.call(t, "GET", "/v2/runtime-groups/"+group, nil)
	if code != 200 {
		t.Fatalf("get group: %d %v", code, g)
	}
	if n, ok := g["requests_24h"].(float64); !ok || n != 0 {
		t.Errorf("requests_24h = %v", g["requests_24h"])
	}
}
