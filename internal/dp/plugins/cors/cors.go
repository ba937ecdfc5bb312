// Package cors is Kong's cors plugin: it answers preflight requests and
// adds CORS headers to responses.
package cors

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "cors"
	Priority = 2000
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
// MaxAge is in seconds.
type Config struct {
	Origins           []string `json:"origins"`
	Headers           []string `json:"headers"`
	ExposedHeaders    []string `json:"exposed_headers"`
	Methods           []string `json:"methods"`
	MaxAge            *float64 `json:"max_age"`
	Credentials       bool     `json:"credentials"`
	PrivateNetwork    bool     `json:"private_network"`
	PreflightContinue bool     `json:"preflight_continue"`
	AllowOriginAbsent *bool    `json:"allow_origin_absent"`
}

type origin struct {
	plain string
	re    *regexp.Regexp
}

// CORS is a built cors instance.
type CORS struct {
	cfg           Config
	allowAll      bool
	single        string // the one non-regex origin, echoed verbatim
	origins       []origin
	methods       string
	headers       string
	exposed       string
	maxAge        string
	originAbsent  bool
	skipHeaderKey string
}

var (
	_ plugin.Accesser       = (*CORS)(nil)
	_ plugin.HeaderFilterer = (*CORS)(nil)
)

var notPlainOrigin = regexp.MustCompile(`[^A-Za-z0-9.:/-]`)

// New builds a cors instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("cors: invalid config: %w", err)
	}
	c := &CORS{cfg: cfg, originAbsent: cfg.AllowOriginAbsent == nil || *cfg.AllowOriginAbsent, skipHeaderKey: "cors:skip:" + env.Plugin().ID}
	c.allowAll = len(cfg.Origins) == 0 || (len(cfg.Origins) == 1 && cfg.Origins[0] == "*")
	if !c.allowAll {
		for _, o := range cfg.Origins {
			if notPlainOrigin.MatchString(o) {
				re, err := regexp.Compile("^(?:" + o + ")$")
				if err != nil {
					return nil, fmt.Errorf("cors: origins: invalid regex %q: %w", o, err)
				}
				c.origins = append(c.origins, origin{re: re})
				continue
			}
			c.origins = append(c.origins, origin{plain: normalize(o)})
		}
		if len(cfg.Origins) == 1 && c.origins[0].re == nil {
			c.single = cfg.Origins[0]
		}
	}
	methods := cfg.Methods
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
	}
	c.methods = strings.Join(methods, ",")
	c.headers = strings.Join(cfg.Headers, ",")
	c.exposed = strings.Join(cfg.ExposedHeaders, ",")
	if cfg.MaxAge != nil {
		c.maxAge = strconv.FormatFloat(*cfg.MaxAge, 'f', -1, 64)
	}
	return c, nil
}

// normalize lowercases scheme and host and drops a default port.
func normalize(o string) string {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return strings.ToLower(o)
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// setter writes a response header in either phase.
type setter func(k, v string)

func (c *CORS) configureOrigin(ctx *plugin.Ctx, set setter, vary func()) (allowAll bool) {
	if c.allowAll {
		set("Access-Control-Allow-Origin", "*")
		return true
	}
	vary()
	if c.single != "" {
		set("Access-Control-Allow-Origin", c.single)
		return false
	}
	if reqOrigin := ctx.Request.Header.Get("Origin"); reqOrigin != "" {
		n := normalize(reqOrigin)
		for _, o := range c.origins {
			if (o.re != nil && o.re.MatchString(n)) || (o.re == nil && o.plain == n) {
				set("Access-Control-Allow-Origin", n)
				return false
			}
		}
	}
	return false
}

func (c *CORS) configureCredentials(ctx *plugin.Ctx, allowAll bool, set setter, vary func()) {
	if !c.cfg.Credentials {
		return
	}
	if !allowAll {
		set("Access-Control-Allow-Credentials", "true")
		return
	}
	// ACAO cannot be * with credentials: echo the request's origin.
	if o := ctx.Request.Header.Get("Origin"); o != "" {
		set("Access-Control-Allow-Origin", o)
		set("Access-Control-Allow-Credentials", "true")
		vary()
	}
}

// Access implements [plugin.Accesser]: it answers preflight requests.
func (c *CORS) Access(ctx *plugin.Ctx) error {
	r := ctx.Request
	if r.Method != http.MethodOptions || r.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		return nil
	}
	ctx.SetShared(c.skipHeaderKey, true)
	if c.cfg.PreflightContinue {
		return nil
	}
	h := http.Header{}
	set := func(k, v string) { h.Set(k, v) }
	vary := func() { addVary(h) }
	allowAll := c.configureOrigin(ctx, set, vary)
	c.configureCredentials(ctx, allowAll, set, vary)
	if c.headers != "" {
		h.Set("Access-Control-Allow-Headers", c.headers)
	} else if acrh := r.Header.Get("Access-Control-Request-Headers"); acrh != "" {
		h.Set("Access-Control-Allow-Headers", acrh)
	}
	h.Set("Access-Control-Allow-Methods", c.methods)
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	if c.cfg.PrivateNetwork && r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	ctx.Exit(http.StatusOK, h, nil)
	return nil
}

// HeaderFilter implements [plugin.HeaderFilterer]: CORS headers on
// ordinary responses.
func (c *CORS) HeaderFilter(ctx *plugin.Ctx) error {
	if skip, _ := ctx.Shared(c.skipHeaderKey).(bool); skip {
		return nil
	}
	if !c.originAbsent && ctx.Request.Header.Get("Origin") == "" {
		return nil
	}
	h := ctx.Response.Header
	set := func(k, v string) { h.Set(k, v) }
	vary := func() { addVary(h) }
	allowAll := c.configureOrigin(ctx, set, vary)
	c.configureCredentials(ctx, allowAll, set, vary)
	if c.exposed != "" {
		h.Set("Access-Control-Expose-Headers", c.exposed)
	}
	return nil
}

// addVary adds Origin to Vary unless already listed.
func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "*" || strings.EqualFold(p, "Origin") {
				return
			}
		}
	}
	h.Add("Vary", "Origin")
}
