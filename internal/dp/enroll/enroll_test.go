package enroll

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, want string
	}{
		{"gent_abc." + fp, ""},
		{"gpat_abc." + fp, "not an enrollment token"},
		{"gent_abc", "not an enrollment token"},
		{"gent_abc." + fp[:10], "damaged"},
		{"gent_abc." + strings.Repeat("zz", 32), "damaged"},
	} {
		_, got, err := ParseToken(tc.in)
		switch {
		case tc.want == "" && (err != nil || got != fp):
			t.Errorf("%q: %q %v", tc.in, got, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error about %q", tc.in, err, tc.want)
		}
	}
}

// TestEnrollAtTheAPIPort: a plain HTTP address (the API port) is explained, and nothing is written.
func TestEnrollAtTheAPIPort(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	_, err := Enroll(context.Background(), Options{ControlPlane: srv.Listener.Addr().String(), Token: "gent_x." + strings.Repeat("00", 32), Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "is --control-plane the API port") {
		t.Fatalf("err %v", err)
	}
	if FilesIn(dir).Exist() {
		t.Fatal("files written after a failed enrollment")
	}
}
