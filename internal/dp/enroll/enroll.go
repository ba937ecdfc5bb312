// Package enroll is the runtime's side of enrollment: given a one-time token, it makes the
// instance's own key, checks the control plane's cluster listener against the CA fingerprint the
// token carries, sends a certificate signing request with the token (wire.EnrollPath) and stores
// the key, the certificate and the CA in the instance's data directory. The private key never
// leaves the machine, and no CA file has to be copied.
package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/wire"
)

// Files are the enrolled credentials inside a data directory.
type Files struct {
	// Cert, Key and CA are file paths: the client certificate, its private key (0600) and the
	// cluster CA.
	Cert, Key, CA string
}

// FilesIn returns where enrollment keeps its files in dir.
func FilesIn(dir string) Files {
	d := filepath.Join(dir, "enrollment")
	return Files{Cert: filepath.Join(d, "tls.crt"), Key: filepath.Join(d, "tls.key"), CA: filepath.Join(d, "ca.crt")}
}

// Exist reports whether all three files are there (the instance enrolled before).
func (f Files) Exist() bool {
	for _, p := range []string{f.Cert, f.Key, f.CA} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Options configure Enroll.
type Options struct {
	// ControlPlane is the cluster listener, host:port; required.
	ControlPlane string
	// Token is the enrollment token (gent_<secret>.<CA fingerprint>); required.
	Token string
	// Dir is the instance's data directory; required. The files go to FilesIn(Dir).
	Dir string
	// Hostname names the instance to the control plane; informational.
	Hostname string
	// ServerName is the name the listener's certificate must carry; the host of ControlPlane
	// when empty.
	ServerName string
	// Timeout bounds the whole exchange; defaults to 30 s.
	Timeout time.Duration
}

// Error is a refusal from the control plane; Message says why and what to do.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("enrollment refused (HTTP %d): %s", e.Status, e.Message)
}

// ParseToken splits a token into its secret and the CA fingerprint it carries.
func ParseToken(token string) (secret, caFingerprint string, err error) {
	secret, fp, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !strings.HasPrefix(secret, wire.EnrollmentTokenPrefix) || !ok {
		return "", "", fmt.Errorf("not an enrollment token: it must look like %s<secret>.<CA fingerprint> (create one with POST /v2/runtime-groups/{id}/enrollment-tokens)", wire.EnrollmentTokenPrefix)
	}
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
		return "", "", errors.New("the enrollment token's CA fingerprint is damaged: copy the whole token")
	}
	return secret, strings.ToLower(fp), nil
}

// Enroll enrolls the instance and returns where its credentials are. On any failure nothing is
// written.
func Enroll(ctx context.Context, opts Options) (Files, error) {
	if opts.ControlPlane == "" || opts.Token == "" || opts.Dir == "" {
		return Files{}, errors.New("enroll: ControlPlane, Token and Dir are required")
	}
	_, fp, err := ParseToken(opts.Token)
	if err != nil {
		return Files{}, err
	}
	serverName := opts.ServerName
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(opts.ControlPlane)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Go's verification needs roots; the only root here is the CA the token names, found in
		// the chain the listener sends, so the check is done by hand below.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection against the token's fingerprint
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyPinnedCA(cs, fp, serverName) },
	}
	files := FilesIn(opts.Dir)
	err = exchange(ctx, exchangeOptions{controlPlane: opts.ControlPlane, path: wire.EnrollPath, tls: cfg, token: opts.Token,
		hostname: opts.Hostname, caFingerprint: fp, files: files, timeout: opts.Timeout, what: "enrolling"})
	if err != nil {
		return Files{}, err
	}
	return files, nil
}

// exchangeOptions describe one certificate request to the cluster listener.
type exchangeOptions struct {
	controlPlane, path string
	tls                *tls.Config
	token, hostname    string
	// caFingerprint is the hex SHA-256 the answer's CA must have.
	caFingerprint string
	files         Files
	timeout       time.Duration
	// what names the exchange in errors ("enrolling", "renewing").
	what string
}

// exchange makes a new key, sends its CSR to o.path, checks the certificate that comes back and
// writes key, certificate and CA to o.files. On any failure nothing is written.
func exchange(ctx context.Context, o exchangeOptions) error {
	if o.timeout <= 0 {
		o.timeout = 30 * time.Second
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: o.hostname}}, key)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(wire.EnrollRequest{Token: o.token, Hostname: o.hostname,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	tr := &http.Transport{TLSClientConfig: o.tls}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+o.controlPlane+o.path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
			return fmt.Errorf("%s with %s: the address answered without TLS: is --control-plane the API port (:8080)? Give the cluster listener (:8005 by default): %w", o.what, o.controlPlane, err)
		}
		return fmt.Errorf("%s with %s: %w", o.what, o.controlPlane, err)
	}
	defer func() { _ = res.Body.Close() }() // the body was read; nothing to report
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s with %s: %w", o.what, o.controlPlane, err)
	}
	if res.StatusCode != http.StatusOK {
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(raw))
		}
		return &Error{Status: res.StatusCode, Message: m.Message}
	}
	var out wire.EnrollResponse
	if err := json.Unmarshal(raw, &out); err != nil || out.Cert == "" || out.CACert == "" {
		return fmt.Errorf("%s with %s: unreadable answer", o.what, o.controlPlane)
	}
	if err := checkIssued(out, &key.PublicKey, o.caFingerprint); err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeAll(o.files, []byte(out.Cert), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), []byte(out.CACert))
}

// verifyPinnedCA accepts the listener only if its chain holds the CA whose SHA-256 is fp and the
// leaf verifies against that CA for serverName.
func verifyPinnedCA(cs tls.ConnectionState, fp, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the control plane sent no certificate")
	}
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates {
		sum := sha256.Sum256(c.Raw)
		if hex.EncodeToString(sum[:]) == fp {
			ca = c
		}
	}
	if ca == nil {
		return errors.New("the control plane's certificate is not issued by the CA the enrollment token names: wrong --control-plane address, or a token of another control plane")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName})
	if err != nil {
		return fmt.Errorf("the control plane's certificate does not verify for %q (set --server-name to a name it carries): %w", serverName, err)
	}
	return nil
}

// checkIssued makes sure the answer is a certificate for our key from the pinned CA.
func checkIssued(out wire.EnrollResponse, pub *ecdsa.PublicKey, fp string) error {
	cb, _ := pem.Decode([]byte(out.Cert))
	ab, _ := pem.Decode([]byte(out.CACert))
	if cb == nil || ab == nil {
		return errors.New("enrollment answer: certificate or CA is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("enrollment answer: %w", err)
	}
	ca, err := x509.ParseCertificate(ab.Bytes)
	if err != nil {
		return fmt.Errorf("enrollment answer: %w", err)
	}
	if sum := sha256.Sum256(ca.Raw); hex.EncodeToString(sum[:]) != fp {
		return errors.New("enrollment answer: the CA is not the one the token names")
	}
	if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(pub) {
		return errors.New("enrollment answer: the certificate is not for this instance's key")
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("enrollment answer: %w", err)
	}
	return nil
}

// writeAll writes the three files (the key 0600) through temporary files and renames, so that a
// crash leaves either nothing or everything.
func writeAll(f Files, cert, key, ca []byte) error {
	if err := os.MkdirAll(filepath.Dir(f.Key), 0o700); err != nil {
		return fmt.Errorf("enrollment directory: %w", err)
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.Key, key}, {f.CA, ca}, {f.Cert, cert}} { // the certificate last: Exist needs all three
		tmp := w.path + ".tmp"
		if err := os.WriteFile(tmp, w.data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, w.path); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	return nil
}

// RenewOptions configure Renew.
type RenewOptions struct {
	// ControlPlane is the cluster listener, host:port; required.
	ControlPlane string
	// TLS is the instance's client TLS configuration: its current certificate authenticates the
	// renewal, and its roots check the listener; required.
	TLS *tls.Config
	// Dir is the data directory holding FilesIn(Dir); required.
	Dir string
	// Hostname names the instance; informational.
	Hostname string
	// Timeout bounds the exchange; defaults to 30 s.
	Timeout time.Duration
}

// Renew gets a new certificate for a new key over the instance's authenticated link and replaces
// the files in FilesIn(Dir). On failure the old files stay.
func Renew(ctx context.Context, opts RenewOptions) error {
	if opts.ControlPlane == "" || opts.TLS == nil || opts.Dir == "" {
		return errors.New("enroll: ControlPlane, TLS and Dir are required to renew")
	}
	files := FilesIn(opts.Dir)
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		return fmt.Errorf("renewal: %w", err)
	}
	ab, _ := pem.Decode(caPEM)
	if ab == nil {
		return fmt.Errorf("renewal: %s holds no PEM certificate", files.CA)
	}
	sum := sha256.Sum256(ab.Bytes)
	return exchange(ctx, exchangeOptions{controlPlane: opts.ControlPlane, path: wire.RenewPath, tls: opts.TLS.Clone(),
		hostname: opts.Hostname, caFingerprint: hex.EncodeToString(sum[:]), files: files, timeout: opts.Timeout, what: "renewing"})
}
