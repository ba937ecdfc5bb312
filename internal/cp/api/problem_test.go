package api_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/api"
)

func TestWriteJSON(t *testing.T) {
	t.Run("encodes", func(t *testing.T) {
		rec := httptest.NewRecorder()
		api.WriteJSON(rec, http.StatusCreated, map[string]string{"id": "x"})
		if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != "{\"id\":\"x\"}\n" {
			t.Fatalf("%d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
	})
	t.Run("unencodable value is a 500 problem", func(t *testing.T) {
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Request-Id", "req-1")
		api.WriteJSON(rec, http.StatusOK, map[string]float64{"n": math.NaN()})
		if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		var p api.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusInternalServerError || p.Instance != "gantry:trace:req-1" || p.Detail == "" {
			t.Fatalf("problem: %+v", p)
		}
	})
}
