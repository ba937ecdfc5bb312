package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestCertificatesGenerateIfMissing checks that --if-missing issues a certificate only when one of
// tls.crt, tls.key and ca.crt is absent from --out-dir, so that a deployment's init step can run
// at every start without pinning a new certificate each time.
func TestCertificatesGenerateIfMissing(t *testing.T) {
	var issued atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		group := map[string]any{"id": fakeGroupID, "name": "default", "config": map[string]any{"control_plane_endpoint": "https://cp:8005"}}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v2/runtime-groups":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{group}})
		case r.URL.Path == "/v2/runtime-groups/"+fakeGroupID:
			_ = json.NewEncoder(w).Encode(group)
		case r.URL.Path == "/v2/runtime-groups/"+fakeGroupID+"/dp-client-certificates/generate" && r.Method == http.MethodPost:
			issued.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"item": map[string]any{"id": "c1", "cert": "NEW CERT"}, "key": "NEW KEY", "ca_cert": "NEW CA"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	cases := []struct {
		name       string
		existing   []string // files present in --out-dir before the run
		ifMissing  bool
		wantIssued bool
	}{
		{"all present: kept", []string{"tls.crt", "tls.key", "ca.crt"}, true, false},
		{"none present: issued", nil, true, true},
		{"key missing: issued", []string{"tls.crt", "ca.crt"}, true, true},
		{"without the flag: issued over existing files", []string{"tls.crt", "tls.key", "ca.crt"}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range c.existing {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("OLD"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := issued.Load()
			args := []string{"certificates", "generate", "--group", "default", "--out-dir", dir}
			if c.ifMissing {
				args = append(args, "--if-missing")
			}
			out, err := execute(t, srv.URL, "", args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := issued.Load() > before; got != c.wantIssued {
				t.Fatalf("issued=%v, want %v; output:\n%s", got, c.wantIssued, out)
			}
			want := map[string]string{"tls.crt": "NEW CERT", "tls.key": "NEW KEY", "ca.crt": "NEW CA"}
			for f, pem := range want {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if !c.wantIssued {
					pem = "OLD"
				}
				if string(b) != pem {
					t.Errorf("%s = %q, want %q", f, b, pem)
				}
			}
			if !c.wantIssued && !strings.Contains(out, "already") {
				t.Errorf("output does not say the files were kept:\n%s", out)
			}
		})
	}
}
