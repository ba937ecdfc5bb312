// Package requesttermination is Kong's request-termination plugin.
package requesttermination

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "request-termination"
	Priority = 2
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	StatusCode  int     `json:"status_code"`
	Message     *string `json:"message"`
	ContentType *string `json:"content_type"`
	Body        *string `json:"body"`
	Echo        bool    `json:"echo"`
	Trigger     *string `json:"trigger"`
}

// defaultMessages are Kong's DEFAULT_RESPONSE.
var defaultMessages = map[int]string{
	401: "Unauthorized",
	404: "Not found",
	405: "Method not allowed",
	500: "An unexpected error occurred",
	502: "Bad Gateway",
	503: "Service unavailable",
}

// RequestTermination is a built request-termination instance.
type RequestTermination struct {
	cfg        Config
	message    string
	hasMessage bool
	trigger    string
	nodeID     string
}

var _ plugin.Accesser = (*RequestTermination)(nil)

// New builds a request-termination instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{StatusCode: 503}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("request-termination: invalid config: %w", err)
	}
	if cfg.StatusCode < 100 || cfg.StatusCode > 599 {
		return nil, fmt.Errorf("request-termination: status_code must be between 100 and 599")
	}
	if cfg.Message != nil && (cfg.Body != nil || cfg.ContentType != nil) {
		return nil, errors.New("request-termination: message cannot be used with content_type or body")
	}
	if cfg.ContentType != nil && cfg.Body == nil {
		return nil, errors.New("request-termination: content_type requires a body")
	}
	if cfg.Echo && (cfg.Body != nil || cfg.ContentType != nil) {
		return nil, errors.New("request-termination: echo cannot be used with content_type or body")
	}
	rt := &RequestTermination{cfg: cfg, nodeID: env.Plugin().ID}
	if cfg.Message != nil {
		rt.message, rt.hasMessage = *cfg.Message, true
	} else if m, ok := defaultMessages[cfg.StatusCode]; ok {
		rt.message, rt.hasMessage = m, true
	}
	if cfg.Trigger != nil {
		rt.trigger = *cfg.Trigger
	}
	return rt, nil
}

// Access implements [plugin.Accesser].
func (rt *RequestTermination) Access(c *plugin.Ctx) error {
	r := c.Request
	if rt.trigger != "" && r.Header.Get(rt.trigger) == "" && !r.URL.Query().Has(rt.trigger) {
		return nil
	}
	status := rt.cfg.StatusCode
	switch {
	case rt.cfg.Echo:
		c.ExitBody(status, plugin.ContentTypeJSON, rt.echo(c), nil)
	case rt.cfg.Body != nil:
		ct := ""
		if rt.cfg.ContentType != nil {
			ct = *rt.cfg.ContentType
		}
		c.ExitBody(status, ct, []byte(*rt.cfg.Body), nil)
	case rt.hasMessage:
		c.ExitJSON(status, rt.message, nil)
	default:
		c.Exit(status, nil, nil)
	}
	return nil
}

// echo builds the echo body: the request as the gateway received it.
func (rt *RequestTermination) echo(c *plugin.Ctx) []byte {
	r := c.Request
	host, port := r.Host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host, port = host[:i], host[i+1:]
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	headers := make(map[string]any, len(r.Header))
	for k, v := range r.Header {
		k = strings.ToLower(k)
		if len(v) == 1 {
			headers[k] = v[0]
		} else {
			headers[k] = v
		}
	}
	query := map[string]any{}
	for k, v := range r.URL.Query() {
		if len(v) == 1 {
			query[k] = v[0]
		} else {
			query[k] = v
		}
	}
	hostname, _ := os.Hostname()
	portNum, _ := strconv.Atoi(port)
	out := map[string]any{
		"kong":            map[string]any{"node_id": rt.nodeID, "worker_pid": os.Getpid(), "hostname": hostname},
		"request":         map[string]any{"scheme": scheme, "host": host, "port": portNum, "headers": headers, "query": query, "method": r.Method, "path": r.URL.Path},
		"matched_route":   idOrNull(c.RouteID),
		"matched_service": idOrNull(c.ServiceID),
	}
	if rt.hasMessage {
		out["message"] = rt.message
	}
	b, _ := json.Marshal(out)
	return b
}

func idOrNull(id string) any {
	if id == "" {
		return nil
	}
	return map[string]any{"id": id}
}
