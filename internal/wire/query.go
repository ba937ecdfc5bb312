package wire

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// OutletPath is the path of Kong's hybrid protocol v1 endpoint.
const OutletPath = "/v1/outlet"

// Query parameter names of the data plane's connect URL.
const (
	ParamNodeID       = "node_id"
	ParamNodeHostname = "node_hostname"
	ParamNodeVersion  = "node_version"
)

// NodeQuery is what a data plane says about itself in the query string of
// its connect URL, before any WebSocket frame.
type NodeQuery struct {
	// NodeID is the node's UUID, stable across restarts (Kong keeps it in
	// <prefix>/kong.id).
	NodeID string
	// Hostname is the node's host name as the node sees it.
	Hostname string
	// Version is the node's software version, e.g. "3.10.0" or
	// "3.4.3.12-enterprise-edition".
	Version string
}

// RawQuery renders the query string the way Kong's data plane does:
// values are concatenated as they are, without URL encoding.
func (q NodeQuery) RawQuery() string {
	return ParamNodeID + "=" + q.NodeID + "&" + ParamNodeHostname + "=" + q.Hostname + "&" + ParamNodeVersion + "=" + q.Version
}

// QueryError reports why a connect URL's query is unacceptable. The CP
// answers it with HTTP 400 before upgrading the connection.
type QueryError struct {
	// Missing lists absent or empty parameters, in URL order of
	// node_id, node_hostname, node_version.
	Missing []string
	// Invalid maps a present parameter to the reason it was refused.
	Invalid map[string]string
}

// Error implements error.
func (e *QueryError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing query parameters: "+strings.Join(e.Missing, ", "))
	}
	for _, name := range []string{ParamNodeID, ParamNodeHostname, ParamNodeVersion} {
		if why, ok := e.Invalid[name]; ok {
			parts = append(parts, fmt.Sprintf("invalid %s: %s", name, why))
		}
	}
	return strings.Join(parts, "; ")
}

// ParseNodeQuery parses the raw (undecoded) query string of a connect URL.
//
// Kong's data plane does not URL-encode its values and Kong's control
// plane reads them raw, so values are taken as they are; a value that is a
// valid percent-encoding is decoded (a client that does encode still
// works), one that is not is kept verbatim. All three parameters are
// required and node_id must be a UUID (it is the node's identity in the
// catalogue). On failure the error is a *QueryError.
func ParseNodeQuery(rawQuery string) (NodeQuery, error) {
	var q NodeQuery
	for part := range strings.SplitSeq(rawQuery, "&") {
		name, value, _ := strings.Cut(part, "=")
		if v, err := url.PathUnescape(value); err == nil {
			value = v
		}
		// The first occurrence wins, like nginx's $arg_ variables.
		switch name {
		case ParamNodeID:
			if q.NodeID == "" {
				q.NodeID = value
			}
		case ParamNodeHostname:
			if q.Hostname == "" {
				q.Hostname = value
			}
		case ParamNodeVersion:
			if q.Version == "" {
				q.Version = value
			}
		}
	}

	qe := &QueryError{}
	if q.NodeID == "" {
		qe.Missing = append(qe.Missing, ParamNodeID)
	} else if _, err := uuid.Parse(q.NodeID); err != nil {
		qe.Invalid = map[string]string{ParamNodeID: "not a UUID"}
	}
	if q.Hostname == "" {
		qe.Missing = append(qe.Missing, ParamNodeHostname)
	}
	if q.Version == "" {
		qe.Missing = append(qe.Missing, ParamNodeVersion)
	}
	if len(qe.Missing) > 0 || len(qe.Invalid) > 0 {
		return q, qe
	}
	return q, nil
}
