package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	const (
		stdCalled   = `{"finding":{"osv":"GO-1","fixed_version":"v1.26.10","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"ReadRequest"}]}}`
		stdImported = `{"finding":{"osv":"GO-2","fixed_version":"v1.26.9","trace":[{"module":"stdlib","package":"crypto/x509"}]}}`
		modCalled   = `{"finding":{"osv":"GO-3","fixed_version":"v1.2.4","trace":[{"module":"example.com/m","version":"v1.2.3","package":"example.com/m/p","function":"F"}]}}`
		modImported = `{"finding":{"osv":"GO-4","fixed_version":"v2.0.1","trace":[{"module":"example.com/n","version":"v2.0.0"}]}}`
		progress    = `{"progress":{"message":"Scanning your code"}}`
	)
	tests := []struct {
		name   string
		in     string
		status int
		says   []string
	}{
		{"nothing", progress, 0, []string{"no called vulnerability"}},
		{"standard library only", progress + stdCalled + stdImported, 0, []string{"warning: GO-1", "Go v1.26.10", "(1 in the standard library)"}},
		{"module imported, not called", modImported + stdImported, 0, []string{"(0 in the standard library)"}},
		{"module called", stdCalled + modCalled, 3, []string{"error: GO-3 in example.com/m@v1.2.3 (fixed in v1.2.4)", "warning: GO-1"}},
		{"bad input", `{"finding":`, 2, []string{"vulngate: reading"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if got := run(strings.NewReader(tt.in), &out); got != tt.status {
				t.Errorf("status %d, want %d; output:\n%s", got, tt.status, out.String())
			}
			for _, s := range tt.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			if tt.status != 3 && strings.Contains(out.String(), "error:") {
				t.Errorf("an error line without failing:\n%s", out.String())
			}
		})
	}
}
