package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeBasicInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr error
		errText string
		check   func(t *testing.T, b *BasicInfo)
	}{
		{name: "kong dp", in: `{"type":"basic_info","plugins":[{"name":"acl","version":"3.10.0"},{"name":"key-auth","version":"3.10.0"}],
			"process_conf":{"role":"data_plane"},"filters":{},"labels":{"region":"eu"}}`,
			check: func(t *testing.T, b *BasicInfo) {
				want := []PluginInfo{{"acl", "3.10.0"}, {"key-auth", "3.10.0"}}
				if !reflect.DeepEqual(b.Plugins, want) || b.Labels["region"] != "eu" || b.ProcessConf["role"] != "data_plane" || b.Gantry != nil {
					t.Errorf("decoded %+v", b)
				}
			}},
		{name: "plugins as empty lua table", in: `{"type":"basic_info","plugins":{}}`,
			check: func(t *testing.T, b *BasicInfo) {
				if b.Plugins == nil || len(b.Plugins) != 0 {
					t.Errorf("plugins %#v, want empty list", b.Plugins)
				}
			}},
		{name: "gantry runtime", in: `{"type":"basic_info","plugins":[],"gantry":{"protocol_version":1,"capabilities":["revisions","telemetry"]}}`,
			check: func(t *testing.T, b *BasicInfo) {
				if b.Gantry == nil || b.Gantry.ProtocolVersion != 1 || len(b.Gantry.Capabilities) != 2 {
					t.Errorf("gantry %+v", b.Gantry)
				}
			}},
		{name: "not json", in: `hello`, wantErr: nil, errText: "failed to decode websocket basic info data"},
		{name: "json array", in: `[1]`, wantErr: ErrNotJSON},
		{name: "gzip'd", in: string(mustGzip(t, `{"type":"basic_info","plugins":[]}`)), errText: "failed to decode websocket basic info data"},
		{name: "no type", in: `{"plugins":[]}`, wantErr: ErrWrongType, errText: "invalid basic info data type: unknown"},
		{name: "wrong type", in: `{"type":"reconfigure","plugins":[]}`, wantErr: ErrWrongType, errText: "invalid basic info data type: reconfigure"},
		{name: "no plugins", in: `{"type":"basic_info"}`, wantErr: ErrMissingField, errText: "missing plugins in basic info data"},
		{name: "plugins not a table", in: `{"type":"basic_info","plugins":"acl"}`, wantErr: ErrMissingField},
		{name: "plugins null", in: `{"type":"basic_info","plugins":null}`, wantErr: ErrMissingField},
		{name: "bad gantry version", in: `{"type":"basic_info","plugins":[],"gantry":{"protocol_version":0}}`, wantErr: ErrMissingField},
		{name: "label not a string", in: `{"type":"basic_info","plugins":[],"labels":{"a":1}}`, errText: "failed to decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := DecodeBasicInfo([]byte(tt.in))
			if tt.check != nil {
				if err != nil {
					t.Fatalf("DecodeBasicInfo: %v", err)
				}
				tt.check(t, b)
				return
			}
			if err == nil {
				t.Fatalf("DecodeBasicInfo succeeded with %+v, want an error", b)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q, want it to contain %q", err, tt.errText)
			}
		})
	}
}

func TestBasicInfoRoundTrip(t *testing.T) {
	t.Parallel()
	in := &BasicInfo{Plugins: []PluginInfo{{"cors", "3.10.0"}}, Labels: map[string]string{"a": "b"},
		Gantry: &GantryHello{ProtocolVersion: ProtocolVersion, Capabilities: []string{CapRevisions}}}
	data, err := EncodeBasicInfo(in)
	if err != nil {
		t.Fatal(err)
	}
	if IsGzip(data) {
		t.Error("basic_info must be plain JSON")
	}
	out, err := DecodeBasicInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	// An empty plugin list is still sent, since Kong requires the field.
	data, err = EncodeBasicInfo(&BasicInfo{})
	if err != nil || !bytes.Contains(data, []byte(`"plugins":[]`)) {
		t.Errorf("empty basic_info encodes as %s, %v", data, err)
	}
}

func TestReconfigureRoundTrip(t *testing.T) {
	t.Parallel()
	config := map[string]any{
		"_format_version": "3.0",
		"_transform":      false,
		"services":        []any{map[string]any{"id": "s1", "host": "example.com", "port": json.Number("443"), "path": nil}},
		"routes":          []any{map[string]any{"id": "r1", "service": "s1", "paths": []any{"/a<b>&"}}},
	}
	at := time.UnixMilli(1719800000123)
	r, err := NewReconfigure(config, at)
	if err != nil {
		t.Fatal(err)
	}
	if r.Timestamp != 1719800000.123 {
		t.Errorf("timestamp %v", r.Timestamp)
	}
	frame, err := EncodeReconfigure(r)
	if err != nil {
		t.Fatal(err)
	}
	if !IsGzip(frame) {
		t.Fatal("reconfigure frame is not gzip")
	}
	plain, err := Gunzip(frame, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Kong's DP reads config_table verbatim: no HTML escaping of "<>&".
	if !bytes.Contains(plain, []byte(`"/a<b>&"`)) || !bytes.Contains(plain, []byte(`"timestamp":1719800000.123`)) {
		t.Errorf("payload %s", plain)
	}
	got, err := DecodeReconfigure(frame, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.ConfigHash != r.ConfigHash || got.Hashes != r.Hashes || got.Timestamp != r.Timestamp {
		t.Errorf("got %s %+v, want %s %+v", got.ConfigHash, got.Hashes, r.ConfigHash, r.Hashes)
	}
	// The receiver recomputes the same hash from what it decoded.
	again, _, err := ConfigHash(got.ConfigTable)
	if err != nil || again != r.ConfigHash {
		t.Errorf("recomputed hash %s (%v), want %s", again, err, r.ConfigHash)
	}
	if !reflect.DeepEqual(got.ConfigTable, config) {
		t.Errorf("config_table round trip: %#v", got.ConfigTable)
	}
}

func TestDecodeReconfigureFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		frame   []byte
		limit   int64
		wantErr error
	}{
		{"plain json", []byte(`{"type":"reconfigure","config_table":{}}`), 0, ErrNotGzip},
		{"truncated gzip", mustGzip(t, `{"type":"reconfigure","config_table":{}}`)[:15], 0, nil},
		{"gzip header only", []byte{0x1f, 0x8b, 0x08}, 0, ErrNotGzip},
		{"gzip'd non-json", mustGzip(t, `not json`), 0, ErrNotJSON},
		{"gzip'd truncated json", mustGzip(t, `{"type":"reconfigure","config_table":{`), 0, ErrNotJSON},
		{"wrong type", mustGzip(t, `{"type":"surprise","config_table":{}}`), 0, ErrWrongType},
		{"hello is not reconfigure", mustGzip(t, `{"type":"hello","protocol_version":1}`), 0, ErrWrongType},
		{"no config_table", mustGzip(t, `{"type":"reconfigure","config_hash":"x"}`), 0, ErrMissingField},
		{"config_table a string", mustGzip(t, `{"type":"reconfigure","config_table":"x"}`), 0, ErrMissingField},
		{"config_table a list", mustGzip(t, `{"type":"reconfigure","config_table":[1]}`), 0, ErrMissingField},
		{"over the limit", mustGzip(t, `{"type":"reconfigure","config_table":{"a":"`+strings.Repeat("x", 1000)+`"}}`), 100, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := DecodeReconfigure(tt.frame, tt.limit)
			if err == nil {
				t.Fatalf("DecodeReconfigure succeeded with %+v", r)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestDecodeReconfigureEmptyArray: [] is an empty Lua table, like {}.
func TestDecodeReconfigureEmptyArray(t *testing.T) {
	t.Parallel()
	r, err := DecodeReconfigure(mustGzip(t, `{"type":"reconfigure","config_table":[]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConfigTable == nil || len(r.ConfigTable) != 0 {
		t.Errorf("config_table %#v, want an empty map", r.ConfigTable)
	}
}

// TestDecodeReconfigureFillsHashes: Kong's DP tolerates missing hashes and
// fills them with zeros; so must we.
func TestDecodeReconfigureFillsHashes(t *testing.T) {
	t.Parallel()
	r, err := DecodeReconfigure(mustGzip(t, `{"type":"reconfigure","config_table":{"_format_version":"3.0"},"hashes":{"routes":"abc"}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Hashes{Config: EmptyConfigHash, Routes: "abc", Services: EmptyConfigHash, Plugins: EmptyConfigHash,
		Upstreams: EmptyConfigHash, Targets: EmptyConfigHash}
	if r.Hashes != want || r.ConfigHash != "" {
		t.Errorf("hashes %+v, config_hash %q", r.Hashes, r.ConfigHash)
	}
}

func TestDPFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  any
		gzip bool
	}{
		{"ack", &Ack{Revision: 7, ConfigHash: strings.Repeat("a", 32)}, false},
		{"nack", &Nack{Revision: 8, ConfigHash: strings.Repeat("b", 32), Message: "kept revision 7",
			Errors: []EntityError{{EntityType: "routes", EntityID: "r1", EntityName: "web", Field: "paths.1", Message: "invalid regex"}}}, false},
		{"telemetry", &Telemetry{Schema: "gantry.metrics.v1", SentAt: 1719800060, Payload: json.RawMessage(`{"minute":28663334}`)}, true},
		{"analytics telemetry", &Telemetry{Schema: "gantry.analytics.v1", Seq: 12, SentAt: 1719800060, Payload: json.RawMessage(`{"minutes":[]}`)}, true},
		{"error", &ErrorFrame{Error: ErrorReport{Name: ErrorNameConfigParse, Source: "kong.clustering.data_plane",
			Message: "bad config", ConfigHash: strings.Repeat("c", 32),
			FlattenedErrors: []FlattenedError{{EntityType: "route", EntityID: "r1", Errors: []FieldError{{Field: "paths", Message: "bad", Type: "field"}}}},
		}}, false},
		{"basic_info", &BasicInfo{Plugins: []PluginInfo{{"acl", "3.10.0"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			frame, err := EncodeDPFrame(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if IsGzip(frame) != tt.gzip {
				t.Errorf("gzip = %v, want %v", IsGzip(frame), tt.gzip)
			}
			got, err := DecodeDPFrame(frame, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Errorf("round trip: got %+v, want %+v", got, tt.msg)
			}
		})
	}
}

// TestDecodeKongErrorFrame decodes an error frame as Kong's DP writes it.
func TestDecodeKongErrorFrame(t *testing.T) {
	t.Parallel()
	frame := `{"type":"error","error":{"name":"configuration reload failed","source":"kong.clustering.config_helper.update",
		"message":"worker events broadcast failed","config_hash":"d41d8cd98f00b204e9800998ecf8427e","flattened_errors":[],"fields":{}}}`
	m, err := DecodeDPFrame([]byte(frame), 0)
	if err != nil {
		t.Fatal(err)
	}
	ef, ok := m.(*ErrorFrame)
	if !ok || ef.Error.Name != ErrorNameReloadFailed || ef.Error.ConfigHash != "d41d8cd98f00b204e9800998ecf8427e" ||
		ef.Error.Message != "worker events broadcast failed" {
		t.Errorf("decoded %#v", m)
	}
}

func TestDecodeDPFrameFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
	}{
		{"not json", []byte("ping"), ErrNotJSON},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, ErrNotGzip},
		{"unknown type", []byte(`{"type":"reconfigure"}`), ErrWrongType},
		{"ack without revision", []byte(`{"type":"ack","config_hash":"x"}`), ErrMissingField},
		{"ack without hash", []byte(`{"type":"ack","revision":3}`), ErrMissingField},
		{"nack without revision", []byte(`{"type":"nack"}`), ErrMissingField},
		{"error without body", []byte(`{"type":"error"}`), ErrMissingField},
		{"telemetry without schema", mustGzip(t, `{"type":"telemetry","payload":{}}`), ErrMissingField},
		{"telemetry with a negative seq", mustGzip(t, `{"type":"telemetry","schema":"gantry.analytics.v1","seq":-1,"payload":{}}`), ErrMissingField},
		{"basic_info without plugins", []byte(`{"type":"basic_info"}`), ErrMissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if m, err := DecodeDPFrame(tt.frame, 0); !errors.Is(err, tt.wantErr) {
				t.Errorf("DecodeDPFrame = %+v, %v; want %v", m, err, tt.wantErr)
			}
		})
	}
}

func TestCPFrames(t *testing.T) {
	t.Parallel()
	rev, err := NewRevision(42, map[string]any{"_format_version": "3.0", "services": []any{map[string]any{"id": "s1"}}}, time.UnixMilli(1719800000500))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []any{rev, &Hello{ProtocolVersion: 1, Capabilities: []string{CapRevisions}}, &TelemetryAck{Seq: 7}} {
		frame, err := EncodeCPFrame(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !IsGzip(frame) {
			t.Errorf("%T frame is not gzip", msg)
		}
		got, err := DecodeCPFrame(frame, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, msg) {
			t.Errorf("round trip: got %+v, want %+v", got, msg)
		}
	}
	if _, err := NewRevision(0, map[string]any{}, time.Now()); err == nil {
		t.Error("NewRevision(0) succeeded")
	}
	if _, err := EncodeCPFrame(&Ack{}); !errors.Is(err, ErrWrongType) {
		t.Errorf("EncodeCPFrame(ack) = %v", err)
	}
	if _, err := EncodeDPFrame(rev); !errors.Is(err, ErrWrongType) {
		t.Errorf("EncodeDPFrame(revision) = %v", err)
	}
	if _, err := DecodeCPFrame(mustGzip(t, `{"type":"telemetry_ack"}`), 0); !errors.Is(err, ErrMissingField) {
		t.Errorf("telemetry_ack without seq: %v", err)
	}
	bad := mustGzip(t, `{"type":"revision","config_table":{},"config_hash":"x"}`)
	if _, err := DecodeCPFrame(bad, 0); !errors.Is(err, ErrMissingField) {
		t.Errorf("revision without number: %v", err)
	}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	local := GantryHello{ProtocolVersion: 2, Capabilities: []string{CapTelemetry, CapRevisions, CapDeltas}}
	tests := []struct {
		name    string
		remote  *GantryHello
		want    *Hello
		wantErr bool
	}{
		{name: "kong dp", remote: nil, want: nil},
		{name: "older runtime", remote: &GantryHello{ProtocolVersion: 1, Capabilities: []string{CapRevisions, "future", CapTelemetry}},
			want: &Hello{Type: TypeHello, ProtocolVersion: 1, Capabilities: []string{CapRevisions, CapTelemetry}}},
		{name: "newer runtime", remote: &GantryHello{ProtocolVersion: 9},
			want: &Hello{Type: TypeHello, ProtocolVersion: 2, Capabilities: []string{}}},
		{name: "invalid", remote: &GantryHello{ProtocolVersion: 0}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Negotiate(local, tt.remote)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	var kong *Hello
	if kong.Has(CapRevisions) {
		t.Error("a Kong DP has no capabilities")
	}
}

func mustGzip(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkEncodeReconfigure(b *testing.B) {
	r, err := NewReconfigure(kongComplexTable(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeReconfigure(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReconfigure(b *testing.B) {
	r, err := NewReconfigure(kongComplexTable(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	frame, err := EncodeReconfigure(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeReconfigure(frame, 0); err != nil {
			b.Fatal(err)
		}
	}
}
