package labels_test

import (
	"strconv"
	"testing"

	"github.com/gantry-gw/gantry/internal/metrics/labels"
)

func TestMethod(t *testing.T) {
	tests := []struct {
		method, want string
	}{
		{"GET", "GET"},
		{"HEAD", "HEAD"},
		{"POST", "POST"},
		{"PUT", "PUT"},
		{"PATCH", "PATCH"},
		{"DELETE", "DELETE"},
		{"OPTIONS", "OPTIONS"},
		{"CONNECT", "CONNECT"},
		{"TRACE", "TRACE"},
		{"get", labels.Other},
		{"Get", labels.Other},
		{"PROPFIND", labels.Other},
		{"GET ", labels.Other},
		{"", labels.Other},
		{"INVENTED12345", labels.Other},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.method), func(t *testing.T) {
			if got := labels.Method(tt.method); got != tt.want {
				t.Errorf("Method(%q) = %q, want %q", tt.method, got, tt.want)
			}
		})
	}
}

func TestStatusCode(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{
		{100, "100"},
		{200, "200"},
		{404, "404"},
		{499, "499"},
		{599, "599"},
		{99, labels.OtherStatus},
		{600, labels.OtherStatus},
		{999, labels.OtherStatus},
		{0, labels.OtherStatus},
		{-200, labels.OtherStatus},
		{1000, labels.OtherStatus},
		{1 << 40, labels.OtherStatus},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			if got := labels.StatusCode(tt.code); got != tt.want {
				t.Errorf("StatusCode(%d) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}

// TestValuesAreFinite feeds many inputs and checks the set of values stays the listed one.
func TestValuesAreFinite(t *testing.T) {
	methods := map[string]bool{}
	statuses := map[string]bool{}
	for i := -2000; i < 20000; i++ {
		methods[labels.Method("M"+strconv.Itoa(i))] = true
		statuses[labels.StatusCode(i)] = true
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		methods[labels.Method(m)] = true
	}
	if len(methods) != 10 {
		t.Errorf("%d method values, want 10: %v", len(methods), methods)
	}
	if len(statuses) != 501 {
		t.Errorf("%d status values, want 501", len(statuses))
	}
}

func TestNoAllocations(t *testing.T) {
	method := string([]byte("PATCH")) // not the constant, as a parsed request's method is not
	n := testing.AllocsPerRun(1000, func() {
		_ = labels.Method(method)
		_ = labels.StatusCode(503)
		_ = labels.StatusCode(777)
	})
	if n != 0 {
		t.Errorf("allocs = %v; want 0", n)
	}
}
