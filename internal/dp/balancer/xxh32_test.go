package balancer

import "testing"

func TestXXH32KnownVectors(t *testing.T) {
	// Reference values of XXH32 with seed 0 from the xxHash test suite and
	// its widely published examples.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0x02CC5D05},
		{"a", 0x550D7456},
		{"abc", 0x32D153FF},
		{"Nobody inspects the spammish repetition", 0xE2293B2F},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := xxh32(tc.in); got != tc.want {
				t.Errorf("xxh32(%q) = %#08x, want %#08x", tc.in, got, tc.want)
			}
		})
	}
}
