// Package auth makes and checks the control plane's credentials: personal access tokens, whose
// secret is shown once and stored only as a hash.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// TokenPrefix starts every personal access token so that leaked tokens are easy to recognize and
// secret scanners can find them.
const TokenPrefix = "gpat_"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns a fresh random token: TokenPrefix followed by 48 base32 characters (240 bits).
func NewToken() string {
	var b [30]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: system random source failed: " + err.Error())
	}
	return TokenPrefix + tokenEncoding.EncodeToString(b[:])
}

// HashToken returns the hex SHA-256 under which a token is stored. Tokens carry 240 random bits,
// so a fast hash is enough: there is nothing to brute-force.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Hint returns the part of a token that may be shown again: its prefix and four characters.
func Hint(token string) string {
	n := len(TokenPrefix) + 4
	if !strings.HasPrefix(token, TokenPrefix) {
		n = 4
	}
	if len(token) < n {
		return token
	}
	return token[:n] + "…"
}
