package auth

import (
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b {
		t.Fatal("two tokens are equal")
	}
	if !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+48 {
		t.Fatalf("token %q: want prefix %q and 48 characters after it", a, TokenPrefix)
	}
	if HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 {
		t.Fatal("hashes must differ and be hex SHA-256")
	}
	if h := Hint(a); !strings.HasPrefix(h, a[:9]) || strings.Contains(h, a[9:]) {
		t.Fatalf("hint %q leaks the secret", h)
	}
	s := NewSystemToken()
	if !strings.HasPrefix(s, SystemTokenPrefix) || len(s) != len(SystemTokenPrefix)+48 {
		t.Fatalf("system token %q: want prefix %q and 48 characters after it", s, SystemTokenPrefix)
	}
	if h := Hint(s); h != s[:9]+"…" {
		t.Fatalf("system token hint %q", h)
	}
}
