// Package iprestriction is Kong's ip-restriction plugin.
package iprestriction

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "ip-restriction"
	Priority = 990
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration. Allow and Deny hold IPs or CIDRs;
// at least one is set. Status nil means 403; Message nil means
// "IP address not allowed: <ip>".
type Config struct {
	Allow   []string `json:"allow"`
	Deny    []string `json:"deny"`
	Status  *int     `json:"status"`
	Message *string  `json:"message"`
}

// IPRestriction is a built ip-restriction instance.
type IPRestriction struct {
	allow, deny []netip.Prefix
	status      int
	message     *string
}

var _ plugin.Accesser = (*IPRestriction)(nil)

func parsePrefixes(field string, in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("ip-restriction: %s: invalid cidr range or ip address %q", field, s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("ip-restriction: %s: invalid cidr range or ip address %q", field, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// New builds an ip-restriction instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("ip-restriction: invalid config: %w", err)
	}
	if len(cfg.Allow) == 0 && len(cfg.Deny) == 0 {
		return nil, errors.New("ip-restriction: at least one of these fields must be non-empty: 'config.allow', 'config.deny'")
	}
	ip := &IPRestriction{status: 403, message: cfg.Message}
	if cfg.Status != nil {
		ip.status = *cfg.Status
	}
	var err error
	if ip.allow, err = parsePrefixes("allow", cfg.Allow); err != nil {
		return nil, err
	}
	if ip.deny, err = parsePrefixes("deny", cfg.Deny); err != nil {
		return nil, err
	}
	return ip, nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Access implements [plugin.Accesser]: deny is checked first, then allow.
func (ip *IPRestriction) Access(c *plugin.Ctx) error {
	a := c.ClientIP.Unmap()
	if !a.IsValid() {
		c.Error(ip.status, "Cannot identify the client IP address, unix domain sockets are not supported.", nil)
		return nil
	}
	if contains(ip.deny, a) || (len(ip.allow) > 0 && !contains(ip.allow, a)) {
		msg := "IP address not allowed: " + a.String()
		if ip.message != nil {
			msg = *ip.message
		}
		c.Error(ip.status, msg, nil)
	}
	return nil
}
