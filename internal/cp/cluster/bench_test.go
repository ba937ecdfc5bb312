package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/google/uuid"
)

// reportedCount returns how many of the group's links report hash, and a channel closed at the
// next reported change.
func (h *hub) reportedCount(groupID, hash string) (int, <-chan struct{}) {
	h.mu.Lock()
	ch := h.changed
	h.mu.Unlock()
	n := 0
	for _, cn := range h.conns(groupID) {
		cn.mu.Lock()
		if cn.node.ConfigHash == hash {
			n++
		}
		cn.mu.Unlock()
	}
	return n, ch
}

func (h *hub) waitReported(ctx context.Context, groupID, hash string, want int) error {
	for {
		n, ch := h.reportedCount(groupID, hash)
		if n >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d instances report %s: %w", n, want, hash, ctx.Err())
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BenchmarkPushLatency measures the time from a committed write to every connected Kong data
// plane peer reporting the new hash in a ping, with 1, 10 and 100 peers.
func BenchmarkPushLatency(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run("peers="+strconv.Itoa(n), func(b *testing.B) {
			st := storetest.Open(b, "sqlite")
			// No spacing between pushes: iterations follow each other closely, and a lone
			// change is pushed at once anyway.
			e := newEnv(b, st, func(o *Options) { o.MinPushInterval = -1; o.FlushInterval = time.Second })
			e.write(e.group, "seed")
			cert, roots := e.cert(e.group)
			for range n {
				p, err := kongpeer.New(kongpeer.Options{Address: e.addr, RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(),
					Version: "3.9.1", Plugins: allPlugins()})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = p.Run(ctx); close(done) }()
				b.Cleanup(func() { cancel(); p.Close(); <-done })
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := e.c.hub.waitReported(ctx, e.group, e.expected(e.group), n); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			i := 0
			b.ResetTimer()
			for b.Loop() {
				i++
				start := time.Now()
				e.write(e.group, "svc-"+strconv.Itoa(i))
				want := e.expected(e.group)
				if err := e.c.hub.waitReported(ctx, e.group, want, n); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-p90")
		})
	}
}

// BenchmarkPushAcrossProcesses measures, with two control plane processes on one PostgreSQL
// database, the time from a write committed through process A to all 100 Kong data plane peers
// connected to process B reporting the new hash. B's revision poll is off: the change reaches it
// by the database's notification.
func BenchmarkPushAcrossProcesses(b *testing.B) {
	const n = 100
	opts := storetest.Options(b, "postgres")
	stA, err := sqlstore.Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stA.Close() })
	a := newEnv(b, stA, func(o *Options) { o.MinPushInterval = -1; o.FlushInterval = time.Second })
	a.write(a.group, "seed")
	procB, ln := serveProcess(b, opts, "process-b", time.Second)
	cert, roots := a.cert(a.group)
	for range n {
		p, err := kongpeer.New(kongpeer.Options{Address: ln.Addr().String(), RootCAs: roots, Certificate: cert, NodeID: uuid.NewString(),
			Version: "3.9.1", Plugins: allPlugins()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = p.Run(ctx); close(done) }()
		b.Cleanup(func() { cancel(); p.Close(); <-done })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := procB.hub.waitReported(ctx, a.group, a.expected(a.group), n); err != nil {
		b.Fatal(err)
	}
	// Each change replaces one service by another, so the configuration keeps its size (two
	// services) however many iterations run.
	svc, _ := schema.Lookup("services")
	a.write(a.group, "svc-0")
	var lat []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		start := time.Now()
		d, _, perr := svc.Process(schema.OpCreate, map[string]any{"name": "svc-" + strconv.Itoa(i), "host": "svc.internal"}, nil)
		if perr != nil {
			b.Fatal(perr)
		}
		_, err := a.es.Write(ctx, a.group, func(tx *entitystore.Tx) error {
			old, err := tx.FindBy(svc, "name", "svc-"+strconv.Itoa(i-1))
			if err != nil {
				return err
			}
			if _, err := tx.Delete(svc, old["id"].(string)); err != nil {
				return err
			}
			return tx.Insert(svc, d)
		})
		if err != nil {
			b.Fatal(err)
		}
		want := a.expected(a.group)
		if err := procB.hub.waitReported(ctx, a.group, want, n); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
}

// simEnv names the variables that turn the test binary into a process of simulated instances.
const simEnv = "GANTRY_CLUSTER_SIM"

// TestSimulatedInstances is not a test: run by BenchmarkMemoryPerInstance in a child process,
// it holds GANTRY_CLUSTER_SIM links open, each behaving as a quiet Kong data plane, so that the
// parent's heap holds only the control plane's side.
func TestSimulatedInstances(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(simEnv))
	if n == 0 {
		t.Skip("helper process for BenchmarkMemoryPerInstance")
	}
	dir := os.Getenv(simEnv + "_DIR")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}, MaxIdleConnsPerHost: -1}}
	info, _ := wire.EncodeBasicInfo(&wire.BasicInfo{Plugins: allPlugins()})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q := wire.NodeQuery{NodeID: uuid.NewString(), Hostname: "sim", Version: "3.9.1"}.RawQuery()
			ws, _, err := websocket.Dial(ctx, "wss://"+os.Getenv(simEnv+"_ADDR")+wire.OutletPath+"?"+q, &websocket.DialOptions{HTTPClient: hc})
			if err != nil {
				t.Error(err)
				return
			}
			ws.SetReadLimit(wire.DefaultMaxPayload)
			if err := ws.Write(ctx, websocket.MessageBinary, info); err != nil {
				t.Error(err)
				return
			}
			go func() {
				for {
					_, data, err := ws.Read(context.Background())
					if err != nil {
						return
					}
					if r, err := wire.DecodeReconfigure(data, 0); err == nil {
						// Report the applied hash, as a data plane does right after applying.
						pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
						_ = ws.Ping(pctx) // a lost report shows as a missing instance in the benchmark
						_ = r
						pcancel()
					}
				}
			}()
		})
	}
	wg.Wait()
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // any answer, or EOF, means stop
}

// BenchmarkMemoryPerInstance measures the control plane's heap per connected instance with
// 1,000 simulated instances held by a child process. Run with -benchtime=1x.
func BenchmarkMemoryPerInstance(b *testing.B) {
	const n = 1000
	st := storetest.Open(b, "sqlite")
	e := newEnv(b, st, func(o *Options) { o.FlushInterval = time.Second })
	e.write(e.group, "seed")
	issued, err := e.c.IssueCertificate(context.Background(), e.group, "sim")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for name, pem := range map[string]string{"tls.crt": issued.CertPEM, "tls.key": issued.KeyPEM, "ca.crt": issued.CAPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pem), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		cmd := exec.Command(os.Args[0], "-test.run=^TestSimulatedInstances$", "-test.v")
		cmd.Env = append(os.Environ(), simEnv+"="+strconv.Itoa(n), simEnv+"_DIR="+dir, simEnv+"_ADDR="+e.addr)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := e.c.hub.waitReported(ctx, e.group, e.expected(e.group), 0)
		for err == nil {
			if len(e.c.hub.conns(e.group)) >= n {
				break
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second) // let pushes and the catalogue flush settle
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		conns := len(e.c.hub.conns(e.group))
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(conns), "heap-bytes/instance")
		b.ReportMetric(float64(runtime.NumGoroutine())/float64(conns), "goroutines/instance")
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Logf("simulated instances: %v", err)
		}
	}
}
