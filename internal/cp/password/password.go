// Package password hashes and checks the passwords users log in to the console with: argon2id
// (RFC 9106) stored as a PHC string, compared in constant time, and a minimum strength rule for
// new passwords.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes. They follow OWASP's argon2id baseline (19 MiB, two passes, one
// lane): about 20 ms per hash on a server core, which bounds what a stolen database is worth to
// a brute-force attacker while keeping a login cheap enough to rate limit rather than queue.
// Hashes keep their own parameters, so changing these affects only passwords set afterwards.
const (
	Memory  = 19 * 1024 // KiB
	Time    = 2         // passes over the memory
	Threads = 1         // lanes
	SaltLen = 16        // bytes of random salt
	KeyLen  = 32        // bytes of derived key
)

// Bounds on hashes read back from the database, so that a tampered row cannot make one login
// allocate gigabytes or spin for minutes.
const (
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
)

// Strength rule for new passwords.
const (
	// MinLength is the fewest characters (runes) a password may have.
	MinLength = 12
	// MaxLength is the most bytes a password may have; longer input only costs hashing time.
	MaxLength = 256
	// MinClasses is how many character classes (lower case, upper case, digits, anything else)
	// a password must mix.
	MinClasses = 2
)

// ErrMismatch is returned by Verify when the password does not match the hash.
var ErrMismatch = errors.New("password does not match")

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// Hash returns the PHC string of pw under a fresh random salt, e.g.
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>.
func Hash(pw string) (string, error) {
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, Time, Memory, Threads, KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, Memory, Time, Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string phc: nil on a match, ErrMismatch on a wrong
// password, another error when phc is not an argon2id hash this package can read (an empty phc,
// meaning no password was ever set, is such an error). The comparison is constant-time.
func Verify(pw, phc string) error {
	p, err := parse(phc)
	if err != nil {
		return err
	}
	key := argon2.IDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	if subtle.ConstantTimeCompare(key, p.key) != 1 {
		return ErrMismatch
	}
	return nil
}

var (
	dummyOnce sync.Once
	dummyHash string
)

// VerifyDummy costs what Verify costs on a real hash and always fails. Login calls it when the
// account does not exist, so that the answer's timing does not tell unknown accounts apart.
func VerifyDummy(pw string) {
	dummyOnce.Do(func() {
		h, err := Hash("gantry dummy password")
		if err != nil {
			panic("password: " + err.Error())
		}
		dummyHash = h
	})
	_ = Verify(pw, dummyHash) // always a mismatch: only the time it takes matters
}

type params struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func parse(phc string) (params, error) {
	var p params
	if phc == "" {
		return p, errors.New("no password is set")
	}
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, errors.New("not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, fmt.Errorf("bad argon2 parameters %q", parts[3])
	}
	if p.memory < 8 || p.memory > maxMemory || p.time < 1 || p.time > maxTime || threads < 1 || threads > maxThreads {
		return p, fmt.Errorf("argon2 parameters %q out of bounds", parts[3])
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, errors.New("bad argon2 salt")
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, errors.New("bad argon2 key")
	}
	return p, nil
}

// CheckStrength returns nil if pw may be set as a password, else an error that tells the user
// what to change: at least MinLength characters, at most MaxLength bytes, valid UTF-8 without
// control characters, and at least MinClasses character classes mixed.
func CheckStrength(pw string) error {
	if !utf8.ValidString(pw) {
		return errors.New("must be valid UTF-8")
	}
	if utf8.RuneCountInString(pw) < MinLength {
		return fmt.Errorf("must be at least %d characters long", MinLength)
	}
	if len(pw) > MaxLength {
		return fmt.Errorf("must be at most %d bytes long", MaxLength)
	}
	var lower, upper, digit, other bool
	for _, r := range pw {
		switch {
		case unicode.IsControl(r):
			return errors.New("must not contain control characters")
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
	}
	n := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			n++
		}
	}
	if n < MinClasses {
		return fmt.Errorf("must mix at least %d kinds of characters (lower case, upper case, digits, symbols or spaces)", MinClasses)
	}
	return nil
}

// Generate returns a random password that passes CheckStrength: 26 characters of upper case
// letters and digits (crypto/rand.Text, 130 bits), for accounts whose first password the server
// chooses.
func Generate() string {
	for {
		if pw := rand.Text(); CheckStrength(pw) == nil {
			return pw
		}
	}
}
