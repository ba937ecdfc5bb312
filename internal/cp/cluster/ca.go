package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// Validity periods of what the control plane issues.
const (
	// CAValidity is how long a CA created on first start is valid.
	CAValidity = 20 * 365 * 24 * time.Hour
	// ClientCertValidity is how long a generated client certificate is valid. Users report short
	// lifetimes as a cause of silently stalled instances, so it is long; pinning can be undone at
	// any time by deleting the certificate.
	ClientCertValidity = 10 * 365 * 24 * time.Hour
	// ServerCertValidity is how long the listener's certificate is valid; it is reissued at every
	// start.
	ServerCertValidity = 365 * 24 * time.Hour
	// DefaultEnrolledCertValidity is how long a certificate issued by enrollment or renewal is
	// valid: instances renew it themselves before it expires (see Options.EnrolledCertValidity).
	DefaultEnrolledCertValidity = 365 * 24 * time.Hour
)

// groupURIPrefix starts the URI SAN that names the group of a generated client certificate. The
// pin row, not this name, grants access; the name only lets the control plane tell "your group
// was deleted" apart from "unknown certificate".
const groupURIPrefix = "urn:gantry:runtime-group:"

// authority is the CA the control plane signs with. Immutable after loadCA.
type authority struct {
	cert    *x509.Certificate
	key     any // crypto.Signer
	certPEM []byte
}

// loadCA returns the user's CA when certPEM/keyPEM are given, else the CA stored in the
// database, creating and storing one on first start. Several processes starting together agree
// on one CA: the row's primary key lets exactly one insert win and the others read it.
func loadCA(ctx context.Context, st *sqlstore.Store, certPEM, keyPEM []byte, now time.Time) (*authority, error) {
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		if len(certPEM) == 0 || len(keyPEM) == 0 {
			return nil, errors.New("cluster: a user CA needs both its certificate and its key")
		}
		return parseCA(certPEM, keyPEM)
	}
	var c, k string
	err := st.DB().QueryRowContext(ctx, `SELECT cert_pem, key_pem FROM cluster_ca WHERE id = 1`).Scan(&c, &k)
	if err == nil {
		return parseCA([]byte(c), []byte(k))
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("cluster: read CA: %w", err)
	}
	certPEM, keyPEM, err = newCA(now)
	if err != nil {
		return nil, err
	}
	_, err = st.DB().ExecContext(ctx, st.Rebind(`INSERT INTO cluster_ca (id, cert_pem, key_pem, created_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		string(certPEM), string(keyPEM), now.Unix())
	if err != nil {
		return nil, fmt.Errorf("cluster: store CA: %w", err)
	}
	// Read back: another process may have won the insert.
	if err := st.DB().QueryRowContext(ctx, `SELECT cert_pem, key_pem FROM cluster_ca WHERE id = 1`).Scan(&c, &k); err != nil {
		return nil, fmt.Errorf("cluster: read CA: %w", err)
	}
	return parseCA([]byte(c), []byte(k))
}

func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Gantry cluster CA", Organization: []string{"Gantry"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: create CA: %w", err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

func parseCA(certPEM, keyPEM []byte) (*authority, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate and key: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("cluster: the CA certificate is not a CA (basic constraints)")
	}
	return &authority{cert: cert, key: pair.PrivateKey, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// issue signs a new certificate for tmpl's subject and returns it with its key as PEM.
func (a *authority) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, cert, err = a.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), cert, nil
}

// sign signs a certificate for tmpl's subject and the public key pub (whose private key the
// control plane never sees, for enrollment).
func (a *authority) sign(tmpl *x509.Certificate, pub any) (certPEM []byte, cert *x509.Certificate, err error) {
	tmpl.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: sign certificate: %w", err)
	}
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// clientTemplate is the client certificate of a group's instances.
func clientTemplate(groupID string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	u, err := url.Parse(groupURIPrefix + groupID)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gantry-runtime", Organization: []string{"Gantry"}, OrganizationalUnit: []string{groupID}},
		URIs:        []*url.URL{u},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, nil
}

// issueClient makes a client certificate and key for a group's instances.
func (a *authority) issueClient(groupID string, now time.Time) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	tmpl, err := clientTemplate(groupID, now, ClientCertValidity)
	if err != nil {
		return nil, nil, nil, err
	}
	return a.issue(tmpl)
}

// issueServer makes the cluster listener's certificate for names (DNS names or IP addresses).
func (a *authority) issueServer(names []string, now time.Time) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gantry-control-plane", Organization: []string{"Gantry"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(ServerCertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	certPEM, keyPEM, _, err := a.issue(tmpl)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	// The chain carries the CA too, so that an enrolling instance can check it against the
	// fingerprint its token holds before it trusts anything.
	pair.Certificate = append(pair.Certificate, a.cert.Raw)
	return pair, nil
}

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding, the identity of a pinned
// certificate.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// parseCertPEM parses the first certificate of a PEM text.
func parseCertPEM(text string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM-encoded certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// groupOfCert returns the group id named in a generated certificate's URI SAN, or "".
func groupOfCert(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if s := u.String(); len(s) > len(groupURIPrefix) && s[:len(groupURIPrefix)] == groupURIPrefix {
			return s[len(groupURIPrefix):]
		}
	}
	return ""
}
