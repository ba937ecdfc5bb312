// Package requestsizelimiting is Kong's request-size-limiting plugin.
package requestsizelimiting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "request-size-limiting"
	Priority = 951
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	AllowedPayloadSize   int64  `json:"allowed_payload_size"`
	SizeUnit             string `json:"size_unit"`
	RequireContentLength bool   `json:"require_content_length"`
}

// RequestSizeLimiting is a built request-size-limiting instance.
type RequestSizeLimiting struct {
	cfg   Config
	limit int64 // bytes
}

var _ plugin.Accesser = (*RequestSizeLimiting)(nil)

// New builds a request-size-limiting instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	cfg := Config{AllowedPayloadSize: 128, SizeUnit: "megabytes"}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("request-size-limiting: invalid config: %w", err)
	}
	unit := map[string]int64{"megabytes": 1 << 20, "kilobytes": 1 << 10, "bytes": 1}[cfg.SizeUnit]
	if unit == 0 {
		return nil, fmt.Errorf("request-size-limiting: invalid size_unit %q", cfg.SizeUnit)
	}
	if cfg.AllowedPayloadSize < 0 {
		return nil, fmt.Errorf("request-size-limiting: allowed_payload_size must be positive")
	}
	return &RequestSizeLimiting{cfg: cfg, limit: cfg.AllowedPayloadSize * unit}, nil
}

func (s *RequestSizeLimiting) tooLarge(c *plugin.Ctx) {
	status := 413
	if strings.EqualFold(c.Request.Header.Get("Expect"), "100-continue") {
		status = 417
	}
	c.Error(status, "Request size limit exceeded", nil)
}

// Access implements [plugin.Accesser].
func (s *RequestSizeLimiting) Access(c *plugin.Ctx) error {
	r := c.Request
	if cl := r.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			if n > s.limit {
				s.tooLarge(c)
			}
			return nil
		}
	} else if r.ContentLength > 0 {
		if r.ContentLength > s.limit {
			s.tooLarge(c)
		}
		return nil
	}
	if s.cfg.RequireContentLength {
		c.Error(411, "A valid Content-Length header is required", nil)
		return nil
	}
	if r.Body == nil {
		return nil
	}
	// No usable length: read at most one byte past the limit.
	b, err := io.ReadAll(io.LimitReader(r.Body, s.limit+1))
	if err != nil {
		return fmt.Errorf("reading request body: %w", err)
	}
	if int64(len(b)) > s.limit {
		s.tooLarge(c)
		return nil
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}
