package wire

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestHashValueGolden checks the sorted serialization against hashes worked
// out by hand: each case names the exact string Kong's to_sorted_string
// builds for the value, and want is md5 of that string (checked with
// `printf '%s' STRING | md5sum`).
func TestHashValueGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     any
		serial string // what Kong serializes; documentation for the reader
		want   string
	}{
		{"null", nil, "/null/", "5bf07a8b7343015026657d1108d8206e"},
		{"empty string", "", "", "d41d8cd98f00b204e9800998ecf8427e"},
		{"string", "hello", "hello", "5d41402abc4b2a76b9719d911017c592"},
		{"true", true, "true", "b326b5062b2f0e69046810717534cb09"},
		{"false", false, "false", "68934a3e9455fa72420237eb05902327"},
		// LuaJIT prints integral numbers without ".0".
		{"integer float64", float64(10), "10", "d3d9446802a44259755d38e6d163e820"},
		{"integer json.Number", json.Number("10"), "10", "d3d9446802a44259755d38e6d163e820"},
		{"integer written as float", json.Number("10.0"), "10", "d3d9446802a44259755d38e6d163e820"},
		{"int", 10, "10", "d3d9446802a44259755d38e6d163e820"},
		{"double", 0.9, "0.9", "a894124cc6d5c5c71afe060d5dde0762"},
		// Lua has one table type: [] and {} both serialize as "{}".
		{"empty array", []any{}, "{}", "99914b932bd37a50b983c5e7c90ae93b"},
		{"empty object", map[string]any{}, "{}", "99914b932bd37a50b983c5e7c90ae93b"},
		// Arrays of 1-5 elements: separators only between elements.
		{"one element", []any{"x"}, "x", "9dd4e461268c8034f5c8564e155c67a6"},
		{"two elements", []any{"a", "b"}, "a;b", "45d17989299efc4321960bf46f2ebd0a"},
		{"three numbers", []any{1.0, 2.0, 3.0}, "1;2;3", "75b1d2ce36a931fb657d211816efb94f"},
		// More than 5 elements: every element is followed by ";".
		{"six numbers", []any{1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, "1;2;3;4;5;6;", "c79fb8044faf9b08d2c625c980992b05"},
		// Keys in byte order, each "key:value;".
		{"object", map[string]any{"c": nil, "b": true, "a": 1.5}, "a:1.5;b:true;c:/null/;", "333b01e299b846c5bfb94a39f3786a05"},
		// %.14g: 1e15 has 16 digits and goes to exponent form;
		// 123456789012346 rounds to 14 significant digits.
		{"number formats", []any{60.0, 0.1, 1e15, json.Number("123456789012346"), 1719800000.123},
			"60;0.1;1e+15;1.2345678901235e+14;1719800000.123", "651c4343c7e48e55e1043e07342c384c"},
		// A one-element array is just its element.
		{"route", []any{map[string]any{"id": "r1", "paths": []any{"/a", "/b"}}}, "id:r1;paths:/a;/b;", "f2a71c7f671b3f5f7f46ce237eb68e3f"},
		{"nested", map[string]any{"c": []any{"x", "y"}, "b": []any{1, 2, 3, 4, 5, 6}, "a": map[string]any{}},
			"a:{};b:1;2;3;4;5;6;;c:x;y;", "de87d77e5ea8287795893d41d92476ad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := HashValue(tt.in)
			if err != nil {
				t.Fatalf("HashValue: %v", err)
			}
			if got != tt.want {
				t.Errorf("HashValue = %s, want %s (md5 of %q)", got, tt.want, tt.serial)
			}
		})
	}
}

// TestHashFolding covers the 1,000,000-byte bound. Before each value is
// written, a buffer longer than 1,000,000 bytes becomes its binary md5.
func TestHashFolding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []any
		want string
	}{
		// Buffer "a"*1000001 + ";" (1,000,002 bytes) is folded before "b":
		// md5hex(md5bin("a"*1000001 + ";") + "b").
		{"folds above the bound", []any{strings.Repeat("a", 1_000_001), "b"}, "6620f15f5b5a227c6021feb3b43af316"},
		// "a"*999999 + ";" is exactly 1,000,000 bytes: not folded, so the
		// result is plain md5hex("a"*999999 + ";b").
		{"keeps exactly the bound", []any{strings.Repeat("a", 999_999), "b"}, "eeb2d780d7affb048933c1adbccf3ea5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := HashValue(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("HashValue = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestConfigHashGolden(t *testing.T) {
	t.Parallel()
	const emptyTable = "99914b932bd37a50b983c5e7c90ae93b" // md5("{}")
	tests := []struct {
		name   string
		in     any
		want   string
		hashes Hashes
	}{
		{
			// rest = {} -> md5("{}"); config = md5(5 x zeros + 99914b93...).
			name: "empty table",
			in:   map[string]any{},
			want: "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e",
			hashes: Hashes{Config: "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e", Routes: EmptyConfigHash, Services: EmptyConfigHash,
				Plugins: EmptyConfigHash, Upstreams: EmptyConfigHash, Targets: EmptyConfigHash},
		},
		{
			// The values Kong's own unit tests assert for these two tables.
			name: "empty routes services plugins",
			in:   map[string]any{"routes": []any{}, "services": []any{}, "plugins": []any{}},
			want: "81aac97a81ad03c0cf0b36663806488e",
			hashes: Hashes{Config: "81aac97a81ad03c0cf0b36663806488e", Routes: emptyTable, Services: emptyTable,
				Plugins: emptyTable, Upstreams: EmptyConfigHash, Targets: EmptyConfigHash},
		},
		{
			name: "empty upstreams targets",
			in:   map[string]any{"upstreams": []any{}, "targets": []any{}},
			want: "4d60dd9998ea4314039da5ca2f1db96f",
			hashes: Hashes{Config: "4d60dd9998ea4314039da5ca2f1db96f", Routes: EmptyConfigHash, Services: EmptyConfigHash,
				Plugins: EmptyConfigHash, Upstreams: emptyTable, Targets: emptyTable},
		},
		{
			// Not a table: the hash of the value itself.
			name: "scalar",
			in:   "hello",
			want: "5d41402abc4b2a76b9719d911017c592",
			hashes: Hashes{Config: "5d41402abc4b2a76b9719d911017c592", Routes: EmptyConfigHash, Services: EmptyConfigHash,
				Plugins: EmptyConfigHash, Upstreams: EmptyConfigHash, Targets: EmptyConfigHash},
		},
		{
			name: "complex table from Kong's unit tests",
			in:   kongComplexTable(),
			want: "675ff4b6b1c8cefa5198284110786ad0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, hashes, err := ConfigHash(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ConfigHash = %s, want %s", got, tt.want)
			}
			if tt.hashes != (Hashes{}) && hashes != tt.hashes {
				t.Errorf("hashes = %+v, want %+v", hashes, tt.hashes)
			}
			if hashes.Config != got {
				t.Errorf("hashes.Config = %s, want the config hash %s", hashes.Config, got)
			}
		})
	}
}

// kongComplexTable rebuilds the table of Kong's "calculates hash for
// complex table" unit test: arrays of every special length, all scalar
// types, and 1000 consumers so the buffer passes the folding bound.
func kongComplexTable() map[string]any {
	v := func(n int) []any {
		out := []any{}
		for i := 1; i <= n; i++ {
			out = append(out, "v"+strconv.Itoa(i))
		}
		return out
	}
	plugins := []any{
		map[string]any{"name": "0", "config": map[string]any{"param": "value"}},
		map[string]any{"name": "1", "config": map[string]any{"param": v(6)}},
		map[string]any{"name": "2", "config": map[string]any{"param": v(5)}},
		map[string]any{"name": "3", "config": map[string]any{"param": v(4)}},
		map[string]any{"name": "4", "config": map[string]any{"param": v(3)}},
		map[string]any{"name": "5", "config": map[string]any{"param": v(2)}},
		map[string]any{"name": "6", "config": map[string]any{"param": v(1)}},
		map[string]any{"name": "7", "config": map[string]any{"param": v(0)}},
		map[string]any{"name": "8", "config": map[string]any{"param": "value", "array": v(6)}},
		map[string]any{"name": "9", "config": map[string]any{"bool1": true, "bool2": false, "number": 1.0, "double": 1.1,
			"empty": map[string]any{}, "null": nil, "string": "test", "hash": map[string]any{"k": "v"}, "array": v(6)}},
	}
	consumers := make([]any, 1000)
	for i := range consumers {
		consumers[i] = map[string]any{"username": "user-" + strconv.Itoa(i+1)}
	}
	return map[string]any{"plugins": plugins, "consumers": consumers}
}

// TestConfigHashMissingVersusEmpty shows why an exporter must leave empty
// collections out instead of sending []: the two hash differently.
func TestConfigHashMissingVersusEmpty(t *testing.T) {
	t.Parallel()
	// rest = {"_format_version":"3.0"} -> "_format_version:3.0;" ->
	// bbf6282edbcaefc90c9cfff84ae25fe0.
	// missing: md5(zeros*5 + bbf6...)  = df0fa954...
	// empty:   md5(99914b93... + zeros*4 + bbf6...) = dcfd7c02...
	missing := map[string]any{"_format_version": "3.0"}
	empty := map[string]any{"_format_version": "3.0", "routes": []any{}}
	hm, hsm, err := ConfigHash(missing)
	if err != nil {
		t.Fatal(err)
	}
	he, hse, err := ConfigHash(empty)
	if err != nil {
		t.Fatal(err)
	}
	if hm != "df0fa95418996305ce696773e8663d90" {
		t.Errorf("missing routes: hash %s", hm)
	}
	if he != "dcfd7c02832ea5a7cf978a2e0793601b" {
		t.Errorf("empty routes: hash %s", he)
	}
	if hsm.Routes != EmptyConfigHash || hse.Routes != "99914b932bd37a50b983c5e7c90ae93b" {
		t.Errorf("routes hashes: missing %s, empty %s", hsm.Routes, hse.Routes)
	}
	// A present JSON null is not missing either.
	hn, hsn, err := ConfigHash(map[string]any{"_format_version": "3.0", "routes": nil})
	if err != nil {
		t.Fatal(err)
	}
	if hsn.Routes != "5bf07a8b7343015026657d1108d8206e" || hn == hm {
		t.Errorf("null routes: routes hash %s, config hash %s", hsn.Routes, hn)
	}
}

func TestHashErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
	}{
		{"unsupported type", struct{}{}},
		{"nested unsupported type", map[string]any{"routes": []any{map[string]any{"x": []string{"a"}}}}},
		{"bad json.Number", []any{json.Number("12abc")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := ConfigHash(tt.in); err == nil {
				t.Fatal("ConfigHash succeeded, want an error")
			}
		})
	}
}

// TestHashDecodedJSON hashes the same document decoded with and without
// UseNumber: both must agree, since Lua turns every number into a double.
func TestHashDecodedJSON(t *testing.T) {
	t.Parallel()
	doc := `{"_format_version":"3.0","services":[{"id":"s1","port":80,"read_timeout":60000,"retries":5,"weight":1.50}],"routes":null}`
	var plain map[string]any
	if err := json.Unmarshal([]byte(doc), &plain); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var numbers map[string]any
	if err := dec.Decode(&numbers); err != nil {
		t.Fatal(err)
	}
	a, _, err := ConfigHash(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ConfigHash(numbers)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("float64 decode hashes %s, json.Number decode hashes %s", a, b)
	}
	// services serializes as "id:s1;port:80;read_timeout:60000;retries:5;weight:1.5;".
	s, err := HashValue(plain["services"])
	if err != nil {
		t.Fatal(err)
	}
	if s != md5hex("id:s1;port:80;read_timeout:60000;retries:5;weight:1.5;") {
		t.Errorf("services hash %s", s)
	}
}

func BenchmarkConfigHash(b *testing.B) {
	cfg := kongComplexTable()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ConfigHash(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConfigHashAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	cfg := kongComplexTable()
	if _, _, err := ConfigHash(cfg); err != nil { // warm the pool
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, _, err := ConfigHash(cfg); err != nil {
			t.Fatal(err)
		}
	})
	// Only the hex strings of the six results may allocate; sorting keys
	// and building the buffer reuse pooled scratch space.
	if allocs > 6 {
		t.Errorf("ConfigHash allocates %.0f times per run, want <= 6", allocs)
	}
}
