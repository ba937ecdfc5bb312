package compile

import (
	"net"
	"sort"
	"strconv"
)

// Summary is a deterministic, human-readable account of what a Compiled
// holds, for golden tests and diagnostics. It names entities by id and
// name; it never carries secrets (keys, passwords, private keys).
type Summary struct {
	// Counts is the number of entities read per config_table collection.
	Counts map[string]int `json:"counts"`
	// Routes are the compiled HTTP routes in configuration order.
	Routes []RouteSummary `json:"routes"`
	// Services are the compiled services in configuration order.
	Services []ServiceSummary `json:"services"`
	// Upstreams are the balanced upstreams in configuration order.
	Upstreams []UpstreamSummary `json:"upstreams,omitempty"`
	// NoRoutePlugins are the plugins that run when no route matched
	// (global plugins), in access order.
	NoRoutePlugins []string `json:"no_route_plugins,omitempty"`
	// SNIs is the number of SNI entries of the certificate store.
	SNIs int `json:"snis"`
	// Keys are the ids of compiled keys entities, sorted.
	Keys []string `json:"keys,omitempty"`
	// NeedPort mirrors the router flag.
	NeedPort bool `json:"need_port"`
}

// RouteSummary describes one compiled route.
type RouteSummary struct {
	ID      string   `json:"id"`
	Name    string   `json:"name,omitempty"`
	Service string   `json:"service,omitempty"`
	Plugins []string `json:"plugins,omitempty"`
}

// ServiceSummary describes one compiled service.
type ServiceSummary struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"`
	// Address is host:port as dialled when there is no upstream.
	Address    string `json:"address"`
	Path       string `json:"path,omitempty"`
	Upstream   string `json:"upstream,omitempty"`
	CACerts    bool   `json:"ca_certificates,omitempty"`
	ClientCert bool   `json:"client_certificate,omitempty"`
}

// UpstreamSummary describes one compiled upstream.
type UpstreamSummary struct {
	Name      string   `json:"name"`
	Algorithm string   `json:"algorithm"`
	Targets   []string `json:"targets"`
}

// Summary describes c.
func (c *Compiled) Summary() Summary {
	s := Summary{Counts: map[string]int{}, SNIs: c.certs.Len(), NeedPort: c.needPort}
	for k, v := range c.counts {
		if v > 0 {
			s.Counts[k] = v
		}
	}
	for _, rt := range c.routes {
		rs := RouteSummary{ID: rt.ID, Name: rt.Name}
		if rt.Service != nil {
			rs.Service = rt.Service.Name
			if rs.Service == "" {
				rs.Service = rt.Service.ID
			}
		}
		if rt.Chain != nil {
			rs.Plugins = rt.Chain.Plugins()
		}
		s.Routes = append(s.Routes, rs)
	}
	for _, svc := range c.services {
		ss := ServiceSummary{ID: svc.ID, Name: svc.Name, Protocol: svc.Protocol, Path: svc.Path,
			CACerts: svc.CACertificates != nil, ClientCert: svc.ClientCertificate != nil}
		ss.Address = joinHostPortInt(svc.Proxy.Host, svc.Proxy.Port)
		if svc.Upstream != nil {
			ss.Upstream = svc.Upstream.Name
		}
		s.Services = append(s.Services, ss)
	}
	for _, u := range c.upstreams {
		us := UpstreamSummary{Name: u.Name, Algorithm: string(u.Balancer.Algorithm())}
		ts := u.Balancer.Targets()
		for i := range ts {
			us.Targets = append(us.Targets, ts[i].Address)
		}
		s.Upstreams = append(s.Upstreams, us)
	}
	if c.plugins != nil {
		s.NoRoutePlugins = c.plugins.NoRoute().Plugins()
	}
	for id := range c.keys {
		s.Keys = append(s.Keys, id)
	}
	sort.Strings(s.Keys)
	return s
}

func joinHostPortInt(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
