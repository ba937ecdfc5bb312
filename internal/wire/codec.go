package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Errors of the frame codec.
var (
	// ErrNotGzip: a frame that must be gzip'd is not.
	ErrNotGzip = errors.New("frame is not gzip data")
	// ErrTooLarge: a frame inflates beyond the caller's limit.
	ErrTooLarge = errors.New("inflated frame exceeds the size limit")
)

// gzipMagic starts every gzip stream (RFC 1952); no JSON text starts so.
var gzipMagic = []byte{0x1f, 0x8b}

// IsGzip reports whether frame starts with the gzip magic bytes.
func IsGzip(frame []byte) bool { return bytes.HasPrefix(frame, gzipMagic) }

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// EncodeGzipJSON renders v as gzip'd JSON (RFC 1952, as Kong's
// deflate_gzip does), ready to be sent as one binary frame.
func EncodeGzipJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding frame: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing frame: %w", err)
	}
	return buf.Bytes(), nil
}

// Gunzip inflates frame, refusing more than limit bytes of output
// (<= 0 means DefaultMaxInflated).
func Gunzip(frame []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxInflated
	}
	if !IsGzip(frame) {
		return nil, ErrNotGzip
	}
	zr, err := gzip.NewReader(bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotGzip, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("inflating frame: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return out, nil
}

// cpEnvelope is the union of the CP->DP frame fields, so that a frame
// (which may hold a large configuration) is decoded in one pass.
type cpEnvelope struct {
	Type            string   `json:"type"`
	Timestamp       float64  `json:"timestamp"`
	ConfigTable     any      `json:"config_table"`
	ConfigHash      string   `json:"config_hash"`
	Hashes          *Hashes  `json:"hashes"`
	Revision        int64    `json:"revision"`
	ProtocolVersion int      `json:"protocol_version"`
	Capabilities    []string `json:"capabilities"`
	Seq             int64    `json:"seq"`
}

// DecodeCPFrame gunzips and decodes a CP->DP data frame and returns one of
// *Reconfigure, *Revision, *Hello or *TelemetryAck. limit bounds the inflated size
// (<= 0 means DefaultMaxInflated). Numbers in configurations decode as
// json.Number. An unknown type is an error wrapping ErrWrongType; Kong's
// DP ignores such frames, so callers may choose to do the same.
func DecodeCPFrame(frame []byte, limit int64) (any, error) {
	data, err := Gunzip(frame, limit)
	if err != nil {
		return nil, err
	}
	if !isJSONObject(data) {
		return nil, fmt.Errorf("decoding frame: %w", ErrNotJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var env cpEnvelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decoding frame: %w: %w", ErrNotJSON, err)
	}
	hashes := Hashes{}
	if env.Hashes != nil {
		hashes = *env.Hashes
	}
	hashes.FillEmpty()
	// Lua cannot tell [] from {}: an empty array is an empty table.
	config, _ := env.ConfigTable.(map[string]any)
	if a, ok := env.ConfigTable.([]any); ok && len(a) == 0 {
		config = map[string]any{}
	}
	switch env.Type {
	case TypeReconfigure:
		if config == nil {
			return nil, fmt.Errorf("reconfigure without a config_table object: %w", ErrMissingField)
		}
		return &Reconfigure{Type: env.Type, Timestamp: env.Timestamp, ConfigTable: config,
			ConfigHash: env.ConfigHash, Hashes: hashes}, nil
	case TypeRevision:
		if config == nil || env.Revision <= 0 || env.ConfigHash == "" {
			return nil, fmt.Errorf("revision needs a config_table object, a positive revision and config_hash: %w", ErrMissingField)
		}
		return &Revision{Type: env.Type, Revision: env.Revision, Timestamp: env.Timestamp,
			ConfigTable: config, ConfigHash: env.ConfigHash, Hashes: hashes}, nil
	case TypeHello:
		if env.ProtocolVersion < 1 {
			return nil, fmt.Errorf("hello without a protocol_version: %w", ErrMissingField)
		}
		return &Hello{Type: env.Type, ProtocolVersion: env.ProtocolVersion, Capabilities: env.Capabilities}, nil
	case TypeTelemetryAck:
		if env.Seq <= 0 {
			return nil, fmt.Errorf("telemetry_ack needs a positive seq: %w", ErrMissingField)
		}
		return &TelemetryAck{Type: env.Type, Seq: env.Seq}, nil
	default:
		return nil, fmt.Errorf("CP frame type %q: %w", env.Type, ErrWrongType)
	}
}

// dpEnvelope is the union of the DP->CP frame fields other than
// basic_info.
type dpEnvelope struct {
	Type       string          `json:"type"`
	Error      *ErrorReport    `json:"error"`
	Revision   int64           `json:"revision"`
	ConfigHash string          `json:"config_hash"`
	Message    string          `json:"message"`
	Errors     []EntityError   `json:"errors"`
	Schema     string          `json:"schema"`
	SentAt     float64         `json:"sent_at"`
	Payload    json.RawMessage `json:"payload"`
	Seq        int64           `json:"seq"`
}

// DecodeDPFrame decodes a DP->CP binary data frame and returns one of
// *BasicInfo, *ErrorFrame, *Ack, *Nack or *Telemetry. A gzip'd frame (only
// telemetry is) is inflated first, up to limit bytes (<= 0 means
// DefaultMaxInflated). The CP must refuse text frames before calling it.
func DecodeDPFrame(frame []byte, limit int64) (any, error) {
	data := frame
	if IsGzip(frame) {
		var err error
		if data, err = Gunzip(frame, limit); err != nil {
			return nil, err
		}
	}
	if !isJSONObject(data) {
		return nil, fmt.Errorf("decoding frame: %w", ErrNotJSON)
	}
	var env dpEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decoding frame: %w: %w", ErrNotJSON, err)
	}
	switch env.Type {
	case TypeBasicInfo:
		return DecodeBasicInfo(data)
	case TypeError:
		if env.Error == nil {
			return nil, fmt.Errorf("error frame without error: %w", ErrMissingField)
		}
		return &ErrorFrame{Type: env.Type, Error: *env.Error}, nil
	case TypeAck:
		if env.Revision <= 0 || env.ConfigHash == "" {
			return nil, fmt.Errorf("ack needs a positive revision and config_hash: %w", ErrMissingField)
		}
		return &Ack{Type: env.Type, Revision: env.Revision, ConfigHash: env.ConfigHash}, nil
	case TypeNack:
		if env.Revision <= 0 {
			return nil, fmt.Errorf("nack needs a positive revision: %w", ErrMissingField)
		}
		return &Nack{Type: env.Type, Revision: env.Revision, ConfigHash: env.ConfigHash,
			Message: env.Message, Errors: env.Errors}, nil
	case TypeTelemetry:
		if env.Schema == "" {
			return nil, fmt.Errorf("telemetry without schema: %w", ErrMissingField)
		}
		if env.Seq < 0 {
			return nil, fmt.Errorf("telemetry with a negative seq: %w", ErrMissingField)
		}
		return &Telemetry{Type: env.Type, Schema: env.Schema, Seq: env.Seq, SentAt: env.SentAt, Payload: env.Payload}, nil
	default:
		return nil, fmt.Errorf("DP frame type %q: %w", env.Type, ErrWrongType)
	}
}

// EncodeDPFrame renders a DP->CP message (*ErrorFrame, *Ack, *Nack,
// *Telemetry or *BasicInfo) as the payload of one binary frame, setting
// its Type: gzip'd JSON for telemetry, plain JSON for the rest.
func EncodeDPFrame(m any) ([]byte, error) {
	switch v := m.(type) {
	case *BasicInfo:
		return EncodeBasicInfo(v)
	case *ErrorFrame:
		v.Type = TypeError
	case *Ack:
		v.Type = TypeAck
	case *Nack:
		v.Type = TypeNack
	case *Telemetry:
		v.Type = TypeTelemetry
		return EncodeGzipJSON(v)
	default:
		return nil, fmt.Errorf("%T is not a DP->CP message: %w", m, ErrWrongType)
	}
	return json.Marshal(m)
}

// EncodeCPFrame renders a CP->DP message (*Reconfigure, *Revision, *Hello
// or *TelemetryAck) as gzip'd JSON for one binary frame, setting its Type.
func EncodeCPFrame(m any) ([]byte, error) {
	switch v := m.(type) {
	case *Reconfigure:
		v.Type = TypeReconfigure
	case *Revision:
		v.Type = TypeRevision
	case *Hello:
		v.Type = TypeHello
	case *TelemetryAck:
		v.Type = TypeTelemetryAck
	default:
		return nil, fmt.Errorf("%T is not a CP->DP message: %w", m, ErrWrongType)
	}
	return EncodeGzipJSON(m)
}
