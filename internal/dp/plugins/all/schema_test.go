package all_test

import (
	"encoding/json"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// TestSchemaDefaultsBuild feeds every bundled plugin the configuration the
// control plane produces (schema defaults filled in from a minimal input)
// and checks the plugin builds from it.
func TestSchemaDefaultsBuild(t *testing.T) {
	minimal := map[string]map[string]any{
		"acl":            {"allow": []any{"a"}},
		"rate-limiting":  {"minute": 10},
		"ip-restriction": {"allow": []any{"10.0.0.0/8"}},
		"http-log":       {"http_endpoint": "http://127.0.0.1:9/log"},
		"file-log":       {"path": t.TempDir() + "/x.log"},
		"proxy-cache":    {"strategy": "memory"},
	}
	for name := range kongPriorities {
		t.Run(name, func(t *testing.T) {
			sp, ok := schema.LookupPlugin(name)
			if !ok {
				t.Fatalf("bundled plugin %s has no control plane schema", name)
			}
			in := map[string]any{"name": name, "config": map[string]any{}}
			if m, ok := minimal[name]; ok {
				in["config"] = m
			}
			doc, _, serr := sp.Process(schema.OpCreate, in, nil)
			if serr != nil {
				t.Fatalf("schema: %v", serr)
			}
			cfg, err := json.Marshal(doc["config"])
			if err != nil {
				t.Fatal(err)
			}
			set, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: name, Config: cfg}}})
			if err != nil {
				t.Fatalf("build from %s: %v", cfg, err)
			}
			_ = set.Close()
		})
	}
}
