package adminapi

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

func TestFormTree(t *testing.T) {
	cases := []struct {
		form string
		want map[string]any
	}{
		{"a=1", map[string]any{"a": "1"}},
		{"a=1&a=2", map[string]any{"a": []any{"1", "2"}}},
		{"a.b=1&a.c=2", map[string]any{"a": map[string]any{"b": "1", "c": "2"}}},
		{"a[2]=y&a[1]=x", map[string]any{"a": []any{"x", "y"}}},
		{"a[]=x&a[]=y", map[string]any{"a": []any{"x", "y"}}},
		{"config.key_names[1]=apikey&config.key_names[2]=token", map[string]any{"config": map[string]any{"key_names": []any{"apikey", "token"}}}},
		{"a[b]=1", map[string]any{"a": map[string]any{"b": "1"}}},
		{"service.id=abc", map[string]any{"service": map[string]any{"id": "abc"}}},
		{"", map[string]any{}},
	}
	for _, tc := range cases {
		t.Run(tc.form, func(t *testing.T) {
			vals, err := url.ParseQuery(tc.form)
			if err != nil {
				t.Fatal(err)
			}
			if got := formTree(vals); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestCoerceForm(t *testing.T) {
	svc, _ := schema.Lookup("services")
	in := map[string]any{"port": "8080", "enabled": "false", "tags": "one", "retries": "", "host": "h", "connect_timeout": "x"}
	coerceForm(svc, in)
	want := map[string]any{"port": int64(8080), "enabled": false, "tags": []any{"one"}, "retries": nil, "host": "h", "connect_timeout": "x"}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("got %#v, want %#v", in, want)
	}
	// Plugin config is coerced by the named plugin's schema.
	pl, _ := schema.Lookup("plugins")
	p := map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": "5", "hide_client_headers": "true"}}
	coerceForm(pl, p)
	cfg := p["config"].(map[string]any)
	if cfg["minute"] != float64(5) && cfg["minute"] != int64(5) || cfg["hide_client_headers"] != true {
		t.Errorf("plugin config %#v", cfg)
	}
}

func TestDecodeJSONObject(t *testing.T) {
	m, err := decodeJSONObject([]byte(`{"a":1,"b":1.5,"c":[2,{"d":3}],"e":1e3}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(1), "b": 1.5, "c": []any{int64(2), map[string]any{"d": int64(3)}}, "e": 1000.0}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v", m)
	}
	for _, bad := range []string{"{", "[]", "1", `{"a":1} {}`, `"s"`} {
		if _, err := decodeJSONObject([]byte(bad)); !errors.Is(err, errBadJSON) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestOffsets(t *testing.T) {
	id := "0b6c5e2c-3a7e-4d0e-9a6e-1f2d3c4b5a69"
	got, err := decodeOffset(encodeOffset(id))
	if err != nil || got != id {
		t.Fatalf("round trip %q %v", got, err)
	}
	if strings.ContainsAny(encodeOffset(id), "=") {
		t.Error("offset padded")
	}
	for raw, msg := range map[string]string{
		"!!":         "'!!' is not a valid offset: bad base64 encoding",
		"bm90anNvbg": "'bm90anNvbg' is not a valid offset: bad json encoding",
	} {
		_, err := decodeOffset(raw)
		if err == nil || err.Error() != msg {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

func TestParsePageAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts; make test runs this budget without it")
	}
	q := url.Values{"size": {"50"}, "tags": {"a,b"}}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := parsePage(q, true); err != nil {
			t.Fatal(err)
		}
	})
	// The tag split is the only allocation: paging options are read without copying.
	if allocs > 1 {
		t.Errorf("parsePage allocates %.0f times", allocs)
	}
}

func BenchmarkDecodeJSONObject(b *testing.B) {
	body := []byte(`{"name":"svc","host":"example.test","port":8080,"path":"/api","retries":3,"tags":["a","b"],"connect_timeout":1000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeJSONObject(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormTree(b *testing.B) {
	vals, _ := url.ParseQuery("name=key-auth&config.key_names[1]=apikey&config.key_names[2]=token&config.hide_credentials=true&tags[]=a&tags[]=b")
	pl, _ := schema.Lookup("plugins")
	b.ReportAllocs()
	for b.Loop() {
		coerceForm(pl, formTree(vals))
	}
}
