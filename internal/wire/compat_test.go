package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMajorMinor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"3.10.0", 3, 10, true},
		{"3.4.3.12-enterprise-edition", 3, 4, true},
		{"3.10.0-rc.1", 3, 10, true},
		{"2.8.1", 2, 8, true},
		{"3.10", 0, 0, false},
		{"3.x.0", 0, 0, false},
		{"v3.1.0", 0, 0, false},
		{"3.1.x", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			major, minor, ok := ParseMajorMinor(tt.in)
			if major != tt.major || minor != tt.minor || ok != tt.ok {
				t.Errorf("ParseMajorMinor(%q) = %d, %d, %v; want %d, %d, %v", tt.in, major, minor, ok, tt.major, tt.minor, tt.ok)
			}
		})
	}
}

func TestNewerVersionIssue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cp, dp string
		warn   bool
	}{
		{"3.12.0", "3.13.0", true},
		{"3.12.0", "3.16.0.1", true},
		{"3.12.0", "3.12.7", false},
		{"3.12.0", "3.4.2", false},
		{"3.12.0", "4.0.0", false},
		{"3.12.0", "latest", false},
	}
	for _, tt := range tests {
		is := NewerVersionIssue(tt.cp, tt.dp)
		if (is != nil) != tt.warn {
			t.Errorf("NewerVersionIssue(%s, %s) = %+v, want warning %v", tt.cp, tt.dp, is, tt.warn)
			continue
		}
		if is != nil && (is.Code != IssueVersionNewer || is.Severity != SeverityWarning || is.AffectedResources == nil ||
			!strings.Contains(is.Description, tt.dp)) {
			t.Errorf("issue %+v", is)
		}
	}
}

func TestCheckVersionCompatibility(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cp, dp  string
		wantMsg string // empty: compatible
	}{
		{name: "same", cp: "3.10.0", dp: "3.10.0"},
		{name: "older minor", cp: "3.10.0", dp: "3.0.0"},
		{name: "newer patch", cp: "3.10.0", dp: "3.10.7"},
		{name: "enterprise suffix", cp: "3.10.0", dp: "3.4.3.12-enterprise-edition"},
		// Accepted as Konnect does (Kong's own CP refuses it); NewerVersionIssue warns.
		{name: "newer minor", cp: "3.12.0", dp: "3.13.0"},
		{name: "older major", cp: "3.10.0", dp: "2.8.4",
			wantMsg: "data plane version 2.8.4 is incompatible with control plane version 3.10.0 (3.x.y are accepted)"},
		{name: "newer major", cp: "3.10.0", dp: "4.0.0",
			wantMsg: "data plane version 4.0.0 is incompatible with control plane version 3.10.0 (3.x.y are accepted)"},
		{name: "unparsable dp", cp: "3.10.0", dp: "latest",
			wantMsg: "data plane version is incompatible with control plane version 3.10.0 (3.x.y are accepted)"},
		{name: "unparsable cp", cp: "dev", dp: "3.10.0",
			wantMsg: "data plane version 3.10.0 is incompatible with control plane version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckVersionCompatibility(tt.cp, tt.dp)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckVersionCompatibility: %v", err)
				}
				return
			}
			var ie *IncompatibleError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want *IncompatibleError", err)
			}
			if ie.Status != SyncStatusKongVersionIncompatible || ie.Message != tt.wantMsg {
				t.Errorf("got %s %q, want kong_version_incompatible %q", ie.Status, ie.Message, tt.wantMsg)
			}
			if ie.Issue.Code != IssueVersionIncompatible || ie.Issue.Severity != SeverityError || ie.Issue.Resolution == "" {
				t.Errorf("issue %+v", ie.Issue)
			}
		})
	}
}

func TestCheckConfigurationCompatibility(t *testing.T) {
	t.Parallel()
	cpPlugins := []PluginInfo{{"acl", "3.10.0"}, {"custom", ""}, {"key-auth", "3.10.0"}, {"rate-limiting", "3.10.0"}}
	config := map[string]any{"plugins": []any{
		map[string]any{"id": "p1", "name": "key-auth"},
		map[string]any{"id": "p2", "name": "rate-limiting"},
		map[string]any{"id": "p3", "name": "key-auth"},
		map[string]any{"id": "p4", "name": "not-known-to-cp"},
	}}
	tests := []struct {
		name       string
		dp         []PluginInfo
		cfg        map[string]any
		status     SyncStatus
		message    string
		codes      []string
		affected   []string // ids of the first issue
		compatible bool
	}{
		{name: "all present", dp: []PluginInfo{{"key-auth", "3.10.0"}, {"rate-limiting", "3.9.1"}, {"extra", "1.0.0"}},
			cfg: config, status: SyncStatusNormal, compatible: true},
		{name: "no plugins configured", dp: nil, cfg: map[string]any{}, status: SyncStatusNormal, compatible: true},
		{name: "missing", dp: []PluginInfo{{"rate-limiting", "3.10.0"}}, cfg: config,
			status: SyncStatusPluginSetIncompatible, message: "configured key-auth plugin 3.10.0 is missing from data plane",
			codes: []string{IssuePluginMissing}, affected: []string{"p1", "p3"}},
		{name: "newer dp minor", dp: []PluginInfo{{"key-auth", "3.10.0"}, {"rate-limiting", "3.11.0"}}, cfg: config,
			status:  SyncStatusPluginVersionIncompatible,
			message: "configured data plane rate-limiting plugin version 3.11.0 is different to control plane plugin version 3.10.0",
			codes:   []string{IssuePluginVersion}, affected: []string{"p2"}},
		{name: "major differs", dp: []PluginInfo{{"key-auth", "2.10.0"}, {"rate-limiting", "3.10.0"}}, cfg: config,
			status: SyncStatusPluginVersionIncompatible, codes: []string{IssuePluginVersion}, affected: []string{"p1", "p3"},
			message: "configured data plane key-auth plugin version 2.10.0 is different to control plane plugin version 3.10.0"},
		{name: "unparsable version is fine", dp: []PluginInfo{{"key-auth", "dev"}, {"rate-limiting", "3.10.0"}}, cfg: config,
			status: SyncStatusNormal, compatible: true},
		// Kong reports the first failure in CP order; Issues lists both.
		{name: "two failures", dp: []PluginInfo{{"rate-limiting", "4.0.0"}}, cfg: config,
			status: SyncStatusPluginSetIncompatible, message: "configured key-auth plugin 3.10.0 is missing from data plane",
			codes: []string{IssuePluginMissing, IssuePluginVersion}, affected: []string{"p1", "p3"}},
		{name: "missing without version", dp: nil,
			cfg:    map[string]any{"plugins": []any{map[string]any{"id": "c1", "name": "custom"}}},
			status: SyncStatusPluginSetIncompatible, message: "configured custom plugin is missing from data plane",
			codes: []string{IssuePluginMissing}, affected: []string{"c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := CheckConfigurationCompatibility(cpPlugins, tt.dp, tt.cfg)
			if res.Status != tt.status || res.Message != tt.message || res.Compatible() != tt.compatible {
				t.Fatalf("got %s %q compatible=%v, want %s %q", res.Status, res.Message, res.Compatible(), tt.status, tt.message)
			}
			if len(res.Issues) != len(tt.codes) {
				t.Fatalf("issues %+v, want codes %v", res.Issues, tt.codes)
			}
			for i, code := range tt.codes {
				if res.Issues[i].Code != code || res.Issues[i].Severity != SeverityError {
					t.Errorf("issue %d = %+v, want code %s", i, res.Issues[i], code)
				}
			}
			if len(tt.affected) > 0 {
				got := res.Issues[0].AffectedResources
				if len(got) != len(tt.affected) {
					t.Fatalf("affected %+v, want ids %v", got, tt.affected)
				}
				for i, id := range tt.affected {
					if got[i].ID != id || got[i].Type != "plugin" {
						t.Errorf("affected[%d] = %+v, want plugin %s", i, got[i], id)
					}
				}
			}
		})
	}
}
