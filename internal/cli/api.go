package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// groupsPath is the runtime-group collection.
const groupsPath = "/v2/runtime-groups"

// Group is a runtime group as the API shows it.
type Group struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"`
	IsDefault   bool              `json:"is_default"`
	Config      struct {
		ControlPlaneEndpoint string `json:"control_plane_endpoint"`
		TelemetryEndpoint    string `json:"telemetry_endpoint"`
		ClusterType          string `json:"cluster_type"`
		AuthType             string `json:"auth_type"`
	} `json:"config"`
	InstanceCounts map[string]int `json:"instance_counts,omitempty"`
	// Requests24h and ErrorRate24h are the group's traffic over the last 24 hours, when the
	// control plane keeps analytics; ErrorRate24h is null without requests.
	Requests24h  *int64    `json:"requests_24h,omitempty"`
	ErrorRate24h *float64  `json:"error_rate_24h,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// GroupInput is the body of a group creation or change. On a change, nil fields stay as they are
// and labels merge into the existing ones (a nil value removes that label).
type GroupInput struct {
	Name        *string            `json:"name,omitempty"`
	Description *string            `json:"description,omitempty"`
	Labels      map[string]*string `json:"labels,omitempty"`
}

type pageMeta struct {
	Meta struct {
		Page struct {
			Number int `json:"number"`
			Size   int `json:"size"`
			Total  int `json:"total"`
		} `json:"page"`
	} `json:"meta"`
}

// listPageSize is the page size the client asks for when it walks a paged list.
const listPageSize = 100

// ListGroups returns every runtime group of the organization, reading every page; filter adds
// query parameters such as filter[name][eq].
func (c *Client) ListGroups(ctx context.Context, filter url.Values) ([]Group, error) {
	var all []Group
	for page := 1; ; page++ {
		q := url.Values{}
		for k, v := range filter {
			q[k] = v
		}
		q.Set("page[size]", strconv.Itoa(listPageSize))
		q.Set("page[number]", strconv.Itoa(page))
		var out struct {
			Data []Group `json:"data"`
			pageMeta
		}
		if err := c.call(ctx, Request{Method: http.MethodGet, Path: groupsPath, Query: q}, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Data...)
		if len(out.Data) == 0 || len(all) >= out.Meta.Page.Total {
			return all, nil
		}
	}
}

// GetGroup returns the group with that id.
func (c *Client) GetGroup(ctx context.Context, id string) (Group, error) {
	var g Group
	err := c.call(ctx, Request{Method: http.MethodGet, Path: groupsPath + "/" + url.PathEscape(id)}, &g)
	return g, err
}

// ResolveGroup returns the group named ref, or whose id is ref.
func (c *Client) ResolveGroup(ctx context.Context, ref string) (Group, error) {
	if ref == "" {
		return Group{}, fmt.Errorf("no runtime group given: name one with --group")
	}
	if looksLikeID(ref) {
		g, err := c.GetGroup(ctx, ref)
		if err == nil || !IsNotFound(err) {
			return g, err
		}
	}
	gs, err := c.ListGroups(ctx, url.Values{"filter[name][eq]": {ref}})
	if err != nil {
		return Group{}, err
	}
	for _, g := range gs {
		if g.Name == ref {
			return g, nil
		}
	}
	return Group{}, &APIError{Method: http.MethodGet, Path: groupsPath, Status: http.StatusNotFound,
		Detail: fmt.Sprintf("No runtime group is named or has the id %q.", ref),
		Hint:   "List the groups with 'gantry groups list'."}
}

// looksLikeID reports whether s has the shape of a UUID.
func looksLikeID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// CreateGroup creates a runtime group.
func (c *Client) CreateGroup(ctx context.Context, in GroupInput) (Group, error) {
	body := map[string]any{"name": in.Name}
	if in.Description != nil {
		body["description"] = *in.Description
	}
	if len(in.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range in.Labels {
			if v != nil {
				labels[k] = *v
			}
		}
		body["labels"] = labels
	}
	var g Group
	err := c.call(ctx, Request{Method: http.MethodPost, Path: groupsPath, JSON: body}, &g)
	return g, err
}

// UpdateGroup changes the group with that id.
func (c *Client) UpdateGroup(ctx context.Context, id string, in GroupInput) (Group, error) {
	var g Group
	err := c.call(ctx, Request{Method: http.MethodPatch, Path: groupsPath + "/" + url.PathEscape(id), JSON: in}, &g)
	return g, err
}

// DeleteGroup deletes the group with that id and its configuration.
func (c *Client) DeleteGroup(ctx context.Context, id string) error {
	return c.call(ctx, Request{Method: http.MethodDelete, Path: groupsPath + "/" + url.PathEscape(id)}, nil)
}

// Node is a runtime instance of a group.
type Node struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	Type     string `json:"type"`
	// LastPing is Unix seconds.
	LastPing   int64             `json:"last_ping"`
	ConfigHash string            `json:"config_hash"`
	Status     string            `json:"status"`
	Connected  bool              `json:"connected"`
	Revision   int64             `json:"revision"`
	LastError  *string           `json:"last_error"`
	IP         string            `json:"ip"`
	Labels     map[string]string `json:"labels"`
	// GroupName is filled by the CLI when it lists the nodes of several groups.
	GroupName string `json:"group,omitempty"`
}

// ListNodes returns every node of the group, following the cursor.
func (c *Client) ListNodes(ctx context.Context, groupID string) ([]Node, error) {
	var all []Node
	after := ""
	for {
		q := url.Values{"page[size]": {"1000"}}
		if after != "" {
			q.Set("page[after]", after)
		}
		var out struct {
			Items []Node `json:"items"`
			Page  struct {
				Next *string `json:"next"`
			} `json:"page"`
		}
		if err := c.call(ctx, Request{Method: http.MethodGet, Path: groupsPath + "/" + url.PathEscape(groupID) + "/nodes", Query: q}, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Items...)
		if out.Page.Next == nil || *out.Page.Next == "" || len(out.Items) == 0 {
			return all, nil
		}
		after = *out.Page.Next
	}
}

// Certificate is a data-plane client certificate pinned to a group.
type Certificate struct {
	ID          string `json:"id"`
	Cert        string `json:"cert"`
	Title       string `json:"title"`
	Fingerprint string `json:"fingerprint"`
	Generated   bool   `json:"generated"`
	// CreatedAt and ExpiresAt are Unix seconds.
	CreatedAt int64 `json:"created_at"`
	ExpiresAt int64 `json:"expires_at"`
}

// IssuedCertificate is a certificate the control plane generated, with its key and CA, which
// the API returns only once.
type IssuedCertificate struct {
	Item   Certificate `json:"item"`
	Key    string      `json:"key"`
	CACert string      `json:"ca_cert"`
}

func certsPath(groupID string) string {
	return groupsPath + "/" + url.PathEscape(groupID) + "/dp-client-certificates"
}

// ListCertificates returns the certificates pinned to the group.
func (c *Client) ListCertificates(ctx context.Context, groupID string) ([]Certificate, error) {
	var out struct {
		Items []Certificate `json:"items"`
	}
	err := c.call(ctx, Request{Method: http.MethodGet, Path: certsPath(groupID)}, &out)
	return out.Items, err
}

// GenerateCertificate has the control plane issue and pin a client certificate for the group.
func (c *Client) GenerateCertificate(ctx context.Context, groupID, title string) (IssuedCertificate, error) {
	var out IssuedCertificate
	err := c.call(ctx, Request{Method: http.MethodPost, Path: certsPath(groupID) + "/generate", JSON: map[string]string{"title": title}}, &out)
	return out, err
}

// PinCertificate pins a PEM certificate to the group.
func (c *Client) PinCertificate(ctx context.Context, groupID, title, cert string) (Certificate, error) {
	var out struct {
		Item Certificate `json:"item"`
	}
	err := c.call(ctx, Request{Method: http.MethodPost, Path: certsPath(groupID), JSON: map[string]string{"title": title, "cert": cert}}, &out)
	return out.Item, err
}

// RevokeCertificate unpins a certificate; instances connected with it are dropped.
func (c *Client) RevokeCertificate(ctx context.Context, groupID, certID string) error {
	return c.call(ctx, Request{Method: http.MethodDelete, Path: certsPath(groupID) + "/" + url.PathEscape(certID)}, nil)
}

// Token is a personal access token.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hint       string     `json:"hint"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// Token is the secret, present only in the answer to its creation.
	Token string `json:"token,omitempty"`
}

const tokensPath = "/v2/users/me/personal-access-tokens" //nolint:gosec // a URL path, not a credential

// CreateToken creates a personal access token; expiresIn 0 never expires.
func (c *Client) CreateToken(ctx context.Context, name string, expiresIn time.Duration) (Token, error) {
	body := map[string]any{"name": name}
	if expiresIn > 0 {
		body["expires_in"] = int64(expiresIn / time.Second)
	}
	var t Token
	err := c.call(ctx, Request{Method: http.MethodPost, Path: tokensPath, JSON: body}, &t)
	return t, err
}

// ListTokens returns the caller's tokens.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Data []Token `json:"data"`
	}
	err := c.call(ctx, Request{Method: http.MethodGet, Path: tokensPath}, &out)
	return out.Data, err
}

// RevokeToken revokes one of the caller's tokens.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, Request{Method: http.MethodDelete, Path: tokensPath + "/" + url.PathEscape(id)}, nil)
}

// Me checks the token and returns the caller's user and organization ids.
func (c *Client) Me(ctx context.Context) (userID, orgID string, err error) {
	var out struct {
		ID    string `json:"id"`
		OrgID string `json:"organization_id"`
	}
	err = c.call(ctx, Request{Method: http.MethodGet, Path: "/v2/users/me"}, &out)
	return out.ID, out.OrgID, err
}

// Counts are the created, updated and deleted entities of one type in a revision.
type Counts struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Deleted int `json:"deleted"`
}

// Revision is a numbered change of a group's configuration.
type Revision struct {
	Number     int64     `json:"number"`
	ConfigHash *string   `json:"config_hash"`
	CreatedAt  time.Time `json:"created_at"`
	Actor      *struct {
		UserID  string `json:"user_id,omitempty"`
		TokenID string `json:"token_id,omitempty"`
	} `json:"actor"`
	Source  string            `json:"source"`
	Summary map[string]Counts `json:"summary"`
	Config  map[string]any    `json:"config,omitempty"`
}

// EntityDiff is one entity that differs between two configurations.
type EntityDiff struct {
	Type   string   `json:"entity_type"`
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Change string   `json:"change"`
	Fields []string `json:"fields,omitempty"`
}

// Diff is what changes from one configuration to another.
type Diff struct {
	From     int64        `json:"from,omitempty"`
	To       int64        `json:"to,omitempty"`
	Entities []EntityDiff `json:"entities"`
}

// UnmarshalJSON accepts a diff object or a bare list of entity diffs.
func (d *Diff) UnmarshalJSON(b []byte) error {
	var list []EntityDiff
	if err := json.Unmarshal(b, &list); err == nil {
		d.Entities = list
		return nil
	}
	type plain Diff
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err //nolint:wrapcheck // json's own message names the position
	}
	*d = Diff(p)
	return nil
}

func revisionsPath(groupID string) string {
	return groupsPath + "/" + url.PathEscape(groupID) + "/revisions"
}

// ListRevisions returns the group's revisions, newest first, at most limit (0: all).
func (c *Client) ListRevisions(ctx context.Context, groupID string, limit int) ([]Revision, error) {
	var all []Revision
	for page := 1; ; page++ {
		q := url.Values{"page[size]": {strconv.Itoa(listPageSize)}, "page[number]": {strconv.Itoa(page)}}
		var out struct {
			Data []Revision `json:"data"`
			pageMeta
		}
		if err := c.call(ctx, Request{Method: http.MethodGet, Path: revisionsPath(groupID), Query: q}, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Data...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
		if len(out.Data) == 0 || len(all) >= out.Meta.Page.Total {
			return all, nil
		}
	}
}

// GetRevision returns revision n of the group, with its configuration when withConfig.
func (c *Client) GetRevision(ctx context.Context, groupID string, n int64, withConfig bool) (Revision, error) {
	var q url.Values
	if withConfig {
		q = url.Values{"include": {"config"}}
	}
	var r Revision
	err := c.call(ctx, Request{Method: http.MethodGet, Path: revisionsPath(groupID) + "/" + strconv.FormatInt(n, 10), Query: q}, &r)
	return r, err
}

// DiffRevisions returns what changed from revision against to revision n; against 0 means n-1.
func (c *Client) DiffRevisions(ctx context.Context, groupID string, n, against int64) (Diff, error) {
	var q url.Values
	if against > 0 {
		q = url.Values{"against": {strconv.FormatInt(against, 10)}}
	}
	var d Diff
	err := c.call(ctx, Request{Method: http.MethodGet, Path: revisionsPath(groupID) + "/" + strconv.FormatInt(n, 10) + "/diff", Query: q}, &d)
	return d, err
}

// Rollback makes a new revision equal to revision n; changed is false when n's configuration is
// already the current one.
func (c *Client) Rollback(ctx context.Context, groupID string, n int64) (rev Revision, changed bool, err error) {
	res, err := c.Do(ctx, Request{Method: http.MethodPost, Path: revisionsPath(groupID) + "/" + strconv.FormatInt(n, 10) + "/rollback"})
	if err != nil {
		return Revision{}, false, err
	}
	if err := json.Unmarshal(res.Body, &rev); err != nil {
		return Revision{}, false, fmt.Errorf("rollback: the answer is not the expected JSON: %w", err)
	}
	return rev, res.Status == http.StatusCreated, nil
}
