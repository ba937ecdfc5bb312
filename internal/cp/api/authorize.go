package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/policy"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// rule says what a route needs, for policy.Decide. Every route mounted behind authentication has
// one in routeRules; a route without one is refused to everyone but organization admins, and
// TestEveryRouteHasARule (package server) fails.
type rule struct {
	// self: any authenticated identity may call the route; it answers only about the caller or
	// filters what it lists by what the caller may see.
	self bool
	// action is what policy.Decide is asked; Read and Write address the route's {groupId}.
	action policy.Action
	// entity is the entity type a Write changes.
	entity string
	// adminAPI: the route is a group's Kong Admin API, whose action and entity type come from
	// the method and the path (policy.AdminAPI), and whose refusals are Kong-shaped.
	adminAPI bool
}

// groupPrefix is the one spelling of the group collection in routeRules; routes mounted under
// Konnect's name (/v2/control-planes) are looked up under it.
const groupPrefix = "/v2/runtime-groups"

var (
	self       = rule{self: true}
	groupRead  = rule{action: policy.Read}
	identity   = rule{action: policy.ManageIdentity}
	groupWrite = func(entity string) rule { return rule{action: policy.Write, entity: entity} }
)

// routeRules maps every authenticated route pattern ("METHOD path", or a bare path for subtrees)
// to what it needs. It is the policy table of the API: TestEveryRouteHasARule checks it covers
// every mounted route, and the authorization table test derives each route's expected answer for
// each role from it.
var routeRules = map[string]rule{
	"GET /v2/organizations/me":                                             self,
	"GET /v2/users/me":                                                     self,
	"GET /v2/users/me/personal-access-tokens":                              self,
	"POST /v2/users/me/personal-access-tokens":                             self,
	"GET /v2/users/me/personal-access-tokens/{tokenId}":                    self,
	"DELETE /v2/users/me/personal-access-tokens/{tokenId}":                 self,
	"GET " + groupPrefix:                                                   self, // lists only the groups the caller sees
	"POST " + groupPrefix:                                                  {action: policy.CreateGroup},
	"GET " + groupPrefix + "/{groupId}":                                    groupRead,
	"PATCH " + groupPrefix + "/{groupId}":                                  groupWrite(policy.TypeGroup),
	"DELETE " + groupPrefix + "/{groupId}":                                 groupWrite(policy.TypeGroup),
	groupPrefix + "/{groupId}/core-entities":                               {adminAPI: true},
	groupPrefix + "/{groupId}/core-entities/":                              {adminAPI: true},
	"GET " + groupPrefix + "/{groupId}/nodes":                              groupRead,
	"GET " + groupPrefix + "/{groupId}/nodes/{nodeId}":                     groupRead,
	"DELETE " + groupPrefix + "/{groupId}/nodes/{nodeId}":                  groupWrite(policy.TypeNodes),
	"GET " + groupPrefix + "/{groupId}/expected-config-hash":               groupRead,
	"GET " + groupPrefix + "/{groupId}/dp-client-certificates":             groupRead,
	"POST " + groupPrefix + "/{groupId}/dp-client-certificates":            groupWrite(policy.TypeClusterCertificates),
	"POST " + groupPrefix + "/{groupId}/dp-client-certificates/generate":   groupWrite(policy.TypeClusterCertificates),
	"GET " + groupPrefix + "/{groupId}/dp-client-certificates/{certId}":    groupRead,
	"DELETE " + groupPrefix + "/{groupId}/dp-client-certificates/{certId}": groupWrite(policy.TypeClusterCertificates),
	"POST " + groupPrefix + "/{groupId}/enrollment-tokens":                 groupWrite(policy.TypeClusterCertificates),
	"GET " + groupPrefix + "/{groupId}/enrollment-tokens":                  groupRead,
	"DELETE " + groupPrefix + "/{groupId}/enrollment-tokens/{tokenId}":     groupWrite(policy.TypeClusterCertificates),
	"GET " + groupPrefix + "/{groupId}/revisions":                          groupRead,
	"GET " + groupPrefix + "/{groupId}/revisions/{n}":                      groupRead,
	"GET " + groupPrefix + "/{groupId}/revisions/{n}/diff":                 groupRead,
	"POST " + groupPrefix + "/{groupId}/revisions/{n}/rollback":            groupWrite(policy.TypeConfig),
	"GET " + groupPrefix + "/{groupId}/declarative-config":                 groupRead,
	"POST " + groupPrefix + "/{groupId}/declarative-config":                groupWrite(policy.TypeConfig),
	"GET " + groupPrefix + "/{groupId}/kubernetes-manifest":                groupRead,
	"GET " + groupPrefix + "/{groupId}/analytics":                          groupRead,
	"GET /v2/analytics":                                                    self, // covers only the groups the caller sees
	"GET /v2/control-plane-nodes":                                          {action: policy.ViewFleet},
	"GET /v2/audit-logs":                                                   {action: policy.ReadAudit},
	"GET /v2/audit-log-webhook":                                            {action: policy.ManageAudit},
	"PATCH /v2/audit-log-webhook":                                          {action: policy.ManageAudit},
	"POST /v3/logout":                                                      self,
	"GET /v3/users/me":                                                     self,
	"PATCH /v3/users/me":                                                   self,
	"GET /v3/roles":                                                        self,
	"GET /v3/users":                                                        identity,
	"POST /v3/users":                                                       identity,
	"GET /v3/users/{userId}":                                               identity,
	"PATCH /v3/users/{userId}":                                             identity,
	"DELETE /v3/users/{userId}":                                            identity,
	"GET /v3/users/{userId}/assigned-roles":                                identity,
	"POST /v3/users/{userId}/assigned-roles":                               identity,
	"DELETE /v3/users/{userId}/assigned-roles/{roleId}":                    identity,
	"GET /v3/teams":                                                        identity,
	"POST /v3/teams":                                                       identity,
	"GET /v3/teams/{teamId}":                                               identity,
	"PATCH /v3/teams/{teamId}":                                             identity,
	"DELETE /v3/teams/{teamId}":                                            identity,
	"GET /v3/teams/{teamId}/users":                                         identity,
	"POST /v3/teams/{teamId}/users":                                        identity,
	"DELETE /v3/teams/{teamId}/users/{userId}":                             identity,
	"GET /v3/teams/{teamId}/system-accounts":                               identity,
	"POST /v3/teams/{teamId}/system-accounts":                              identity,
	"DELETE /v3/teams/{teamId}/system-accounts/{accountId}":                identity,
	"GET /v3/teams/{teamId}/assigned-roles":                                identity,
	"POST /v3/teams/{teamId}/assigned-roles":                               identity,
	"DELETE /v3/teams/{teamId}/assigned-roles/{roleId}":                    identity,
	"GET /v3/system-accounts":                                              identity,
	"POST /v3/system-accounts":                                             identity,
	"GET /v3/system-accounts/{accountId}":                                  identity,
	"PATCH /v3/system-accounts/{accountId}":                                identity,
	"DELETE /v3/system-accounts/{accountId}":                               identity,
	"GET /v3/system-accounts/{accountId}/access-tokens":                    identity,
	"POST /v3/system-accounts/{accountId}/access-tokens":                   identity,
	"GET /v3/system-accounts/{accountId}/access-tokens/{tokenId}":          identity,
	"DELETE /v3/system-accounts/{accountId}/access-tokens/{tokenId}":       identity,
	"GET /v3/system-accounts/{accountId}/assigned-roles":                   identity,
	"POST /v3/system-accounts/{accountId}/assigned-roles":                  identity,
	"DELETE /v3/system-accounts/{accountId}/assigned-roles/{roleId}":       identity,
}

// ruleKey is the routeRules key of a mounted pattern.
func ruleKey(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		path, method = pattern, ""
	}
	for _, base := range GroupBasePaths {
		if rest, ok := strings.CutPrefix(path, base); ok {
			path = groupPrefix + rest
			break
		}
	}
	if method == "" {
		return path
	}
	return method + " " + path
}

// RouteRule describes the rule of a mounted pattern for tests and documentation: "self",
// "read", "write <entity type>", "admin-api", another action's name, or "" when the pattern has
// no rule.
func RouteRule(pattern string) string {
	r, ok := routeRules[ruleKey(pattern)]
	switch {
	case !ok:
		return ""
	case r.self:
		return "self"
	case r.adminAPI:
		return "admin-api"
	case r.action == policy.Write:
		return "write " + r.entity
	default:
		return string(r.action)
	}
}

// UnusedRules lists the rules of routeRules that none of mounted (patterns as Routes returns
// them) uses: a rule left behind by a route that was removed or renamed.
func UnusedRules(mounted []string) []string {
	used := map[string]bool{}
	for _, p := range mounted {
		used[ruleKey(p)] = true
	}
	var out []string
	for k := range routeRules {
		if !used[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Routes lists every pattern mounted behind authentication, in mounting order.
func (a *API) Routes() []string {
	a.routesMu.Lock()
	defer a.routesMu.Unlock()
	return append([]string(nil), a.routes...)
}

type subjectKey struct{}

// SubjectFrom returns the policy's view of the caller of an authorized request.
func SubjectFrom(ctx context.Context) (*policy.Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(*policy.Subject)
	return s, ok
}

// CanSee reports whether the caller of ctx may see group g; requests that did not pass
// authorization see nothing.
func (a *API) CanSee(ctx context.Context, g store.RuntimeGroup) bool {
	s, ok := SubjectFrom(ctx)
	return ok && g.Region == a.region && s.Sees(g.ID, g.Region)
}

// authorize wraps a route's handler with the policy decision for its pattern.
func (a *API) authorize(pattern string, next http.Handler) http.Handler {
	rl, ok := routeRules[ruleKey(pattern)]
	if !ok {
		// Fail closed: only organization admins reach a route nobody has classified.
		rl = rule{action: policy.ManageIdentity}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		subj, err := a.subject(r.Context(), p)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), subjectKey{}, subj))
		if rl.self {
			next.ServeHTTP(w, r)
			return
		}
		req := policy.Request{Action: rl.action, EntityType: rl.entity, Region: a.region}
		if rl.adminAPI {
			req.Action, req.EntityType = policy.AdminAPI(r.Method, adminSegments(r.URL.Path))
		}
		if req.Action == policy.Read || req.Action == policy.Write {
			req.GroupID = r.PathValue("groupId")
		}
		d := policy.Decide(subj, req)
		if d.Allowed {
			next.ServeHTTP(w, r)
			return
		}
		if req.GroupID != "" {
			// Unknown groups, and groups the caller may not see, get the same answer.
			if _, err := a.LookupGroup(r, req.GroupID); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		detail := refusal(d)
		a.log.InfoContext(r.Context(), "refused request", "reason", "forbidden", "need", d.Need, "user_id", p.UserID, "path", r.URL.Path, "request_id", requestID(r))
		if rl.adminAPI {
			// Inside core-entities errors speak Kong: a bare message.
			WriteJSON(w, http.StatusForbidden, map[string]string{"message": detail})
			return
		}
		WriteProblem(w, r, problem(http.StatusForbidden, detail))
	})
}

// refusal words a refused decision: the missing permission and the roles that grant it.
func refusal(d policy.Decision) string {
	return fmt.Sprintf("Forbidden: you lack the permission to %s; it comes with the role %s.", d.Need, strings.Join(d.Roles, ", or "))
}

// adminSegments returns the segments of a Kong Admin API path below /core-entities.
func adminSegments(path string) []string {
	_, rest, ok := strings.Cut(path, "/core-entities")
	if !ok {
		return nil
	}
	var segs []string
	for s := range strings.SplitSeq(rest, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// DefaultGrantsTTL is how long a process reuses an identity's grants before reading them again.
// Changes made through this process apply at once (InvalidateGrants); on PostgreSQL, other
// processes announce theirs (the server calls InvalidateGrants on each announcement, and whenever
// its listener reconnects, since announcements sent meanwhile are lost). The TTL is only a safety
// net, so it is long: reading grants costs a query, about 55 µs on SQLite.
const DefaultGrantsTTL = 5 * time.Minute

// grantsCache keeps each identity's policy subject for the grants TTL, so that authorization
// costs no query on most requests.
type grantsCache struct {
	mu sync.Mutex // guards entries and gen
	// entries by user id; bounded by maxGrantsEntries, cleared whole when full.
	entries map[string]grantsEntry
	// gen counts local changes to roles, teams and memberships; entries of an older
	// generation are stale.
	gen uint64
}

// maxGrantsEntries bounds the cache: one entry per identity active within the TTL.
const maxGrantsEntries = 10000

type grantsEntry struct {
	subj   *policy.Subject
	loaded time.Time
	gen    uint64
}

// InvalidateGrants makes every cached grant stale; call it after changing roles, teams or
// memberships so that this process applies the change to the next request.
func (a *API) InvalidateGrants() {
	a.grants.mu.Lock()
	a.grants.gen++
	a.grants.mu.Unlock()
}

// subject returns the policy's view of p, from the cache when fresh.
func (a *API) subject(ctx context.Context, p Principal) (*policy.Subject, error) {
	now := time.Now()
	c := &a.grants
	c.mu.Lock()
	e, ok := c.entries[p.UserID]
	gen := c.gen
	c.mu.Unlock()
	if ok && e.gen == gen && now.Sub(e.loaded) < a.opts.GrantsTTL {
		return e.subj, nil
	}
	g, err := a.store.GrantsOf(ctx, p.OrgID, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("load grants: %w", err)
	}
	s := &policy.Subject{OrgAdmin: g.OrgAdmin}
	for _, as := range g.Assignments {
		s.Grants = append(s.Grants, policy.Grant{Role: as.RoleName, GroupID: as.EntityID, Region: as.EntityRegion})
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxGrantsEntries {
		c.entries = make(map[string]grantsEntry)
	}
	c.entries[p.UserID] = grantsEntry{subj: s, loaded: now, gen: gen}
	c.mu.Unlock()
	return s, nil
}
