package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// syncBuffer is an io.Writer safe for the server goroutine and the test.
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

// startServer runs the control plane and returns its API URL, its output and a function that
// stops it.
func startServer(t *testing.T, opts Options) (base string, out *syncBuffer, stop func()) {
	t.Helper()
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	opts.Listen, opts.Region, opts.Out = "127.0.0.1:0", "us", out
	opts.Ready = func(a net.Addr) { addrc <- a }
	go func() { done <- Run(ctx, opts) }()
	select {
	case a := <-addrc:
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		t.Cleanup(stop)
		return "http://" + a.String(), out, stop
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return "", nil, nil
}

func login(t *testing.T, base, email, pw string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": email, "password": pw})
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/v3/authenticate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

var passwordRE = regexp.MustCompile(`password: (\S+)`)

// TestAdminLogin: the first start makes the administrator's login and prints a generated password
// once; later starts keep it, whatever password they are given; bad settings stop the start.
func TestAdminLogin(t *testing.T) {
	dir := storetest.Options(t, "sqlite").DataDir
	const token = "gpat_adminlogintesttoken"
	base, out, stop := startServer(t, Options{DataDir: dir, AdminEmail: "Ops@Example.com", AdminToken: token})
	m := passwordRE.FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "ops@example.com") {
		t.Fatalf("the first start does not print the administrator's login:\n%s", out.String())
	}
	if code := login(t, base, "ops@example.com", m[1]); code != 200 {
		t.Fatalf("login with the printed password: %d", code)
	}
	if code := login(t, base, "ops@example.com", "Another password 1"); code != 401 {
		t.Fatalf("login with a wrong password: %d", code)
	}
	stop()

	base, out, stop = startServer(t, Options{DataDir: dir, AdminToken: token, AdminPassword: "Another password 1"})
	if strings.Contains(out.String(), "password") {
		t.Fatalf("a later start printed a password:\n%s", out.String())
	}
	if code := login(t, base, "ops@example.com", m[1]); code != 200 {
		t.Fatalf("the first password after a restart: %d", code)
	}
	if code := login(t, base, "ops@example.com", "Another password 1"); code != 401 {
		t.Fatalf("a later start replaced the password: %d", code)
	}
	stop()

	// A configured password is used as given, and not printed.
	base, out, _ = startServer(t, Options{DataDir: storetest.Options(t, "sqlite").DataDir, AdminPassword: "Configured password 1"})
	if strings.Contains(out.String(), "Configured password 1") {
		t.Fatalf("the configured password was printed:\n%s", out.String())
	}
	if code := login(t, base, DefaultAdminEmail, "Configured password 1"); code != 200 {
		t.Fatalf("login with the configured password: %d", code)
	}

	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"weak password", Options{AdminPassword: "short"}, "GANTRY_ADMIN_PASSWORD"},
		{"bad email", Options{AdminEmail: "not an email"}, "--admin-email"},
		{"negative idle", Options{SessionIdleTimeout: -time.Second}, "--session-idle-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Listen, tc.opts.Region, tc.opts.DataDir = "127.0.0.1:0", "us", t.TempDir()
			err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
