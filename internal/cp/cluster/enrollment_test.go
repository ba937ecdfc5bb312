package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

func csrPEM(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestEnroll: a token signs the CSR's key for its group (pinned, with the token's labels) as many
// times as it allows, even under concurrent use, and never when used up, expired, revoked,
// unknown, or with a bad CSR.
func TestEnroll(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, storetest.Open(t, dialect), nil)
			ctx := context.Background()
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr := csrPEM(t, key)

			tok, secret, err := e.c.CreateEnrollmentToken(ctx, e.group, time.Hour, 2, map[string]string{"zone": "a"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(secret, "."+Fingerprint(e.c.ca.cert)) || tok.Status != "active" {
				t.Fatalf("token %q %+v: want the CA fingerprint after the secret", secret, tok)
			}
			// Three concurrent uses of a two-use token: exactly two certificates.
			var wg sync.WaitGroup
			errs := make([]error, 3)
			certs := make([]string, 3)
			for i := range 3 {
				wg.Go(func() { certs[i], _, _, errs[i] = e.c.Enroll(ctx, secret, csr, "host") })
			}
			wg.Wait()
			ok := 0
			for i, err := range errs {
				var ee *EnrollError
				switch {
				case err == nil:
					ok++
					b, _ := pem.Decode([]byte(certs[i]))
					c, perr := x509.ParseCertificate(b.Bytes)
					if perr != nil || !c.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) || groupOfCert(c) != e.group {
						t.Fatalf("issued certificate: %v", perr)
					}
				case errors.As(err, &ee) && strings.Contains(ee.Message, "already used (2 of 2)"):
				default:
					t.Fatalf("enrollment %d: %v", i, err)
				}
			}
			if ok != 2 {
				t.Fatalf("%d enrollments with a two-use token, want 2", ok)
			}
			pins, _ := e.c.Certificates(ctx, e.group)
			if len(pins) != 2 || pins[0].Labels["zone"] != "a" || pins[0].EnrollmentTokenID != tok.ID {
				t.Fatalf("pins %+v", pins)
			}

			refused := func(what, token, csr, want string) {
				t.Helper()
				_, _, _, err := e.c.Enroll(ctx, token, csr, "")
				var ee *EnrollError
				if !errors.As(err, &ee) || !strings.Contains(ee.Message, want) {
					t.Errorf("%s: %v, want a refusal containing %q", what, err, want)
				}
			}
			fresh := func(ttl time.Duration) (EnrollmentToken, string) {
				t.Helper()
				tk, s, err := e.c.CreateEnrollmentToken(ctx, e.group, ttl, 1, nil)
				if err != nil {
					t.Fatal(err)
				}
				return tk, s
			}
			refused("unknown", "gent_unknown."+Fingerprint(e.c.ca.cert), csr, "not known")
			refused("not a token", "gpat_x", csr, "not an enrollment token")
			_, s := fresh(time.Hour)
			refused("no CSR", s, "", "PEM CERTIFICATE REQUEST")
			weak, _ := rsa.GenerateKey(rand.Reader, 1024)
			refused("weak key", s, csrPEM(t, weak), "at least 2048 bits")
			rk, s2 := fresh(time.Hour)
			if err := e.c.RevokeEnrollmentToken(ctx, e.group, rk.ID); err != nil {
				t.Fatal(err)
			}
			refused("revoked", s2, csr, "revoked")
			_, s3 := fresh(time.Nanosecond)
			time.Sleep(1100 * time.Millisecond) // expiry has second resolution
			refused("expired", s3, csr, "expired")
			// The refused attempts used nothing: the first fresh token still enrolls.
			if _, _, _, err := e.c.Enroll(ctx, s, csr, ""); err != nil {
				t.Fatalf("a token refused only for a bad CSR: %v", err)
			}
		})
	}
}
