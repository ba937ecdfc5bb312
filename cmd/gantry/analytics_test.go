package main

import (
	"errors"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
)

// TestAnalyticsFlags checks the --analytics* flags, from the command line
// and the environment, and their bounds.
func TestAnalyticsFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    analyticsOptions
		wantErr bool
	}{
		{name: "defaults", want: analyticsOptions{flushInterval: 10 * time.Second, seriesCap: analytics.DefaultSeriesCap, bufferMinutes: 60}},
		{name: "off", args: []string{"--analytics=false"},
			want: analyticsOptions{off: true, flushInterval: 10 * time.Second, seriesCap: analytics.DefaultSeriesCap, bufferMinutes: 60}},
		{name: "from the environment", env: map[string]string{"GANTRY_ANALYTICS": "false", "GANTRY_ANALYTICS_SERIES_CAP": "500",
			"GANTRY_ANALYTICS_FLUSH_INTERVAL": "5s", "GANTRY_ANALYTICS_BUFFER": "2h"},
			want: analyticsOptions{off: true, flushInterval: 5 * time.Second, seriesCap: 500, bufferMinutes: 120}},
		{name: "buffer rounded up", args: []string{"--analytics-buffer", "90s"},
			want: analyticsOptions{flushInterval: 10 * time.Second, seriesCap: analytics.DefaultSeriesCap, bufferMinutes: 2}},
		{name: "buffer too small", args: []string{"--analytics-buffer", "30s"}, wantErr: true},
		{name: "cap zero", args: []string{"--analytics-series-cap", "0"}, wantErr: true},
		{name: "cap too large", args: []string{"--analytics-series-cap", "100000"}, wantErr: true},
		{name: "flush zero", args: []string{"--analytics-flush-interval", "0s"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			rt, _, err := newRootCmd().Find([]string{"runtime"})
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := bindConfig(rt); err != nil {
				t.Fatal(err)
			}
			got, err := analyticsFlags(rt.Flags())
			var ue *usageError
			if tt.wantErr {
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
