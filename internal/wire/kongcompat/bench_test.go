package kongcompat

import (
	"fmt"
	"testing"

	"github.com/gantry-gw/gantry/internal/wire"
)

// BenchmarkDowngrade measures what a control plane pays once per revision and version class:
// downgrading a configuration of 1,000 services, 1,000 routes and 2,000 plugins for a Kong 3.4
// data plane and hashing the result.
func BenchmarkDowngrade(b *testing.B) {
	var services, routes, plugins []any
	for i := range 1000 {
		sid, rid := fmt.Sprintf("s-%04d", i), fmt.Sprintf("r-%04d", i)
		services = append(services, map[string]any{"id": sid, "name": sid, "host": sid + ".internal", "port": int64(80), "protocol": "http"})
		routes = append(routes, map[string]any{"id": rid, "service": sid, "paths": []any{"/" + sid}, "protocols": []any{"http", "https"}})
		plugins = append(plugins,
			map[string]any{"id": "pc-" + sid, "name": "cors", "service": sid, "config": map[string]any{
				"origins": []any{"*"}, "private_network": true, "allow_origin_absent": false, "credentials": false}},
			map[string]any{"id": "pk-" + sid, "name": "key-auth", "route": rid, "config": map[string]any{
				"key_names": []any{"apikey"}, "realm": "api", "hide_credentials": false}})
	}
	config := map[string]any{"_format_version": "3.0", "services": services, "routes": routes, "plugins": plugins}
	class := Class("3.4.3")
	b.ReportAllocs()
	for b.Loop() {
		res := Downgrade(config, class)
		if !res.Changed || len(res.Issues) != 3 {
			b.Fatalf("changed %v, %d issues", res.Changed, len(res.Issues))
		}
		if _, _, err := wire.ConfigHash(res.Config); err != nil {
			b.Fatal(err)
		}
	}
}
