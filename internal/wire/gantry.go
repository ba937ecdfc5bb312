package wire

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Hello is the CP's answer to a Gantry runtime's basic_info: the protocol
// version and capabilities both sides will use. The CP sends it before the
// first revision, as gzip'd JSON like every CP->DP data frame.
type Hello struct {
	// Type is always TypeHello.
	Type string `json:"type"`
	// ProtocolVersion is the negotiated version, min(CP, runtime); >= 1.
	ProtocolVersion int `json:"protocol_version"`
	// Capabilities are the capabilities both sides announced, sorted.
	Capabilities []string `json:"capabilities"`
}

// Negotiate computes what a CP that speaks local will use with a data
// plane whose basic_info carried remote. A nil remote is a Kong data plane
// (or a runtime without the extension): the result is nil and only Kong's
// protocol is used.
func Negotiate(local GantryHello, remote *GantryHello) (*Hello, error) {
	if remote == nil {
		return nil, nil
	}
	if local.ProtocolVersion < 1 || remote.ProtocolVersion < 1 {
		return nil, fmt.Errorf("protocol versions %d and %d: %w", local.ProtocolVersion, remote.ProtocolVersion, ErrMissingField)
	}
	h := &Hello{Type: TypeHello, ProtocolVersion: min(local.ProtocolVersion, remote.ProtocolVersion), Capabilities: []string{}}
	for _, c := range local.Capabilities {
		if slices.Contains(remote.Capabilities, c) && !slices.Contains(h.Capabilities, c) {
			h.Capabilities = append(h.Capabilities, c)
		}
	}
	slices.Sort(h.Capabilities)
	return h, nil
}

// Has reports whether the negotiated capabilities include c. A nil Hello
// (a Kong data plane) has none.
func (h *Hello) Has(c string) bool {
	return h != nil && slices.Contains(h.Capabilities, c)
}

// Revision is the CP->DP configuration frame for Gantry runtimes that
// negotiated CapRevisions. It replaces reconfigure for them: the same
// configuration and hashes, plus the revision number the runtime must
// acknowledge. Sent as one binary frame of gzip'd JSON.
type Revision struct {
	// Type is always TypeRevision.
	Type string `json:"type"`
	// Revision is the group's revision number; > 0, increasing over time
	// (a rollback is a new, higher revision).
	Revision int64 `json:"revision"`
	// Timestamp is when the revision was committed, in float seconds since
	// the Unix epoch.
	Timestamp float64 `json:"timestamp"`
	// ConfigTable is the configuration, exactly as in a reconfigure frame.
	ConfigTable map[string]any `json:"config_table"`
	// ConfigHash is ConfigHash(ConfigTable).
	ConfigHash string `json:"config_hash"`
	// Hashes are the per-collection hashes.
	Hashes Hashes `json:"hashes"`
}

// NewRevision builds a revision frame for config, computing its hashes.
func NewRevision(revision int64, config map[string]any, committed time.Time) (*Revision, error) {
	if revision <= 0 {
		return nil, fmt.Errorf("revision %d must be positive", revision)
	}
	r, err := NewReconfigure(config, committed)
	if err != nil {
		return nil, err
	}
	return &Revision{Type: TypeRevision, Revision: revision, Timestamp: r.Timestamp,
		ConfigTable: config, ConfigHash: r.ConfigHash, Hashes: r.Hashes}, nil
}

// Ack tells the CP a runtime has applied a revision and now serves it.
// Sent as one binary frame of plain JSON.
type Ack struct {
	// Type is always TypeAck.
	Type string `json:"type"`
	// Revision is the applied revision number.
	Revision int64 `json:"revision"`
	// ConfigHash is the hash the runtime now reports in its pings.
	ConfigHash string `json:"config_hash"`
}

// Nack tells the CP a runtime could not apply a revision. Entities listed
// in Errors were rejected; whether the runtime kept serving its previous
// configuration (the default) or applied the rest is said by Message. Sent
// as one binary frame of plain JSON.
type Nack struct {
	// Type is always TypeNack.
	Type string `json:"type"`
	// Revision is the revision that failed.
	Revision int64 `json:"revision"`
	// ConfigHash is the hash of the revision that failed.
	ConfigHash string `json:"config_hash"`
	// Message summarizes the failure.
	Message string `json:"message,omitempty"`
	// Errors lists the failures per entity.
	Errors []EntityError `json:"errors"`
}

// EntityError is one entity a runtime could not apply.
type EntityError struct {
	// EntityType is the collection name, e.g. "routes" or "plugins".
	EntityType string `json:"entity_type"`
	// EntityID is the entity's UUID.
	EntityID string `json:"entity_id"`
	// EntityName is the entity's endpoint key (name, username, ...) when it
	// has one.
	EntityName string `json:"entity_name,omitempty"`
	// Field is the dotted path of the offending field, empty for
	// entity-level errors.
	Field string `json:"field,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Telemetry is a batch of telemetry from a runtime that negotiated
// CapTelemetry or CapAnalytics. Its payload is opaque to this package and
// described by Schema; "gantry.analytics.v1" (package
// internal/wire/telemetry) is per-minute aggregates keyed by service,
// route, consumer and status code, never payloads, headers, paths or
// client addresses. Sent as one binary frame of gzip'd JSON.
type Telemetry struct {
	// Type is always TypeTelemetry.
	Type string `json:"type"`
	// Schema names the payload format and version; required.
	Schema string `json:"schema"`
	// Seq numbers the batch for acknowledgement and deduplication: > 0 for
	// analytics batches, unique per node id (the runtime persists its
	// counter with its buffered batches); 0 for batches nobody acks.
	Seq int64 `json:"seq,omitempty"`
	// SentAt is when the runtime sent the batch, float seconds since the
	// Unix epoch.
	SentAt float64 `json:"sent_at"`
	// Payload is the batch, uninterpreted.
	Payload json.RawMessage `json:"payload"`
}

// TelemetryAck tells a runtime that the telemetry batch Seq is stored (or
// was a duplicate of a stored one) and may be forgotten. Sent as one binary
// frame of gzip'd JSON, as every CP->DP data frame.
type TelemetryAck struct {
	// Type is always TypeTelemetryAck.
	Type string `json:"type"`
	// Seq is the acknowledged batch's Telemetry.Seq; > 0.
	Seq int64 `json:"seq"`
}
