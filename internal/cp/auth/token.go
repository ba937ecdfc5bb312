// Package auth makes and checks the control plane's credentials: personal access tokens and
// system account tokens, whose secret is shown once and stored only as a hash.
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

// SystemTokenPrefix starts every system account access token.
const SystemTokenPrefix = "gsat_"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns a fresh random token: TokenPrefix followed by 48 base32 characters (240 bits).
func NewToken() string { return newToken(TokenPrefix) }

// NewSystemToken returns a fresh random system account token: SystemTokenPrefix followed by 48
// base32 characters (240 bits).
func NewSystemToken() string { return newToken(SystemTokenPrefix) }

func newToken(prefix string) string {
	var b [30]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: system random source failed: " + err.Error())
	}
	return prefix + tokenEncoding.EncodeToString(b[:])
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
	if !strings.HasPrefix(token, TokenPrefix) && !strings.HasPrefix(token, SystemTokenPrefix) {
		n = 4
	}
	if len(token) < n {
		return token
	}
	return token[:n] + "…"
}
