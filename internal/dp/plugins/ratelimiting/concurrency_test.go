package ratelimiting

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// TestLocalExactUnderConcurrency checks no two concurrent requests take
// the last slot: exactly `minute` requests pass.
func TestLocalExactUnderConcurrency(t *testing.T) {
	setClock(t, fixed)
	st := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(base(func(c *Config) {
		c.LimitBy, c.Minute, c.Hour = "ip", f(100), f(1000)
	}))}}})
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				switch st.Do(req("10.10.0.1")).Status {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || limited.Load() != 100 {
		t.Errorf("passed %d, limited %d; want 100 and 100", ok.Load(), limited.Load())
	}
}
