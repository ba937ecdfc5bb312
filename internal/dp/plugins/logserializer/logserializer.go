// Package logserializer builds the JSON log entry Kong's log plugins
// (http-log, file-log, ...) send: Kong's basic serializer shape.
package logserializer

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Request is the request part of an entry.
type Request struct {
	URI         string            `json:"uri"`
	URL         string            `json:"url"`
	Querystring map[string]any    `json:"querystring"`
	Method      string            `json:"method"`
	Headers     map[string]string `json:"headers"`
	Size        int64             `json:"size"`
	ID          string            `json:"id"`
}

// Response is the response part of an entry.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Size    int64             `json:"size"`
}

// Latencies are in milliseconds.
type Latencies struct {
	Kong    int64 `json:"kong"`
	Proxy   int64 `json:"proxy"`
	Request int64 `json:"request"`
	Receive int64 `json:"receive"`
}

// Ref is an entity reference.
type Ref struct {
	ID string `json:"id"`
}

// Consumer is the authenticated consumer.
type Consumer struct {
	ID       string `json:"id"`
	Username string `json:"username,omitempty"`
	CustomID string `json:"custom_id,omitempty"`
}

// Entry is one log entry. StartedAt is Unix milliseconds.
type Entry struct {
	Request             Request   `json:"request"`
	UpstreamURI         string    `json:"upstream_uri"`
	Response            Response  `json:"response"`
	Latencies           Latencies `json:"latencies"`
	AuthenticatedEntity *Ref      `json:"authenticated_entity,omitempty"`
	Route               *Ref      `json:"route,omitempty"`
	Service             *Ref      `json:"service,omitempty"`
	Consumer            *Consumer `json:"consumer,omitempty"`
	ClientIP            string    `json:"client_ip"`
	StartedAt           int64     `json:"started_at"`
	Source              string    `json:"source"`
}

func flat(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(k)
		if lk == "authorization" || lk == "proxy-authorization" {
			// Kong redacts credentials in logged headers.
			out[lk] = "REDACTED"
			continue
		}
		out[lk] = strings.Join(v, ", ")
	}
	return out
}

// Build copies everything it needs out of c (safe to keep after the log
// phase).
func Build(c *plugin.Ctx) *Entry {
	r := c.Request
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := map[string]any{}
	for k, v := range r.URL.Query() {
		if len(v) == 1 {
			q[k] = v[0]
		} else {
			q[k] = v
		}
	}
	e := &Entry{
		Request: Request{
			URI: r.URL.RequestURI(), URL: scheme + "://" + r.Host + r.URL.RequestURI(), Querystring: q, Method: r.Method,
			Headers: flat(r.Header), Size: c.Log.RequestSize, ID: c.RequestID(),
		},
		UpstreamURI: c.Log.UpstreamURI,
		Response:    Response{Status: c.Log.Status, Headers: flat(c.Response.Header), Size: c.Log.ResponseSize},
		Latencies: Latencies{
			Kong: c.Log.GatewayLatency.Milliseconds(), Proxy: c.Log.UpstreamLatency.Milliseconds(),
			Request: c.Log.RequestLatency.Milliseconds(),
		},
		ClientIP:  c.ClientIP.String(),
		StartedAt: c.Log.StartedAt.UnixMilli(),
		Source:    "upstream",
	}
	if c.Response.Exit {
		e.Source = "kong"
		e.Latencies.Proxy = -1
	}
	if c.RouteID != "" {
		e.Route = &Ref{ID: c.RouteID}
	}
	if c.ServiceID != "" {
		e.Service = &Ref{ID: c.ServiceID}
	}
	if c.Consumer != nil {
		e.Consumer = &Consumer{ID: c.Consumer.ID, Username: c.Consumer.Username, CustomID: c.Consumer.CustomID}
	}
	if c.Credential != nil {
		e.AuthenticatedEntity = &Ref{ID: c.Credential.ID}
	}
	return e
}

// JSON encodes an entry.
func JSON(c *plugin.Ctx) []byte {
	b, _ := json.Marshal(Build(c))
	return b
}
