package wire

import (
	"errors"
	"slices"
	"testing"
)

func TestParseNodeQuery(t *testing.T) {
	t.Parallel()
	const id = "6f4f5a5e-1b8b-4a1f-9d3e-2c1e0b6c9a11"
	tests := []struct {
		name        string
		raw         string
		want        NodeQuery
		missing     []string
		invalid     []string
		wantErrText string
	}{
		{name: "complete", raw: "node_id=" + id + "&node_hostname=dp-1.local&node_version=3.10.0",
			want: NodeQuery{NodeID: id, Hostname: "dp-1.local", Version: "3.10.0"}},
		// Kong sends values unencoded; a raw "%" that is no escape is kept.
		{name: "raw value kept", raw: "node_id=" + id + "&node_hostname=odd%zzhost&node_version=3.4.3.12-enterprise-edition",
			want: NodeQuery{NodeID: id, Hostname: "odd%zzhost", Version: "3.4.3.12-enterprise-edition"}},
		{name: "encoded value decoded", raw: "node_id=" + id + "&node_hostname=dp%2D1&node_version=3.9.1",
			want: NodeQuery{NodeID: id, Hostname: "dp-1", Version: "3.9.1"}},
		{name: "first occurrence wins", raw: "node_id=" + id + "&node_hostname=a&node_hostname=b&node_version=3.0.0",
			want: NodeQuery{NodeID: id, Hostname: "a", Version: "3.0.0"}},
		{name: "nothing", raw: "", missing: []string{ParamNodeID, ParamNodeHostname, ParamNodeVersion},
			wantErrText: "missing query parameters: node_id, node_hostname, node_version"},
		{name: "no version", raw: "node_id=" + id + "&node_hostname=h", missing: []string{ParamNodeVersion}},
		{name: "empty id", raw: "node_id=&node_hostname=h&node_version=3.0.0", missing: []string{ParamNodeID}},
		{name: "id not a uuid", raw: "node_id=dp1&node_hostname=h&node_version=3.0.0", invalid: []string{ParamNodeID},
			wantErrText: "invalid node_id: not a UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNodeQuery(tt.raw)
			if len(tt.missing) == 0 && len(tt.invalid) == 0 {
				if err != nil {
					t.Fatalf("ParseNodeQuery: %v", err)
				}
				if got != tt.want {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v, want a *QueryError", err)
			}
			if !slices.Equal(qe.Missing, tt.missing) {
				t.Errorf("missing = %v, want %v", qe.Missing, tt.missing)
			}
			for _, name := range tt.invalid {
				if _, ok := qe.Invalid[name]; !ok {
					t.Errorf("invalid = %v, want %s listed", qe.Invalid, name)
				}
			}
			if tt.wantErrText != "" && err.Error() != tt.wantErrText {
				t.Errorf("error text %q, want %q", err.Error(), tt.wantErrText)
			}
		})
	}
}

func TestNodeQueryRoundTrip(t *testing.T) {
	t.Parallel()
	q := NodeQuery{NodeID: "6f4f5a5e-1b8b-4a1f-9d3e-2c1e0b6c9a11", Hostname: "dp-1", Version: "3.10.0"}
	raw := q.RawQuery()
	if raw != "node_id=6f4f5a5e-1b8b-4a1f-9d3e-2c1e0b6c9a11&node_hostname=dp-1&node_version=3.10.0" {
		t.Errorf("RawQuery = %q", raw)
	}
	got, err := ParseNodeQuery(raw)
	if err != nil || got != q {
		t.Errorf("ParseNodeQuery(RawQuery) = %+v, %v", got, err)
	}
}
