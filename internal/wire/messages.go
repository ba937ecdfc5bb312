package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types, the "type" field of every data frame.
const (
	TypeBasicInfo   = "basic_info"
	TypeReconfigure = "reconfigure"
	TypeError       = "error"
	TypeHello       = "hello"
	TypeRevision    = "revision"
	TypeAck         = "ack"
	TypeNack        = "nack"
	TypeTelemetry   = "telemetry"
	// TypeTelemetryAck is the CP's answer to a stored analytics batch.
	TypeTelemetryAck = "telemetry_ack"
)

// DefaultMaxPayload is Kong's default cluster_max_payload, 16 MiB: the
// largest WebSocket frame either side accepts.
const DefaultMaxPayload = 16 << 20

// DefaultMaxInflated bounds the size, in bytes, of a gunzipped frame when
// the caller gives no limit. JSON configurations compress about tenfold, so
// this admits any frame within DefaultMaxPayload that is not a gzip bomb.
const DefaultMaxInflated = 256 << 20

// PluginInfo names a plugin a data plane has loaded.
type PluginInfo struct {
	// Name is the plugin name, e.g. "key-auth".
	Name string `json:"name"`
	// Version is the plugin handler's VERSION, e.g. "3.10.0"; it may be
	// empty for custom plugins that declare none.
	Version string `json:"version,omitempty"`
}

// FilterInfo names a Wasm filter a data plane has loaded.
type FilterInfo struct {
	// Name is the filter's name.
	Name string `json:"name"`
}

// GantryHello is the Gantry extension object of basic_info. Kong data
// planes never send it.
type GantryHello struct {
	// ProtocolVersion is the sender's [ProtocolVersion]; at least 1.
	ProtocolVersion int `json:"protocol_version"`
	// Capabilities lists the optional features the sender supports (see
	// CapRevisions and friends); unknown names are ignored.
	Capabilities []string `json:"capabilities"`
	// ConfigHash and Revision are what a runtime serves when it connects
	// (omitted when it serves nothing): a control plane, or another one
	// after a failover, then sends nothing until the group changes.
	// Control planes never send them.
	ConfigHash string `json:"config_hash,omitempty"`
	Revision   int64  `json:"revision,omitempty"`
}

// BasicInfo is the first frame a data plane sends after the upgrade: one
// binary frame of plain JSON.
type BasicInfo struct {
	// Type is always TypeBasicInfo.
	Type string `json:"type"`
	// Plugins lists every plugin the node has loaded; Kong sorts them by
	// lowercased name.
	Plugins []PluginInfo `json:"plugins"`
	// Labels are the node's cluster_dp_labels; nil when it has none.
	Labels map[string]string `json:"labels,omitempty"`
	// ProcessConf is the node's configuration with secrets removed. It is
	// opaque to Gantry and kept only for display.
	ProcessConf map[string]any `json:"process_conf,omitempty"`
	// Filters are the loaded Wasm filters by name; Kong sends {} when Wasm
	// is off.
	Filters map[string]FilterInfo `json:"filters"`
	// Gantry is set only by Gantry runtimes.
	Gantry *GantryHello `json:"gantry,omitempty"`
}

// EncodeBasicInfo renders b as the plain JSON of a basic_info frame,
// setting Type.
func EncodeBasicInfo(b *BasicInfo) ([]byte, error) {
	b.Type = TypeBasicInfo
	if b.Plugins == nil {
		// Kong's CP rejects a basic_info without a plugins table.
		b.Plugins = []PluginInfo{}
	}
	if b.Filters == nil {
		// Kong always sends filters, {} when Wasm is off.
		b.Filters = map[string]FilterInfo{}
	}
	return json.Marshal(b)
}

// Errors DecodeBasicInfo may wrap.
var (
	// ErrNotJSON: the frame is not a JSON object.
	ErrNotJSON = errors.New("not a JSON object")
	// ErrWrongType: the frame's type is not the one expected here.
	ErrWrongType = errors.New("unexpected message type")
	// ErrMissingField: a required field is absent or has the wrong shape.
	ErrMissingField = errors.New("missing required field")
)

// DecodeBasicInfo decodes and checks the payload of a data plane's first
// frame the way Kong's control plane does: it must be a JSON object with
// type "basic_info" and a plugins table. Kong accepts any table there, so
// an empty JSON object is taken as an empty list. The Gantry object, when
// present, must carry a positive protocol_version. The caller must already
// have refused a frame that is not binary.
func DecodeBasicInfo(data []byte) (*BasicInfo, error) {
	var raw struct {
		Type        *string           `json:"type"`
		Plugins     json.RawMessage   `json:"plugins"`
		Labels      map[string]string `json:"labels"`
		ProcessConf map[string]any    `json:"process_conf"`
		Filters     json.RawMessage   `json:"filters"`
		Gantry      *GantryHello      `json:"gantry"`
	}
	if !isJSONObject(data) {
		return nil, fmt.Errorf("failed to decode websocket basic info data: %w", ErrNotJSON)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("failed to decode websocket basic info data: %w: %w", ErrNotJSON, err)
	}
	if raw.Type == nil || *raw.Type != TypeBasicInfo {
		got := "unknown"
		if raw.Type != nil {
			got = *raw.Type
		}
		return nil, fmt.Errorf("invalid basic info data type: %s: %w", got, ErrWrongType)
	}
	b := &BasicInfo{Type: TypeBasicInfo, Labels: raw.Labels, ProcessConf: raw.ProcessConf, Gantry: raw.Gantry}
	switch firstByte(raw.Plugins) {
	case '[':
		if err := json.Unmarshal(raw.Plugins, &b.Plugins); err != nil {
			return nil, fmt.Errorf("invalid plugins in basic info data: %w", err)
		}
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw.Plugins, &m); err != nil || len(m) > 0 {
			return nil, fmt.Errorf("invalid plugins in basic info data: an object: %w", ErrMissingField)
		}
		b.Plugins = []PluginInfo{}
	default:
		return nil, fmt.Errorf("missing plugins in basic info data: %w", ErrMissingField)
	}
	// filters is {} when Wasm is off; Lua encodes an empty table as {}
	// but an older node may send [].
	if f := firstByte(raw.Filters); f == '{' {
		if err := json.Unmarshal(raw.Filters, &b.Filters); err != nil {
			return nil, fmt.Errorf("invalid filters in basic info data: %w", err)
		}
	}
	if b.Gantry != nil && b.Gantry.ProtocolVersion < 1 {
		return nil, fmt.Errorf("invalid gantry.protocol_version %d in basic info data: %w", b.Gantry.ProtocolVersion, ErrMissingField)
	}
	return b, nil
}

// Reconfigure is Kong's CP->DP configuration frame, sent as one binary
// frame of gzip'd JSON.
type Reconfigure struct {
	// Type is always TypeReconfigure.
	Type string `json:"type"`
	// Timestamp is the export time in seconds since the Unix epoch, with
	// millisecond precision (Kong's ngx.now()).
	Timestamp float64 `json:"timestamp"`
	// ConfigTable is the flattened declarative configuration. Empty entity
	// collections are left out, never sent as [] (they hash differently).
	ConfigTable map[string]any `json:"config_table"`
	// ConfigHash is ConfigHash(ConfigTable); the DP stores it and reports
	// it in its pings.
	ConfigHash string `json:"config_hash"`
	// Hashes are the per-collection hashes; Hashes.Config == ConfigHash.
	Hashes Hashes `json:"hashes"`
}

// NewReconfigure builds a reconfigure message for config, computing its
// hashes. at is the export time.
func NewReconfigure(config map[string]any, at time.Time) (*Reconfigure, error) {
	sum, hashes, err := ConfigHash(config)
	if err != nil {
		return nil, fmt.Errorf("hashing configuration: %w", err)
	}
	return &Reconfigure{
		Type:        TypeReconfigure,
		Timestamp:   UnixSeconds(at),
		ConfigTable: config,
		ConfigHash:  sum,
		Hashes:      hashes,
	}, nil
}

// UnixSeconds renders t as Kong's float timestamp: seconds since the epoch
// with millisecond precision.
func UnixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

// EncodeReconfigure renders r as the gzip'd JSON payload of one binary
// frame, setting Type.
func EncodeReconfigure(r *Reconfigure) ([]byte, error) {
	r.Type = TypeReconfigure
	return EncodeGzipJSON(r)
}

// DecodeReconfigure gunzips and decodes a reconfigure frame. limit bounds
// the inflated size in bytes (<= 0 means DefaultMaxInflated). Numbers in
// ConfigTable decode as json.Number so that they re-encode unchanged.
// A missing config_hash is left empty and missing hashes are filled with
// EmptyConfigHash, as Kong's DP does; the caller decides whether to
// compute the hash itself.
func DecodeReconfigure(frame []byte, limit int64) (*Reconfigure, error) {
	m, err := DecodeCPFrame(frame, limit)
	if err != nil {
		return nil, err
	}
	r, ok := m.(*Reconfigure)
	if !ok {
		return nil, fmt.Errorf("got %T, want reconfigure: %w", m, ErrWrongType)
	}
	return r, nil
}

// Names of the error frame, Kong's CLUSTERING_DATA_PLANE_ERROR values.
const (
	ErrorNameConfigParse  = "declarative configuration parse failure"
	ErrorNameReloadFailed = "configuration reload failed"
	ErrorNameGeneric      = "generic or unknown error"
)

// ErrorFrame is what a Kong data plane in Konnect mode sends, as one
// binary frame of plain JSON, when it fails to apply a configuration.
type ErrorFrame struct {
	// Type is always TypeError.
	Type string `json:"type"`
	// Error is what failed.
	Error ErrorReport `json:"error"`
}

// ErrorReport is the body of an [ErrorFrame].
type ErrorReport struct {
	// Name is one of the ErrorName constants.
	Name string `json:"name"`
	// Source names the DP code that failed, e.g. "kong.clustering.data_plane".
	Source string `json:"source,omitempty"`
	// Message is the human-readable error.
	Message string `json:"message"`
	// ConfigHash is the hash of the configuration that failed to apply.
	ConfigHash string `json:"config_hash,omitempty"`
	// FlattenedErrors lists the entities that failed validation.
	FlattenedErrors []FlattenedError `json:"flattened_errors,omitempty"`
	// Fields holds schema errors that belong to no single entity.
	Fields map[string]any `json:"fields,omitempty"`
	// Exception and Traceback describe an unexpected Lua error.
	Exception string `json:"exception,omitempty"`
	Traceback string `json:"traceback,omitempty"`
}

// FlattenedError is one entity in Kong's flattened validation errors.
type FlattenedError struct {
	// EntityType is Kong's singular entity name, e.g. "route".
	EntityType string `json:"entity_type,omitempty"`
	// EntityID is the entity's UUID, when it has one.
	EntityID string `json:"entity_id,omitempty"`
	// EntityName is the entity's endpoint key (name, username, ...).
	EntityName string `json:"entity_name,omitempty"`
	// EntityTags are the entity's tags.
	EntityTags []string `json:"entity_tags,omitempty"`
	// Entity is the offending entity as the DP received it.
	Entity map[string]any `json:"entity,omitempty"`
	// Errors lists what is wrong with it.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one problem with one entity.
type FieldError struct {
	// Field is the dotted path of the field; empty for entity-level errors.
	Field string `json:"field,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
	// Type is "field" or "entity".
	Type string `json:"type,omitempty"`
}

func isJSONObject(data []byte) bool { return firstByte(data) == '{' }

// firstByte returns the first non-space byte of data, or 0.
func firstByte(data []byte) byte {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return 0
	}
	return data[0]
}
