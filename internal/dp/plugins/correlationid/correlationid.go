// Package correlationid is Kong's correlation-id plugin.
package correlationid

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "correlation-id"
	Priority = 100001
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	HeaderName     string `json:"header_name"`
	Generator      string `json:"generator"`
	EchoDownstream bool   `json:"echo_downstream"`
}

// processID plays Kong's per-worker uuid of the uuid#counter generator.
var (
	processID = uuid.NewString()
	counter   atomic.Uint64
)

// CorrelationID is a built correlation-id instance.
type CorrelationID struct {
	cfg    Config
	header string
	key    string
}

var (
	_ plugin.Accesser       = (*CorrelationID)(nil)
	_ plugin.HeaderFilterer = (*CorrelationID)(nil)
)

// New builds a correlation-id instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{HeaderName: "Kong-Request-ID", Generator: "uuid#counter"}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("correlation-id: invalid config: %w", err)
	}
	switch cfg.Generator {
	case "uuid", "uuid#counter", "tracker":
	default:
		return nil, fmt.Errorf("correlation-id: invalid generator %q", cfg.Generator)
	}
	if cfg.HeaderName == "" {
		return nil, fmt.Errorf("correlation-id: header_name is required")
	}
	return &CorrelationID{cfg: cfg, header: http.CanonicalHeaderKey(cfg.HeaderName), key: "correlation-id:" + env.Plugin().ID}, nil
}

func (ci *CorrelationID) generate(c *plugin.Ctx) string {
	switch ci.cfg.Generator {
	case "uuid":
		return uuid.NewString()
	case "tracker":
		// Kong joins server address/port, connection serials, client
		// address/port and time; the request id carries the serials here.
		return c.ClientIP.String() + "-" + c.RequestID() + "-" + strconv.FormatFloat(float64(time.Now().UnixMilli())/1000, 'f', 3, 64)
	}
	return processID + "#" + strconv.FormatUint(counter.Add(1), 10)
}

// Access implements [plugin.Accesser]: an existing header is kept.
func (ci *CorrelationID) Access(c *plugin.Ctx) error {
	id := c.Request.Header.Get(ci.header)
	if id == "" {
		id = ci.generate(c)
		c.SetUpstreamHeader(ci.header, id)
	}
	if ci.cfg.EchoDownstream {
		c.SetShared(ci.key, id)
	}
	return nil
}

// HeaderFilter implements [plugin.HeaderFilterer].
func (ci *CorrelationID) HeaderFilter(c *plugin.Ctx) error {
	if !ci.cfg.EchoDownstream {
		return nil
	}
	if id, ok := c.Shared(ci.key).(string); ok && id != "" {
		c.Response.Header.Set(ci.header, id)
	}
	return nil
}
