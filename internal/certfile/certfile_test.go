package certfile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemPair returns a self-signed certificate for cn and its key, in PEM.
func pemPair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func served(t *testing.T, p *Pair) string {
	t.Helper()
	c, err := p.GetCertificate(nil)
	if err != nil || c == nil {
		t.Fatalf("GetCertificate: %v %v", c, err)
	}
	return c.Leaf.Subject.CommonName
}

func TestReloadAndWatch(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	aCert, aKey := pemPair(t, "a.example")
	bCert, bKey := pemPair(t, "b.example")

	if _, err := New(Options{CertFile: certFile, KeyFile: keyFile}); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("missing files: %v, want an error naming %s", err, certFile)
	}
	write(t, certFile, aCert)
	write(t, keyFile, aKey)
	p, err := New(Options{CertFile: certFile, KeyFile: keyFile, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, p); got != "a.example" {
		t.Fatalf("served %s", got)
	}

	// Renewed files, picked up by an explicit reload (SIGHUP).
	write(t, certFile, bCert)
	write(t, keyFile, bKey)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, p); got != "b.example" {
		t.Fatalf("after reload served %s, want b.example", got)
	}

	// A half-written renewal (new certificate, old key) is refused and the pair keeps serving.
	write(t, certFile, aCert)
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("mismatched pair: %v", err)
	}
	if got := served(t, p); got != "b.example" {
		t.Fatalf("after a failed reload served %s, want b.example still", got)
	}

	// Watch completes the renewal once the key file changes too.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	write(t, keyFile, aKey)
	deadline := time.Now().Add(5 * time.Second)
	for served(t, p) != "a.example" {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not reload the changed files")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
