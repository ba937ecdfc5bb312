// Command gantryproxy runs the runtime's proxy engine with one service that
// every request goes to, for the comparison harness (bench/proxy.sh).
//
//	gantryproxy -listen 127.0.0.1:18001 -upstream 127.0.0.1:18080
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:18080", "upstream host:port")
	idle := flag.Int("keepalive", 128, "idle upstream connections kept")
	flag.Parse()

	host, port, err := net.SplitHostPort(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		log.Fatal(err)
	}
	svc := &proxy.Service{Name: "bench", Host: host, Port: pn, Retries: 5}
	if err := svc.Prepare(); err != nil {
		log.Fatal(err)
	}
	tr, err := proxy.NewTransport(proxy.TransportOptions{MaxIdlePerHost: *idle})
	if err != nil {
		log.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		Transport: tr,
		Config:    &proxy.Config{Resolver: proxy.StaticResolver{Service: svc}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: p, ReadHeaderTimeout: 60 * time.Second, IdleTimeout: 75 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
