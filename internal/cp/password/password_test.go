package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse Battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not the expected PHC string", h)
	}
	if h2, _ := Hash("correct horse Battery"); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if err := Verify("correct horse Battery", h); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, wrong := range []string{"", "correct horse battery", "correct horse Battery "} {
		if err := Verify(wrong, h); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify(%q) = %v, want ErrMismatch", wrong, err)
		}
	}
	VerifyDummy("anything") // must not panic
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	good, _ := Hash("correct horse Battery")
	parts := strings.Split(good, "$")
	for _, tc := range []struct{ name, phc string }{
		{"empty", ""},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"version", strings.Replace(good, "v=19", "v=16", 1)},
		{"huge memory", strings.Join([]string{"", parts[1], parts[2], "m=4194304,t=2,p=1", parts[4], parts[5]}, "$")},
		{"zero time", strings.Join([]string{"", parts[1], parts[2], "m=19456,t=0,p=1", parts[4], parts[5]}, "$")},
		{"bad salt", strings.Join([]string{"", parts[1], parts[2], parts[3], "!!", parts[5]}, "$")},
		{"short key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$")},
		{"missing part", strings.Join(parts[:5], "$")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify("correct horse Battery", tc.phc)
			if err == nil || errors.Is(err, ErrMismatch) {
				t.Fatalf("Verify = %v, want a format error", err)
			}
		})
	}
}

func TestVerifyReadsOtherParameters(t *testing.T) {
	// A hash made with other parameters (as after a change of the constants) still verifies.
	salt := []byte("somesaltsalt")
	key := argon2.IDKey([]byte("password"), salt, 1, 64, 2, 24)
	phc := "$argon2id$v=19$m=64,t=1,p=2$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
	if err := Verify("password", phc); err != nil {
		t.Fatalf("hash with other parameters: %v", err)
	}
	if err := Verify("Password", phc); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestCheckStrength(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want string // "" when accepted, else part of the error
	}{
		{"Short1", "at least 12"},
		{"alllowercaseletters", "kinds of characters"},
		{"123456789012345", "kinds of characters"},
		{"lowercase and spaces", ""},
		{"Tr0ub4dor&3xyz", ""},
		{"ÜBERLANGESWORT1", ""},
		{"tab\tseparated words", "control characters"},
		{strings.Repeat("aB", 129), "at most 256"},
		{"\xff\xfe invalid utf8 Aa", "UTF-8"},
	} {
		t.Run(tc.pw, func(t *testing.T) {
			err := CheckStrength(tc.pw)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckStrength = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for range 20 {
		if pw := Generate(); CheckStrength(pw) != nil || len(pw) != 26 {
			t.Fatalf("generated password %q does not pass the rule", pw)
		}
	}
}
