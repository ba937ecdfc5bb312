package compile

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// CertStore holds the certificates of one configuration by SNI: exact
// names, then wildcard names, the way Kong looks a server name up
// ("*.example.com" for a name whose first label is replaced, then
// "example.*" for a name whose last label is). It is immutable and safe for
// concurrent use; a nil *CertStore has no certificates.
type CertStore struct {
	exact map[string][]*tls.Certificate
	// suffix is keyed by the name without its leading "*" (".example.com");
	// prefix by the name without its trailing "*" ("example.").
	suffix map[string][]*tls.Certificate
	prefix map[string][]*tls.Certificate
}

// Lookup returns the certificate for a ClientHello: the first certificate
// of the best-matching SNI entry that the client supports (a certificate's
// alternate, cert_alt, is offered when the client cannot use the main one),
// or nil when no SNI entry matches. Lookup does not allocate.
func (s *CertStore) Lookup(hello *tls.ClientHelloInfo) *tls.Certificate {
	if s == nil || hello == nil || hello.ServerName == "" {
		return nil
	}
	name := strings.TrimSuffix(hello.ServerName, ".")
	if cs := s.exact[name]; cs != nil {
		return pickCert(hello, cs)
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if cs := s.suffix[name[i:]]; cs != nil {
			return pickCert(hello, cs)
		}
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if cs := s.prefix[name[:i+1]]; cs != nil {
			return pickCert(hello, cs)
		}
	}
	return nil
}

// Len reports how many SNI entries the store has.
func (s *CertStore) Len() int {
	if s == nil {
		return 0
	}
	return len(s.exact) + len(s.suffix) + len(s.prefix)
}

func pickCert(hello *tls.ClientHelloInfo, cs []*tls.Certificate) *tls.Certificate {
	if len(cs) > 1 {
		for _, c := range cs {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return cs[0]
}

// add registers certs under an SNI name ("a.example.com", "*.example.com"
// or "example.*").
func (s *CertStore) add(name string, certs []*tls.Certificate) error {
	name = strings.TrimSuffix(name, ".")
	switch {
	case strings.HasPrefix(name, "*."):
		if strings.Contains(name[1:], "*") {
			return fmt.Errorf("invalid wildcard SNI %q", name)
		}
		s.suffix[name[1:]] = certs
	case strings.HasSuffix(name, ".*"):
		if strings.Contains(name[:len(name)-1], "*") {
			return fmt.Errorf("invalid wildcard SNI %q", name)
		}
		s.prefix[name[:len(name)-1]] = certs
	case strings.Contains(name, "*") || name == "":
		return fmt.Errorf("invalid SNI %q", name)
	default:
		s.exact[name] = certs
	}
	return nil
}

func newCertStore() *CertStore {
	return &CertStore{
		exact:  make(map[string][]*tls.Certificate),
		suffix: make(map[string][]*tls.Certificate),
		prefix: make(map[string][]*tls.Certificate),
	}
}

// keyPair parses a PEM certificate chain and its key, with the leaf parsed
// so that handshakes need not parse it again.
func keyPair(certPEM, keyPEM string) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// parseCACert parses a single PEM CA certificate, as Kong's ca_certificates
// entity holds.
func parseCACert(certPEM string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("invalid certificate: no PEM CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("invalid certificate: %w", err)
	}
	return c, nil
}
