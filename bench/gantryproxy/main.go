// Command gantryproxy runs the runtime's proxy engine with one service that
// every request goes to, for the comparison harness (bench/proxy.sh).
//
//	gantryproxy -listen 127.0.0.1:18001 -upstream 127.0.0.1:18080
//	gantryproxy -plugins -consumers 1000   # key-auth (header apikey, keys
//	                                       # key-0..key-999) + rate-limiting
//	gantryproxy -server net-http           # net/http's server instead of Serve
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/ratelimiting"
	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:18080", "upstream host:port")
	idle := flag.Int("keepalive", 128, "idle upstream connections kept")
	server := flag.String("server", "serve", "client-side server: serve (the proxy's own loop) or net-http")
	plugins := flag.Bool("plugins", false, "run key-auth + rate-limiting (local, never hit) on the route")
	consumers := flag.Int("consumers", 1000, "consumers with a key-auth key each, with -plugins")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the first -profile-for to this file")
	profileFor := flag.Duration("profile-for", 10*time.Second, "how long -cpuprofile records")
	flag.Parse()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		time.AfterFunc(*profileFor, func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Printf("cpu profile: %v", err)
			}
		})
	}

	host, port, err := net.SplitHostPort(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		log.Fatal(err)
	}
	svc := &proxy.Service{ID: "s1", Name: "bench", Host: host, Port: pn, Retries: 5}
	if err := svc.Prepare(); err != nil {
		log.Fatal(err)
	}
	cfg := &proxy.Config{Resolver: proxy.StaticResolver{Service: svc}}
	if *plugins {
		set, err := compilePlugins(*consumers)
		if err != nil {
			log.Fatal(err)
		}
		cfg = &proxy.Config{Resolver: routeResolver{svc: svc, chain: set.Route("r1")}}
	}
	tr, err := h1client.New(h1client.Options{MaxIdlePerHost: *idle})
	if err != nil {
		log.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Transport: tr, Config: cfg})
	if err != nil {
		log.Fatal(err)
	}
	switch *server {
	case "serve":
		var lc net.ListenConfig
		ln, err := lc.Listen(context.Background(), "tcp", *listen)
		if err != nil {
			log.Fatal(err)
		}
		log.Fatal(p.Serve(ln))
	case "net-http":
		srv := &http.Server{Addr: *listen, Handler: p, ReadHeaderTimeout: 60 * time.Second, IdleTimeout: 75 * time.Second}
		log.Fatal(srv.ListenAndServe())
	default:
		log.Fatalf("unknown -server %q", *server)
	}
}

// routeResolver sends every request to one route with its plugin chain.
type routeResolver struct {
	svc   *proxy.Service
	chain *plugin.Chain
}

func (r routeResolver) Resolve(_ *http.Request, m *proxy.Match) {
	m.Service, m.RouteID, m.Plugins = r.svc, "r1", r.chain
}

// compilePlugins builds key-auth (header apikey) and rate-limiting with a
// limit never reached, for n consumers with keys key-0..key-(n-1).
func compilePlugins(n int) (*plugin.Set, error) {
	var opts plugin.MemEnvOptions
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		opts.Consumers = append(opts.Consumers, plugin.Consumer{ID: id, Username: "user-" + id})
		opts.KeyAuths = append(opts.KeyAuths, plugin.KeyAuthCredential{ID: "k" + id, ConsumerID: id, Key: fmt.Sprintf("key-%d", i)})
	}
	env, err := plugin.NewMemEnv(opts)
	if err != nil {
		return nil, err
	}
	ka, _ := json.Marshal(keyauth.Config{KeyNames: []string{"apikey"}, KeyInHeader: true, KeyInQuery: true, RunOnPreflight: true})
	huge := 1e12
	rl, _ := json.Marshal(ratelimiting.Config{Second: &huge, Minute: &huge, LimitBy: "consumer", Policy: "local",
		FaultTolerant: true, Redis: ratelimiting.RedisConfig{Port: 6379, Timeout: 2000}, ErrorCode: 429,
		ErrorMessage: "API rate limit exceeded", SyncRate: -1})
	return plugin.Compile(context.Background(), plugin.CompileOptions{
		Env:    env,
		Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}},
		Plugins: []plugin.PluginEntity{
			{ID: "p1", Name: keyauth.Name, Enabled: true, RouteID: "r1", Config: ka},
			{ID: "p2", Name: ratelimiting.Name, Enabled: true, RouteID: "r1", Config: rl},
		},
	})
}
