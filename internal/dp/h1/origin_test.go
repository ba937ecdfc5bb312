package h1

import (
	"net/http"
	"net/url"
	"testing"
)

// TestOriginTarget checks the origin-form target that routing and the
// upstream request line are built from: the target as received for
// origin-form, the parsed path and query for absolute-form (RFC 9112
// 3.2.2), "/" for an empty path.
func TestOriginTarget(t *testing.T) {
	tests := []struct{ requestURI, want string }{
		{"/a/b?x=1", "/a/b?x=1"},
		{"/a%20b/%2F?q", "/a%20b/%2F?q"},
		{"/a?", "/a?"},
		{"http://h.example/p?q=1", "/p?q=1"},
		{"http://h.example", "/"},
		{"http://h.example?x=1", "/?x=1"},
		{"HTTPS://h.example:8443/a%2Fb", "/a%2Fb"},
		{"http://h.example/a/?", "/a/?"},
	}
	for _, tt := range tests {
		u, err := url.ParseRequestURI(tt.requestURI)
		if err != nil {
			t.Fatal(err)
		}
		r := &http.Request{RequestURI: tt.requestURI, URL: u}
		if got := OriginTarget(r); got != tt.want {
			t.Errorf("OriginTarget(%q) = %q, want %q", tt.requestURI, got, tt.want)
		}
	}
}
