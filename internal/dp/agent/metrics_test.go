package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStatusHandlerMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "kong_datastore_reachable 1\n")
	})
	tests := []struct {
		name     string
		metrics  http.Handler
		method   string
		wantCode int
		wantBody string
	}{
		{"served", metrics, "GET", 200, "kong_datastore_reachable 1\n"},
		{"read only", metrics, "POST", 405, ""},
		{"not configured", nil, "GET", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(Options{ControlPlane: "cp:8005", TLSConfig: newPKI(t).clientTLS(), NodeID: "n1", Hostname: "h1",
				Version: "3.9.1", Applier: &fakeGateway{}, Metrics: tt.metrics})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, "/metrics", nil))
			if rec.Code != tt.wantCode || (tt.wantBody != "" && rec.Body.String() != tt.wantBody) {
				t.Fatalf("%d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			// The status endpoints stay where they were.
			rec = httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
			if rec.Code != 200 {
				t.Fatalf("/status: %d", rec.Code)
			}
		})
	}
}
