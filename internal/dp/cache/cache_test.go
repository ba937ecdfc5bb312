package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/wire"
)

func testConfig() map[string]any {
	return map[string]any{
		"_format_version": "3.0",
		"_transform":      false,
		"services": []any{map[string]any{
			"id": "8d3b0d4e-6b0d-4e0e-9c7f-2a6f7d1d2a01", "name": "echo", "host": "127.0.0.1",
			"port": json.Number("8080"), "read_timeout": json.Number("60000"), "path": nil,
		}},
		"routes": []any{map[string]any{
			"id": "8d3b0d4e-6b0d-4e0e-9c7f-2a6f7d1d2a02", "paths": []any{"/echo"},
			"service": "8d3b0d4e-6b0d-4e0e-9c7f-2a6f7d1d2a01", "strip_path": true,
		}},
	}
}

func newCache(t *testing.T) *Cache {
	t.Helper()
	c, err := New(Options{Dir: t.TempDir(), Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Dir succeeded")
	}
	// A file where the directory should be cannot be used.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: f}); err == nil {
		t.Fatal("New over a regular file succeeded")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newCache(t)
	if _, err := c.Load(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of an empty cache = %v, want ErrNotFound", err)
	}
	cfg := testConfig()
	hash, _, err := wire.ConfigHash(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &Entry{Revision: 7, ConfigHash: hash, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 7 || got.ConfigHash != hash || !got.SavedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("loaded %d %s %s", got.Revision, got.ConfigHash, got.SavedAt)
	}
	if !reflect.DeepEqual(got.Config, cfg) {
		t.Fatalf("config changed in the round trip:\n got %#v\nwant %#v", got.Config, cfg)
	}
	// Numbers come back as json.Number, so the hash is the same.
	if h, _, _ := wire.ConfigHash(got.Config); h != hash {
		t.Fatalf("hash after reload %s, want %s", h, hash)
	}
	fi, err := os.Stat(filepath.Join(c.Dir(), ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v, want 0600 (it holds credentials)", fi.Mode().Perm())
	}

	// A second save replaces the first and leaves no temporary file.
	if err := c.Save(ctx, &Entry{Revision: 8, ConfigHash: wire.EmptyConfigHash, Config: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	got, err = c.Load(ctx)
	if err != nil || got.Revision != 8 || len(got.Config) != 0 {
		t.Fatalf("after second save: %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(c.Dir())
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only %s", len(entries), ConfigFile)
	}
}

func TestSaveRefusesEmptyEntryAndCancelledContext(t *testing.T) {
	c := newCache(t)
	if err := c.Save(context.Background(), &Entry{Revision: 1, ConfigHash: "x"}); err == nil {
		t.Fatal("saved an entry without configuration")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Save(ctx, &Entry{Revision: 1, ConfigHash: "x", Config: map[string]any{}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a cancelled context = %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), ConfigFile)); !os.IsNotExist(err) {
		t.Fatal("a refused save wrote a file")
	}
}

// TestLoadRefusesDamagedFiles damages a good file in every way a crash,
// a full disk or a stray edit could, and checks none of them loads.
func TestLoadRefusesDamagedFiles(t *testing.T) {
	ctx := context.Background()
	c := newCache(t)
	cfg := testConfig()
	if err := c.Save(ctx, &Entry{Revision: 3, ConfigHash: "0123456789abcdef0123456789abcdef", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.Dir(), ConfigFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nl := bytes.IndexByte(good, '\n')
	header, body := good[:nl+1], good[nl+1:]
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	// rehead writes a consistent header over a body, as a buggy or
	// malicious writer would: the checksum passes, the contents do not.
	rehead := func(b []byte) []byte {
		var buf bytes.Buffer
		sum := sha256Hex(b)
		buf.WriteString(magic + " 1 " + sum + " " + itoa(len(b)) + "\n")
		buf.Write(b)
		return buf.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "no header line"},
		{"truncated in the header", good[:nl/2], "no header line"},
		{"truncated in the body", good[:len(good)-10], "truncated"},
		{"only the header", header, "truncated"},
		{"appended to", append(bytes.Clone(good), "junk"...), "appended"},
		{"body bit flipped", append(bytes.Clone(header), flip(body, len(body)/2)...), "checksum mismatch"},
		{"checksum digit changed", flip(good, len(magic)+4), "checksum"},
		{"not a cache file", []byte(`{"services":[]}` + "\n"), "not a configuration cache file"},
		{"future format", []byte(strings.Replace(string(good), magic+" 1 ", magic+" 9 ", 1)), "format version 9"},
		{"bad length", []byte(strings.Replace(string(header), " "+itoa(len(body))+"\n", " -4\n", 1)), "bad length"},
		{"valid checksum, not gzip", rehead([]byte("plain text")), "gzip"},
		{"valid checksum, gzip of non-JSON", rehead(gz(t, "not json")), "invalid character"},
		{"valid checksum, no configuration", rehead(gz(t, `{"revision":1,"config_hash":"x"}`)), "without configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := c.Load(ctx)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %+v, %v; want ErrCorrupt", e, err)
			}
			if e != nil {
				t.Fatal("Load returned an entry with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
	// The good bytes still load: the cases above failed for their damage.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx); err != nil {
		t.Fatalf("restored file: %v", err)
	}
}

func TestNewRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, ".tmp-123")
	if err := os.WriteFile(left, []byte("half a write"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatal("leftover temporary file kept")
	}
}

func TestNodeIDPersists(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(Options{Dir: dir})
	id, err := c.NodeID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 36 {
		t.Fatalf("node id %q is not a UUID", id)
	}
	c2, _ := New(Options{Dir: dir})
	id2, err := c2.NodeID()
	if err != nil || id2 != id {
		t.Fatalf("second open: %q, %v; want %q", id2, err, id)
	}
	if err := os.WriteFile(filepath.Join(dir, NodeIDFile), []byte("not-a-uuid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.NodeID(); err == nil || !strings.Contains(err.Error(), "does not hold a UUID") {
		t.Fatalf("damaged node id: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFile("other.state"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of a missing file: %v", err)
	}
	for _, data := range []string{"one", "two"} {
		if err := c.WriteFile("other.state", []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadFile("other.state")
		if err != nil || string(got) != data {
			t.Fatalf("ReadFile = %q, %v; want %q", got, err, data)
		}
	}
	fi, err := os.Stat(filepath.Join(c.Dir(), "other.state"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", ConfigFile, NodeIDFile, ".tmp-1"} {
		if err := c.WriteFile(bad, []byte("x")); err == nil {
			t.Errorf("WriteFile(%q) succeeded", bad)
		}
		if _, err := c.ReadFile(bad); err == nil && bad != "" {
			t.Errorf("ReadFile(%q) succeeded", bad)
		}
	}
}
