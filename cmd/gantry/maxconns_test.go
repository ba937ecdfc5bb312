package main

import (
	"errors"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/gateway"
)

// TestMaxConnectionsFlag checks --max-connections and its environment
// variable, GANTRY_MAX_CONNECTIONS.
func TestMaxConnectionsFlag(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		want int
	}{
		{"default", "", gateway.DefaultMaxConnections},
		{"from the environment", "123", 123},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GANTRY_MAX_CONNECTIONS", tt.env)
			}
			rt, _, err := newRootCmd().Find([]string{"runtime"})
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.ParseFlags(nil); err != nil {
				t.Fatal(err)
			}
			if err := bindConfig(rt); err != nil {
				t.Fatal(err)
			}
			if got, _ := rt.Flags().GetInt("max-connections"); got != tt.want {
				t.Errorf("max-connections = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("not a number", func(t *testing.T) {
		t.Setenv("GANTRY_MAX_CONNECTIONS", "lots")
		rt, _, _ := newRootCmd().Find([]string{"runtime"})
		if err := rt.ParseFlags(nil); err != nil {
			t.Fatal(err)
		}
		var ue *usageError
		if err := bindConfig(rt); !errors.As(err, &ue) {
			t.Errorf("err = %v, want a usage error", err)
		}
	})
}
