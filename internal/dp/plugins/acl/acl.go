// Package acl is Kong's acl plugin: allow or deny consumers by their acl
// groups (or by groups an auth plugin asserted).
package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "acl"
	Priority = 950
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration; exactly one of Allow and Deny is set.
type Config struct {
	Allow                        []string `json:"allow"`
	Deny                         []string `json:"deny"`
	HideGroupsHeader             bool     `json:"hide_groups_header"`
	AlwaysUseAuthenticatedGroups bool     `json:"always_use_authenticated_groups"`
}

// ACL is a built acl instance.
type ACL struct {
	cfg   Config
	allow bool
	set   map[string]bool
	store plugin.Store
}

var _ plugin.Accesser = (*ACL)(nil)

// New builds an acl instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("acl: invalid config: %w", err)
	}
	if (len(cfg.Allow) > 0) == (len(cfg.Deny) > 0) {
		return nil, errors.New("acl: exactly one of these fields must be non-empty: 'config.allow', 'config.deny'")
	}
	a := &ACL{cfg: cfg, allow: len(cfg.Allow) > 0, set: make(map[string]bool), store: env}
	for _, g := range append(cfg.Allow, cfg.Deny...) {
		a.set[g] = true
	}
	return a, nil
}

// Access implements [plugin.Accesser].
func (a *ACL) Access(c *plugin.Ctx) error {
	var groups []string
	header := "X-Consumer-Groups"
	useAuthenticated := c.Consumer == nil || (a.cfg.AlwaysUseAuthenticatedGroups && len(c.AuthenticatedGroups) > 0)
	if useAuthenticated {
		groups = c.AuthenticatedGroups
		header = "X-Authenticated-Groups"
	} else {
		groups = a.store.ACLGroupsOf(c.Consumer.ID)
	}
	if len(groups) == 0 {
		if c.Credential != nil || c.Consumer != nil {
			c.Error(403, "You cannot consume this service", nil)
			return nil
		}
		c.Error(401, "Unauthorized", nil)
		return nil
	}
	member := false
	for _, g := range groups {
		if a.set[g] {
			member = true
			break
		}
	}
	if member != a.allow {
		c.Error(403, "You cannot consume this service", nil)
		return nil
	}
	if !a.cfg.HideGroupsHeader {
		c.SetUpstreamHeader(header, strings.Join(groups, ", "))
	}
	return nil
}
