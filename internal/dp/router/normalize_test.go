package router

import "testing"

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/", "/"},
		{"/a/b?x=1&y=/../", "/a/b"},
		{"?x", "?x"},
		{"/a//b///c", "/a/b/c"},
		{"/a/./b", "/a/b"},
		{"/a/../b", "/b"},
		{"/../a", "/a"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/a/..", "/"},
		{"/%7Efoo", "/~foo"},
		{"/%7efoo", "/~foo"},
		{"/%41%42", "/AB"},
		{"/a%2fb", "/a%2Fb"},
		{"/a%2Fb", "/a%2Fb"},
		{"/a%3fb", "/a%3Fb"},
		{"/%2e%2e/a", "/a"},
		{"/x/%2E./a", "/a"},
		{"/a%20b", "/a b"},
		{"/%25", "/%25"},
		{"/%zz%4", "/%zz%4"},
		{"/file.json", "/file.json"},
		{"/a/.hidden/..b", "/a/.hidden/..b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizePath(tt.in); got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizePathNoAllocWhenClean(t *testing.T) {
	for _, p := range []string{"/api/v1/users/42", "/v1/file.json?x=1", "/.well-known/x"} {
		if n := testing.AllocsPerRun(100, func() { _ = NormalizePath(p) }); n != 0 {
			t.Errorf("NormalizePath(%q): %v allocs, want 0", p, n)
		}
	}
}

func TestEscapePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{"/a b", "/a%20b"},
		{"/\u00e9", "/%C3%A9"},
		{"/a%2Fb", "/a%2Fb"},
		{"/!$&'()*+,;=:@[]~-._", "/!$&'()*+,;=:@[]~-._"},
		{"/\"<>", "/%22%3C%3E"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := EscapePath(tt.in); got != tt.want {
				t.Errorf("EscapePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
