package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// switchHealth is a Health whose state the test flips.
type switchHealth struct{ down atomic.Bool }

func (s *switchHealth) Healthy() bool { return !s.down.Load() }

func mustNew(t testing.TB, opts Options) *Balancer {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func targets(weights ...int) []TargetConfig {
	out := make([]TargetConfig, len(weights))
	for i, w := range weights {
		out[i] = TargetConfig{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
	}
	return out
}

func pickN(t *testing.T, b *Balancer, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		counts[tg.Address]++
		b.Done(tg)
	}
	return counts
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown algorithm", Options{Algorithm: "random"}, "unknown algorithm"},
		{"latency unsupported", Options{Algorithm: AlgorithmLatency}, "not supported"},
		{"slots too small", Options{Slots: 9}, "slots 9 out of range"},
		{"slots too large", Options{Slots: 65537}, "slots 65537 out of range"},
		{"threshold", Options{Threshold: 101}, "threshold"},
		{"no port", Options{Targets: []TargetConfig{{Address: "a", Weight: 1}}}, "missing port"},
		{"bad port", Options{Targets: []TargetConfig{{Address: "a:x", Weight: 1}}}, "invalid host or port"},
		{"negative weight", Options{Targets: []TargetConfig{{Address: "a:1", Weight: -1}}}, "weight -1"},
		{"weight too big", Options{Targets: []TargetConfig{{Address: "a:1", Weight: 65536}}}, "weight 65536"},
		{"duplicate", Options{Targets: []TargetConfig{{Address: "a:1", Weight: 1}, {Address: "a:1", Weight: 2}}}, "duplicate target"},
		{"header name missing", Options{Algorithm: AlgorithmConsistentHashing, Hash: HashOptions{On: HashHeader}}, "header requires a name"},
		{"cookie fallback", Options{Algorithm: AlgorithmConsistentHashing, Hash: HashOptions{On: HashIP, Fallback: HashCookie}}, "cookie is not allowed"},
		{"unknown hash input", Options{Algorithm: AlgorithmConsistentHashing, Hash: HashOptions{On: "body"}}, "unknown hash input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestNormalizeTarget(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com:8000"},
		{"example.com:81", "example.com:81"},
		{"10.0.0.1", "10.0.0.1:8000"},
		{"[::1]:9000", "[::1]:9000"},
		{"[::1]", "[::1]:8000"},
		{"::1", "[::1]:8000"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeTarget(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := NormalizeTarget("host:99999"); err == nil {
		t.Error("NormalizeTarget accepted port 99999")
	}
}

func TestRoundRobinSmoothSequence(t *testing.T) {
	b := mustNew(t, Options{Targets: []TargetConfig{
		{Address: "a:1", Weight: 5}, {Address: "b:1", Weight: 1}, {Address: "c:1", Weight: 1},
	}})
	var got []string
	for range 14 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tg.Host)
	}
	// nginx's smooth weighted round-robin interleaves the heavy target.
	want := "a a b a c a a a a b a c a a"
	if strings.Join(got, " ") != want {
		t.Fatalf("sequence = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestRoundRobinExactCounts(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		rounds  int
	}{
		{"equal", []int{100, 100, 100}, 7},
		{"skewed", []int{5, 1, 1}, 100},
		{"with weight zero", []int{3, 0, 2}, 50},
		{"large weights", []int{65535, 1}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, Options{Targets: targets(tc.weights...)})
			sum := 0
			for _, w := range tc.weights {
				sum += w
			}
			counts := pickN(t, b, sum*tc.rounds)
			for i, w := range tc.weights {
				addr := fmt.Sprintf("10.0.0.%d:80", i+1)
				if counts[addr] != w*tc.rounds {
					t.Errorf("%s picked %d times, want exactly %d", addr, counts[addr], w*tc.rounds)
				}
			}
		})
	}
}

func TestPickSkipsUnhealthy(t *testing.T) {
	for _, algo := range []Algorithm{AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing} {
		t.Run(string(algo), func(t *testing.T) {
			hs := []*switchHealth{{}, {}, {}}
			cfg := targets(1, 1, 1)
			for i := range cfg {
				cfg[i].Health = hs[i]
			}
			b := mustNew(t, Options{Algorithm: algo, Targets: cfg})
			hs[1].down.Store(true)
			for k := range 300 {
				a := Attempt{Key: fmt.Sprint("key-", k)}
				tg, err := b.Pick(&a)
				if err != nil {
					t.Fatal(err)
				}
				if tg.Address == "10.0.0.2:80" {
					t.Fatalf("picked unhealthy target on pick %d", k)
				}
				b.Done(tg)
			}
			hs[0].down.Store(true)
			hs[2].down.Store(true)
			if tg, err := b.Pick(&Attempt{Key: "k"}); !errors.Is(err, ErrNoHealthyTarget) {
				t.Fatalf("all down: Pick = %v, %v; want ErrNoHealthyTarget", tg, err)
			}
			if b.Healthy() {
				t.Error("Healthy() = true with every target down")
			}
			hs[1].down.Store(false)
			tg, err := b.Pick(&Attempt{Key: "k"})
			if err != nil || tg.Address != "10.0.0.2:80" {
				t.Fatalf("after recovery Pick = %v, %v; want 10.0.0.2:80", tg, err)
			}
		})
	}
}

func TestPickWeightZeroOnly(t *testing.T) {
	for _, algo := range []Algorithm{AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing} {
		t.Run(string(algo), func(t *testing.T) {
			b := mustNew(t, Options{Algorithm: algo, Targets: targets(0, 0)})
			if _, err := b.Pick(nil); !errors.Is(err, ErrNoHealthyTarget) {
				t.Fatalf("Pick err = %v, want ErrNoHealthyTarget", err)
			}
			empty := mustNew(t, Options{Algorithm: algo})
			if _, err := empty.Pick(nil); !errors.Is(err, ErrNoHealthyTarget) {
				t.Fatalf("no targets: Pick err = %v, want ErrNoHealthyTarget", err)
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	hs := []*switchHealth{{}, {}, {}, {}}
	cfg := targets(1, 1, 1, 1)
	for i := range cfg {
		cfg[i].Health = hs[i]
	}
	b := mustNew(t, Options{Threshold: 50, Targets: cfg})
	hs[0].down.Store(true)
	hs[1].down.Store(true)
	if _, err := b.Pick(nil); err != nil {
		t.Fatalf("at 50%% healthy Pick err = %v, want success", err)
	}
	hs[2].down.Store(true)
	if _, err := b.Pick(nil); !errors.Is(err, ErrBalancerUnhealthy) {
		t.Fatalf("at 25%% healthy Pick err = %v, want ErrBalancerUnhealthy", err)
	}
	if b.Healthy() {
		t.Error("Healthy() = true below threshold")
	}
}

func TestRetriesPickDifferentTargets(t *testing.T) {
	for _, algo := range []Algorithm{AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing} {
		t.Run(string(algo), func(t *testing.T) {
			b := mustNew(t, Options{Algorithm: algo, Targets: targets(10, 10, 10)})
			for k := range 20 {
				a := Attempt{Key: fmt.Sprint("user-", k)}
				seen := map[string]bool{}
				for range 3 {
					tg, err := b.Pick(&a)
					if err != nil {
						t.Fatal(err)
					}
					if seen[tg.Address] {
						t.Fatalf("request %d: retry went back to %s while others were untried", k, tg.Address)
					}
					seen[tg.Address] = true
					b.Done(tg)
				}
				// All tried: a fourth try still gets a target.
				tg, err := b.Pick(&a)
				if err != nil {
					t.Fatalf("fourth try: %v", err)
				}
				b.Done(tg)
				if a.Tries() != 4 {
					t.Fatalf("Tries() = %d, want 4", a.Tries())
				}
			}
			single := mustNew(t, Options{Algorithm: algo, Targets: targets(1)})
			var a Attempt
			for range 3 {
				tg, err := single.Pick(&a)
				if err != nil || tg.Address != "10.0.0.1:80" {
					t.Fatalf("single target retry = %v, %v", tg, err)
				}
				single.Done(tg)
			}
		})
	}
}

func TestLeastConnectionsPrefersIdle(t *testing.T) {
	b := mustNew(t, Options{Algorithm: AlgorithmLeastConnections, Targets: targets(1, 1)})
	first, err := b.Pick(nil)
	if err != nil {
		t.Fatal(err)
	}
	// first is busy (no Done yet): every following pick must go to the idle one.
	for range 5 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if tg == first {
			t.Fatalf("picked busy target %s while the other was idle", tg.Address)
		}
		b.Done(tg)
	}
	if first.Active() != 1 {
		t.Fatalf("busy target Active() = %d, want 1", first.Active())
	}
	b.Done(first)
	if first.Active() != 0 {
		t.Fatalf("after Done Active() = %d, want 0", first.Active())
	}
}

func TestLeastConnectionsWeighted(t *testing.T) {
	// With weights 3 and 1 and connections held open, the heavy target takes
	// three times as many concurrent connections.
	b := mustNew(t, Options{Algorithm: AlgorithmLeastConnections, Targets: targets(3, 1)})
	counts := map[string]int{}
	for range 40 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[tg.Address]++
	}
	if counts["10.0.0.1:80"] != 30 || counts["10.0.0.2:80"] != 10 {
		t.Fatalf("held connections = %v, want 30/10", counts)
	}
}

func TestLeastConnectionsTiesRotate(t *testing.T) {
	b := mustNew(t, Options{Algorithm: AlgorithmLeastConnections, Targets: targets(1, 1, 1)})
	counts := pickN(t, b, 300)
	for addr, n := range counts {
		if n != 100 {
			t.Errorf("%s got %d of 300 sequential picks, want 100", addr, n)
		}
	}
}

func hashBalancer(t testing.TB, slots int, cfg []TargetConfig) *Balancer {
	return mustNew(t, Options{Algorithm: AlgorithmConsistentHashing, Slots: slots,
		Hash: HashOptions{On: HashHeader, OnHeader: "x-user"}, Targets: cfg})
}

func TestConsistentHashingStable(t *testing.T) {
	cfg := targets(100, 100, 100)
	b1 := hashBalancer(t, 0, cfg)
	reversed := []TargetConfig{cfg[2], cfg[0], cfg[1]}
	b2 := hashBalancer(t, 0, reversed)
	counts := map[string]int{}
	for k := range 3000 {
		key := fmt.Sprint("user-", k)
		t1, err1 := b1.Pick(&Attempt{Key: key})
		again, _ := b1.Pick(&Attempt{Key: key})
		t2, err2 := b2.Pick(&Attempt{Key: key})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if t1 != again {
			t.Fatalf("key %q moved between picks: %s then %s", key, t1.Address, again.Address)
		}
		if t1.Address != t2.Address {
			t.Fatalf("key %q maps to %s, but to %s when targets are listed in another order", key, t1.Address, t2.Address)
		}
		counts[t1.Address]++
	}
	for addr, n := range counts {
		if n < 700 || n > 1300 {
			t.Errorf("%s got %d of 3000 keys; want roughly a third", addr, n)
		}
	}
}

func TestConsistentHashingAddTargetMovesFewKeys(t *testing.T) {
	before := hashBalancer(t, 0, targets(100, 100, 100))
	after := hashBalancer(t, 0, targets(100, 100, 100, 100))
	const keys = 4000
	moved, movedElsewhere := 0, 0
	for k := range keys {
		key := fmt.Sprint("session-", k)
		t1, _ := before.Pick(&Attempt{Key: key})
		t2, _ := after.Pick(&Attempt{Key: key})
		if t1.Address != t2.Address {
			moved++
			if t2.Address != "10.0.0.4:80" {
				movedElsewhere++
			}
		}
	}
	// Ideal is 1/4 of the keys, all to the new target; modulo hashing would
	// move about 3/4.
	if frac := float64(moved) / keys; frac < 0.15 || frac > 0.35 {
		t.Errorf("%.1f%% of keys moved, want about 25%%", frac*100)
	}
	if frac := float64(movedElsewhere) / keys; frac > 0.02 {
		t.Errorf("%.1f%% of keys moved between old targets", frac*100)
	}
}

func TestConsistentHashingUnhealthyMovesOnlyItsKeys(t *testing.T) {
	hs := []*switchHealth{{}, {}, {}}
	cfg := targets(1, 1, 1)
	for i := range cfg {
		cfg[i].Health = hs[i]
	}
	b := hashBalancer(t, 0, cfg)
	before := map[string]string{}
	for k := range 1000 {
		key := fmt.Sprint(k)
		tg, _ := b.Pick(&Attempt{Key: key})
		before[key] = tg.Address
	}
	hs[0].down.Store(true)
	for key, addr := range before {
		tg, err := b.Pick(&Attempt{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if addr != "10.0.0.1:80" && tg.Address != addr {
			t.Fatalf("key %s on healthy %s moved to %s", key, addr, tg.Address)
		}
		if tg.Address == "10.0.0.1:80" {
			t.Fatalf("key %s still on the unhealthy target", key)
		}
	}
}

func TestConsistentHashingWeights(t *testing.T) {
	b := hashBalancer(t, 0, targets(300, 100))
	counts := map[string]int{}
	for k := range 8000 {
		tg, _ := b.Pick(&Attempt{Key: fmt.Sprint("k", k)})
		counts[tg.Address]++
	}
	heavy := float64(counts["10.0.0.1:80"]) / 8000
	if heavy < 0.65 || heavy > 0.85 {
		t.Errorf("weight-300 target took %.0f%% of keys, want about 75%%", heavy*100)
	}
}

func TestConsistentHashingSmallSlots(t *testing.T) {
	// Kong builds at least 1000 points whatever `slots` says.
	b := hashBalancer(t, 10, targets(1, 1))
	if len(b.ring) != minRingPoints {
		t.Fatalf("ring size = %d, want %d", len(b.ring), minRingPoints)
	}
	b = hashBalancer(t, 20000, targets(1, 1))
	if len(b.ring) != 20000 {
		t.Fatalf("ring size = %d, want 20000", len(b.ring))
	}
}

func TestHashKey(t *testing.T) {
	captures := map[string]string{"id": "42"}
	tests := []struct {
		name       string
		hash       HashOptions
		in         HashInput
		want       string
		wantCookie bool
	}{
		{"consumer", HashOptions{On: HashConsumer}, HashInput{ConsumerID: "c1", CredentialID: "cred"}, "c1", false},
		{"consumer falls to credential", HashOptions{On: HashConsumer}, HashInput{CredentialID: "cred"}, "cred", false},
		{"ip", HashOptions{On: HashIP}, HashInput{ClientIP: "192.0.2.1"}, "192.0.2.1", false},
		{"header", HashOptions{On: HashHeader, OnHeader: "x-user"}, HashInput{Header: http.Header{"X-User": {"u1"}}}, "u1", false},
		{"repeated header", HashOptions{On: HashHeader, OnHeader: "X-User"}, HashInput{Header: http.Header{"X-User": {"u1", "u2"}}}, "u1, u2", false},
		{"header falls back to ip", HashOptions{On: HashHeader, OnHeader: "x-user", Fallback: HashIP}, HashInput{ClientIP: "192.0.2.9"}, "192.0.2.9", false},
		{"empty header falls back", HashOptions{On: HashHeader, OnHeader: "x-user", Fallback: HashPath}, HashInput{Header: http.Header{"X-User": {""}}, Path: "/p"}, "/p", false},
		{"fallback header", HashOptions{On: HashConsumer, Fallback: HashHeader, FallbackHeader: "x-b"}, HashInput{Header: http.Header{"X-B": {"b"}}}, "b", false},
		{"cookie present", HashOptions{On: HashCookie, OnCookie: "sid"}, HashInput{Header: http.Header{"Cookie": {"a=1; sid=abc; z=2"}}}, "abc", false},
		{"cookie absent", HashOptions{On: HashCookie, OnCookie: "sid", OnCookiePath: "/app"}, HashInput{Header: http.Header{"Cookie": {"a=1"}}}, "", true},
		{"path", HashOptions{On: HashPath}, HashInput{Path: "/a/b"}, "/a/b", false},
		{"query arg", HashOptions{On: HashQueryArg, OnQueryArg: "u"}, HashInput{RawQuery: "x=1&u=al%20ice"}, "al ice", false},
		{"query arg repeated sorted", HashOptions{On: HashQueryArg, OnQueryArg: "u"}, HashInput{RawQuery: "u=b&u=a&u=c"}, "a,b,c", false},
		{"query arg flag", HashOptions{On: HashQueryArg, OnQueryArg: "u"}, HashInput{RawQuery: "u&v=1"}, "true", false},
		{"query arg encoded name", HashOptions{On: HashQueryArg, OnQueryArg: "my u"}, HashInput{RawQuery: "my+u=z"}, "z", false},
		{"query arg missing falls back", HashOptions{On: HashQueryArg, OnQueryArg: "u", Fallback: HashQueryArg, FallbackQueryArg: "v"}, HashInput{RawQuery: "v=2"}, "2", false},
		{"uri capture", HashOptions{On: HashURICapture, OnURICapture: "id"}, HashInput{URICaptures: captures}, "42", false},
		{"uri capture fallback", HashOptions{On: HashIP, Fallback: HashURICapture, FallbackURICapture: "id"}, HashInput{URICaptures: captures}, "42", false},
		{"nothing", HashOptions{On: HashIP, Fallback: HashPath}, HashInput{}, "", false},
		{"none ignores fallback", HashOptions{On: HashNone, Fallback: HashIP}, HashInput{ClientIP: "192.0.2.1"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, Options{Algorithm: AlgorithmConsistentHashing, Hash: tc.hash, Targets: targets(1, 1)})
			key, cookie := b.HashKey(&tc.in)
			if tc.wantCookie {
				if len(key) != 36 {
					t.Fatalf("minted cookie key %q, want a UUID", key)
				}
				want := "sid=" + key + "; Path=/app; Same-Site=Lax; HttpOnly"
				if cookie != want {
					t.Fatalf("Set-Cookie = %q, want %q", cookie, want)
				}
				return
			}
			if key != tc.want || cookie != "" {
				t.Fatalf("HashKey = %q, %q; want %q, no cookie", key, cookie, tc.want)
			}
		})
	}
	rr := mustNew(t, Options{Targets: targets(1)})
	if key, _ := rr.HashKey(&HashInput{ClientIP: "1.2.3.4"}); key != "" {
		t.Errorf("round-robin HashKey = %q, want empty", key)
	}
}

func TestHashFallbackPicksByFallbackKey(t *testing.T) {
	b := mustNew(t, Options{Algorithm: AlgorithmConsistentHashing,
		Hash:    HashOptions{On: HashHeader, OnHeader: "x-user", Fallback: HashIP},
		Targets: targets(1, 1, 1, 1)})
	// Without the header, the same client IP always reaches the same target
	// and different IPs spread out.
	seen := map[string]bool{}
	for i := range 50 {
		ip := fmt.Sprintf("192.0.2.%d", i)
		key, _ := b.HashKey(&HashInput{ClientIP: ip})
		t1, _ := b.Pick(&Attempt{Key: key})
		key2, _ := b.HashKey(&HashInput{ClientIP: ip, Header: http.Header{}})
		t2, _ := b.Pick(&Attempt{Key: key2})
		if t1 != t2 {
			t.Fatalf("ip %s mapped to %s and %s", ip, t1.Address, t2.Address)
		}
		seen[t1.Address] = true
	}
	if len(seen) < 3 {
		t.Errorf("50 client IPs reached only %d targets", len(seen))
	}
}

func TestPickAllocs(t *testing.T) {
	tests := []struct {
		name string
		algo Algorithm
	}{
		{"round-robin", AlgorithmRoundRobin},
		{"least-connections", AlgorithmLeastConnections},
		{"consistent-hashing", AlgorithmConsistentHashing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustNew(t, Options{Algorithm: tc.algo, Targets: targets(5, 3, 2, 1)})
			allocs := testing.AllocsPerRun(1000, func() {
				a := Attempt{Key: "precomputed-user-key"}
				tg, err := b.Pick(&a)
				if err != nil {
					panic(err)
				}
				b.Done(tg)
				tg, _ = b.Pick(&a) // A retry.
				b.Done(tg)
			})
			if allocs != 0 {
				t.Fatalf("Pick allocates %v times per run, want 0", allocs)
			}
		})
	}
}

func TestHashKeyAllocs(t *testing.T) {
	b := mustNew(t, Options{Algorithm: AlgorithmConsistentHashing,
		Hash:    HashOptions{On: HashCookie, OnCookie: "sid"},
		Targets: targets(1, 1)})
	in := &HashInput{Header: http.Header{"Cookie": {"a=1; sid=abc"}}}
	if n := testing.AllocsPerRun(1000, func() { b.HashKey(in) }); n != 0 {
		t.Fatalf("HashKey with a present cookie allocates %v times, want 0", n)
	}
	q := mustNew(t, Options{Algorithm: AlgorithmConsistentHashing,
		Hash:    HashOptions{On: HashQueryArg, OnQueryArg: "u"},
		Targets: targets(1, 1)})
	qin := &HashInput{RawQuery: "a=1&u=alice&b=2"}
	if n := testing.AllocsPerRun(1000, func() { q.HashKey(qin) }); n != 0 {
		t.Fatalf("HashKey with a plain query arg allocates %v times, want 0", n)
	}
}

func benchTargets(n int) []TargetConfig {
	cfg := make([]TargetConfig, n)
	for i := range cfg {
		cfg[i] = TargetConfig{Address: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1), Weight: 100, Health: &switchHealth{}}
	}
	return cfg
}

func BenchmarkPick(b *testing.B) {
	for _, algo := range []Algorithm{AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing} {
		for _, n := range []int{4, 64} {
			b.Run(fmt.Sprintf("%s/targets=%d", algo, n), func(b *testing.B) {
				bal := mustNew(b, Options{Algorithm: algo, Targets: benchTargets(n)})
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					a := Attempt{Key: "user-1234567"}
					tg, err := bal.Pick(&a)
					if err != nil {
						b.Fatal(err)
					}
					bal.Done(tg)
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	for _, algo := range []Algorithm{AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing} {
		b.Run(string(algo), func(b *testing.B) {
			bal := mustNew(b, Options{Algorithm: algo, Targets: benchTargets(8)})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					a := Attempt{Key: "user-1234567"}
					tg, err := bal.Pick(&a)
					if err != nil {
						b.Fatal(err)
					}
					bal.Done(tg)
				}
			})
		})
	}
}

func BenchmarkHashKey(b *testing.B) {
	bal := mustNew(b, Options{Algorithm: AlgorithmConsistentHashing,
		Hash:    HashOptions{On: HashHeader, OnHeader: "X-User", Fallback: HashIP},
		Targets: benchTargets(8)})
	in := &HashInput{Header: http.Header{"X-User": {"alice"}}, ClientIP: "192.0.2.1"}
	b.ReportAllocs()
	for b.Loop() {
		key, _ := bal.HashKey(in)
		a := Attempt{Key: key}
		tg, _ := bal.Pick(&a)
		bal.Done(tg)
	}
}

func BenchmarkNewConsistentHashing(b *testing.B) {
	cfg := benchTargets(16)
	b.ReportAllocs()
	for b.Loop() {
		mustNew(b, Options{Algorithm: AlgorithmConsistentHashing, Targets: cfg})
	}
}
