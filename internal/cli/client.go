// Package cli is the gantry command line's client of the control plane: an HTTP client that sends
// the bearer token, follows the API's paging and decodes its problem+json and Kong errors, the
// stored login, the backup file format, and the table, JSON and YAML printers. It talks to the
// control plane only through its public HTTP API.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// DefaultServer is the control plane address used when none is given or stored.
const DefaultServer = "http://localhost:8080"

// Options configure New.
type Options struct {
	// Server is the control plane's HTTP API base URL, such as http://localhost:8080; required.
	Server string
	// Token is the bearer token sent with every request; empty sends none.
	Token string
	// HTTPClient sends the requests; http.DefaultClient's transport with a 5 minute timeout when
	// nil (a large configuration takes a while to import).
	HTTPClient *http.Client
	// UserAgent is sent with every request; "gantry-cli" when empty.
	UserAgent string
}

// Client calls the control plane's HTTP API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	agent string
}

// New checks opts and returns a client.
func New(opts Options) (*Client, error) {
	if opts.Server == "" {
		return nil, errors.New("cli: Server is required")
	}
	s := opts.Server
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http:// or https:// URL", opts.Server)
	}
	c := &Client{base: u, token: opts.Token, http: opts.HTTPClient, agent: opts.UserAgent}
	if c.http == nil {
		c.http = &http.Client{Timeout: 5 * time.Minute}
	}
	if c.agent == "" {
		c.agent = "gantry-cli"
	}
	return c, nil
}

// Server returns the base URL the client talks to.
func (c *Client) Server() string { return c.base.String() }

// Request is one API call.
type Request struct {
	Method string
	// Path is the API path, such as /v2/runtime-groups; it is appended to the server's URL.
	Path  string
	Query url.Values
	// Body is sent as is with ContentType when not nil; JSON is marshalled and sent as
	// application/json otherwise.
	Body        []byte
	ContentType string
	JSON        any
	// Accept is the Accept header; application/json when empty.
	Accept string
}

// Response is an answered call with a 2xx status.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Do sends req and returns the answer. A non-2xx answer is an *APIError; a connection failure is
// a *ConnectionError. Both carry what to do next.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + req.Path
	if len(req.Query) > 0 {
		u.RawQuery = req.Query.Encode()
	}
	body, ct := req.Body, req.ContentType
	if body == nil && req.JSON != nil {
		b, err := json.Marshal(req.JSON)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, ct = b, "application/json"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	accept := req.Accept
	if accept == "" {
		accept = "application/json"
	}
	hr.Header.Set("Accept", accept)
	hr.Header.Set("User-Agent", c.agent)
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, ctx.Err())
		}
		return nil, &ConnectionError{Server: c.base.String(), Err: err}
	}
	defer func() { _ = res.Body.Close() }() // the body was read to its end
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &ConnectionError{Server: c.base.String(), Err: fmt.Errorf("read answer: %w", err)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, decodeError(req.Method, req.Path, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return &Response{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: b}, nil
}

// call sends req and decodes a JSON answer into out (when out is not nil).
func (c *Client) call(ctx context.Context, req Request, out any) error {
	res, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(res.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %w", req.Method, req.Path, err)
	}
	return nil
}

// ConnectionError is a request that got no HTTP answer.
type ConnectionError struct {
	Server string
	Err    error
}

func (e *ConnectionError) Error() string {
	cause := e.Err
	var ue *url.Error
	if errors.As(cause, &ue) {
		cause = ue.Err
	}
	return fmt.Sprintf("cannot reach the control plane at %s: %v\nIs it running there? Point the CLI at it with --server, GANTRY_SERVER or 'gantry login --server URL'.", e.Server, cause)
}

func (e *ConnectionError) Unwrap() error { return e.Err }

// InvalidParameter is one refused input of a problem+json 400.
type InvalidParameter struct {
	Field  string `json:"field"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
	Source string `json:"source,omitempty"`
}

// FlattenedError is one invalid entity of a declarative configuration, in Kong's flattened
// error format.
type FlattenedError struct {
	EntityType string `json:"entity_type"`
	EntityID   string `json:"entity_id,omitempty"`
	EntityName string `json:"entity_name,omitempty"`
	Errors     []struct {
		Field   string `json:"field,omitempty"`
		Message string `json:"message"`
		Type    string `json:"type,omitempty"`
	} `json:"errors"`
}

// APIError is an answer with a non-2xx status: the management API's problem+json (detail,
// invalid_parameters) or a Kong error (message, flattened_errors).
type APIError struct {
	Method, Path string
	Status       int
	// Detail is the API's explanation (problem+json detail, or Kong's message).
	Detail            string             `json:"detail"`
	Message           string             `json:"message"`
	InvalidParameters []InvalidParameter `json:"invalid_parameters"`
	FlattenedErrors   []FlattenedError   `json:"flattened_errors"`
	// Fields is Kong's nested field errors, used when there are no flattened errors.
	Fields map[string]any `json:"fields"`
	// Instance is the problem's instance, gantry:trace:<request id>.
	Instance string `json:"instance"`
	// Hint says what to do next; set by the caller when it knows better than the status.
	Hint string `json:"-"`
}

func decodeError(method, path string, status int, contentType string, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		_ = json.Unmarshal(body, e) // a body that is not the expected shape leaves Detail empty
	}
	if e.Detail == "" {
		e.Detail = e.Message
	}
	if e.Detail == "" {
		e.Detail = strings.TrimSpace(string(body))
		if len(e.Detail) > 300 {
			e.Detail = e.Detail[:300] + "…"
		}
	}
	if e.Detail == "" {
		e.Detail = http.StatusText(status)
	}
	return e
}

// Error is the API's detail, each invalid parameter or entity on a line of its own, and what to do
// next.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Detail)
	for _, p := range e.InvalidParameters {
		fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Reason)
	}
	for _, line := range e.EntityErrors() {
		b.WriteString("\n  " + line)
	}
	if len(e.FlattenedErrors) == 0 && len(e.Fields) > 0 {
		for _, line := range flattenFields("", e.Fields) {
			b.WriteString("\n  " + line)
		}
	}
	if h := e.hint(); h != "" {
		b.WriteString("\n" + h)
	}
	return b.String()
}

// EntityErrors returns one line per error of each invalid entity: "service svc-a: field: message".
func (e *APIError) EntityErrors() []string {
	var out []string
	for _, fe := range e.FlattenedErrors {
		who := fe.EntityType
		switch {
		case fe.EntityName != "":
			who += " " + fe.EntityName
		case fe.EntityID != "":
			who += " " + fe.EntityID
		}
		if len(fe.Errors) == 0 {
			out = append(out, who+": invalid")
		}
		for _, er := range fe.Errors {
			if er.Field != "" {
				out = append(out, fmt.Sprintf("%s: %s: %s", who, er.Field, er.Message))
			} else {
				out = append(out, fmt.Sprintf("%s: %s", who, er.Message))
			}
		}
	}
	return out
}

func flattenFields(prefix string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		switch v := m[k].(type) {
		case map[string]any:
			out = append(out, flattenFields(name, v)...)
		default:
			out = append(out, fmt.Sprintf("%s: %v", name, v))
		}
	}
	return out
}

func (e *APIError) hint() string {
	if e.Hint != "" {
		return e.Hint
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return "Check the token: pass --token, set GANTRY_TOKEN, or run 'gantry login --server URL --token TOKEN'."
	case http.StatusForbidden:
		return "The token may not do this; use a token with more rights."
	case http.StatusNotFound:
		if strings.Contains(e.Path, "/declarative-config") && !strings.Contains(e.Detail, "runtime group") {
			return "This control plane has no declarative configuration API; upgrade it."
		}
	}
	if e.Status >= 500 {
		if id, ok := strings.CutPrefix(e.Instance, "gantry:trace:"); ok && id != "" {
			return "The control plane failed: its log tells why under request_id=" + id + "."
		}
		return "The control plane failed: its log tells why."
	}
	return ""
}

// IsNotFound reports whether err is an API answer 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsConflict reports whether err is an API answer 409.
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// IsConnection reports whether err is a failure to reach the control plane.
func IsConnection(err error) bool {
	var e *ConnectionError
	var ne net.Error
	return errors.As(err, &e) || errors.As(err, &ne)
}
