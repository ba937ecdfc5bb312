package h1

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestChunkSize checks the chunk-size parse both body readers share: hex of
// either case, at most 15 digits, nothing else.
func TestChunkSize(t *testing.T) {
	tests := []struct {
		line string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"a", 10, true},
		{"Ff", 255, true},
		{"7fffffffffffffff"[1:], 0xfffffffffffffff, true},
		{"", 0, false},
		{"1000000000000000", 0, false}, // 16 digits could overflow an int64.
		{"1g", 0, false},
		{" 1", 0, false},
		{"-1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, ok := ChunkSize([]byte(tt.line))
			if got != tt.want || ok != tt.ok {
				t.Errorf("ChunkSize(%q) = %d, %v; want %d, %v", tt.line, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestCutCRLF checks the strict line end of chunked framing: CRLF only.
func TestCutCRLF(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a\r\n", "a", true},
		{"\r\n", "", true},
		{"a\n", "a\n", false},
		{"\n", "\n", false},
		{"a\r", "a\r", false},
		{"a\r\r\n", "a\r", true},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := CutCRLF([]byte(tt.in))
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("CutCRLF(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestWriteFieldValue checks that CR, LF and NUL become spaces wherever
// they are, including past the first eight-byte word, and nothing else
// changes.
func TestWriteFieldValue(t *testing.T) {
	for _, v := range []string{"", "plain", "a\rb", "a\nb", "a\x00b", "0123456789abcdef\r\n", "01234567\t89ab\ncdef",
		"tab\tand\x0bvertical\x0ctab-and-\x0e", "é ünïcode\x7f", strings.Repeat("x", 100) + "\n"} {
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		WriteFieldValue(bw, v)
		_ = bw.Flush()
		want := strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(v)
		if b.String() != want {
			t.Errorf("WriteFieldValue(%q) wrote %q, want %q", v, b.String(), want)
		}
	}
}

// BenchmarkWriteFieldValue measures the value writer on typical short
// values, which it copies unchanged.
func BenchmarkWriteFieldValue(b *testing.B) {
	vals := []string{"127.0.0.1", "http", "8000", "/bench", "0123456789abcdef0123456789abcdef", "Mozilla/5.0 (X11; Linux x86_64)", "*/*"}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	for b.Loop() {
		for _, v := range vals {
			WriteFieldValue(bw, v)
		}
		bw.Reset(io.Discard)
	}
}

// TestBreaksLineEveryPosition checks the word-at-a-time test against the
// byte loop for every length up to 24 and every position of every byte
// below 0x10, so no overlap or tail is missed.
func TestBreaksLineEveryPosition(t *testing.T) {
	for n := 0; n <= 24; n++ {
		base := []byte(strings.Repeat("a", n))
		if got := breaksLine(string(base)); got {
			t.Errorf("breaksLine(%q) = true", base)
		}
		for p := 0; p < n; p++ {
			for ch := byte(0); ch < 0x10; ch++ {
				v := bytes.Clone(base)
				v[p] = ch
				want := ch == '\r' || ch == '\n' || ch == 0
				if got := breaksLine(string(v)); got != want {
					t.Errorf("breaksLine(%q) = %v, want %v", v, got, want)
				}
			}
		}
	}
}

// TestWriteField checks the field writer both ways it writes: built in the
// writer's free space, and piecewise when the line does not fit.
func TestWriteField(t *testing.T) {
	for _, size := range []int{16, 4096} {
		for _, tt := range []struct {
			name, value, want string
			ok                bool
		}{
			{"X-A", "v", "X-A: v\r\n", true},
			{"X-A", "a\r\nX-B: b\x00", "X-A: a  X-B: b \r\n", true},
			{"X-Long", strings.Repeat("v", 40), "X-Long: " + strings.Repeat("v", 40) + "\r\n", true},
			{"Bad Name", "v", "", false},
			{"X:A", "v", "", false},
			{"", "v", "", false},
			{"X-\xff", "v", "", false},
		} {
			var b strings.Builder
			bw := bufio.NewWriterSize(&b, size)
			ok := WriteField(bw, tt.name, tt.value)
			_ = bw.Flush()
			if ok != tt.ok || b.String() != tt.want {
				t.Errorf("buffer %d: WriteField(%q, %q) = %v, wrote %q; want %v, %q", size, tt.name, tt.value, ok, b.String(), tt.ok, tt.want)
			}
		}
	}
}
