package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeEntry(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBuild(t *testing.T) {
	src := t.TempDir()
	a := `{"schema_version":"1.3.1","id":"GO-2024-0001","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"name":"example.com/a","ecosystem":"Go"}},{"package":{"name":"example.com/a","ecosystem":"Go"}},
		{"package":{"name":"stdlib","ecosystem":"Go"}}]}`
	b := `{"schema_version":"1.3.1","id":"GO-2023-0002","modified":"0001-01-01T00:00:00Z",
		"affected":[{"package":{"name":"example.com/a","ecosystem":"Go"}}]}`
	writeEntry(t, src, "GO-2024-0001.json", a)
	writeEntry(t, src, "GO-2023-0002.json", b)
	writeEntry(t, src, "README", "not an entry")
	out := filepath.Join(t.TempDir(), "db")
	if err := os.MkdirAll(filepath.Join(out, "stale"), 0o750); err != nil {
		t.Fatal(err)
	}
	floor := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	st, err := build(src, out, floor)
	if err != nil {
		t.Fatal(err)
	}
	if st.entries != 2 || st.modules != 2 || !st.modified.Equal(floor) {
		t.Fatalf("stats %+v", st)
	}
	read := func(p string) []byte {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if got := string(read("ID/GO-2024-0001.json")); got != a {
		t.Errorf("entry not copied as is: %s", got)
	}
	if got := strings.TrimSpace(string(read("index/db.json"))); got != `{"modified":"2025-01-02T03:04:05Z"}` {
		t.Errorf("db.json = %s", got)
	}
	var modules []moduleMeta
	if err := json.Unmarshal(read("index/modules.json"), &modules); err != nil {
		t.Fatal(err)
	}
	want := []moduleMeta{
		{Path: "example.com/a", Vulns: []moduleVuln{{ID: "GO-2023-0002", Modified: floor}, {ID: "GO-2024-0001", Modified: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}}},
		{Path: "stdlib", Vulns: []moduleVuln{{ID: "GO-2024-0001", Modified: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}}},
	}
	if !reflect.DeepEqual(modules, want) {
		t.Errorf("modules.json = %+v, want %+v", modules, want)
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); !os.IsNotExist(err) {
		t.Errorf("the old database was not replaced: %v", err)
	}
}

func TestBuildRefusesMisnamedEntries(t *testing.T) {
	src := t.TempDir()
	writeEntry(t, src, "GO-2024-0003.json", `{"id":"GO-2024-0004","modified":"2024-03-01T00:00:00Z"}`)
	out := filepath.Join(t.TempDir(), "db")
	if _, err := build(src, out, time.Time{}); err == nil || !strings.Contains(err.Error(), "GO-2024-0004") {
		t.Fatalf("err = %v, want a refusal naming the entry", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s: %v", out, err)
	}
}
