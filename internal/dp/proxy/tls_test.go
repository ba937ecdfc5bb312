package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
)

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

func newCert(t *testing.T, cn string, parent *testCA, isCA bool, ips []net.IP, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		IPAddresses:           ips,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.DNSNames = []string{cn}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newCA(t *testing.T, cn string, parent *testCA) *testCA {
	cert, key := newCert(t, cn, parent, true, nil, 0)
	return &testCA{cert: cert, key: key}
}

// leaf issues a certificate for cn (and 127.0.0.1); chain lists the
// intermediates to send after it.
func (ca *testCA) leaf(t *testing.T, cn string, usage x509.ExtKeyUsage, chain ...*x509.Certificate) *tls.Certificate {
	cert, key := newCert(t, cn, ca, false, []net.IP{net.IPv4(127, 0, 0, 1)}, usage)
	tc := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

func TestHTTPSUpstream(t *testing.T) {
	root := newCA(t, "Test Root", nil)
	inter := newCA(t, "Test Intermediate", root)
	other := newCA(t, "Other Root", nil)
	clientCA := newCA(t, "Client CA", nil)
	direct := root.leaf(t, "upstream.test", x509.ExtKeyUsageServerAuth)
	chained := inter.leaf(t, "upstream.test", x509.ExtKeyUsageServerAuth, inter.cert)
	client := clientCA.leaf(t, "gantry-client", x509.ExtKeyUsageClientAuth)
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.cert)

	// startTLS starts an upstream with cert that may require a client
	// certificate, answering with the client certificate's CN; it counts
	// TLS connections.
	startTLS := func(t *testing.T, cert *tls.Certificate, requireClient bool) (string, *atomic.Int64) {
		var conns atomic.Int64
		up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cn := ""
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				cn = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			w.Header().Set("X-Client-Cn", cn)
			w.Header().Set("X-Sni", r.TLS.ServerName)
			_, _ = io.WriteString(w, "secure")
		}))
		up.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		if requireClient {
			up.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			up.TLS.ClientCAs = clientPool
		}
		up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		up.Config.ErrorLog = nil
		up.StartTLS()
		t.Cleanup(up.Close)
		return up.Listener.Addr().String(), &conns
	}

	tests := []struct {
		name          string
		cert          *tls.Certificate
		requireClient bool
		svc           Service // Host, Port and Protocol are filled in
		status        int
		clientCN      string
	}{
		{"verify with the right CA", direct, false, Service{TLSVerify: true, CACertificates: []*x509.Certificate{root.cert}}, 200, ""},
		{"verify with a wrong CA", direct, false, Service{TLSVerify: true, CACertificates: []*x509.Certificate{other.cert}}, 502, ""},
		{"verify against system roots", direct, false, Service{TLSVerify: true}, 502, ""},
		{"no verification", direct, false, Service{}, 200, ""},
		{"verify with a wrong server name", direct, false, Service{TLSVerify: true, CACertificates: []*x509.Certificate{root.cert}, TLSServerName: "other.test"}, 502, ""},
		{"chain within depth", chained, false, Service{TLSVerify: true, TLSVerifyDepth: 2, CACertificates: []*x509.Certificate{root.cert}}, 200, ""},
		{"chain beyond depth", chained, false, Service{TLSVerify: true, TLSVerifyDepth: 1, CACertificates: []*x509.Certificate{root.cert}}, 502, ""},
		{"client certificate required, none given", direct, true, Service{}, 502, ""},
		{"client certificate required and given", direct, true, Service{ClientCertificate: client, TLSVerify: true, CACertificates: []*x509.Certificate{root.cert}}, 200, "gantry-client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := startTLS(t, tt.cert, tt.requireClient)
			host, port, _ := net.SplitHostPort(addr)
			svc := tt.svc
			svc.Host, svc.Protocol, svc.Retries = host, "https", 0
			svc.Port, _ = strconv.Atoi(port)
			if svc.TLSServerName == "" {
				svc.TLSServerName = "upstream.test"
			}
			if err := svc.Prepare(); err != nil {
				t.Fatal(err)
			}
			env := newEnv(t, ownLoop, staticCfg(&svc), h1client.Options{})
			for i := 0; i < 3; i++ {
				resp, body := get(t, env.url+"/")
				if resp.StatusCode != tt.status {
					t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, tt.status, body)
				}
				if tt.status != 200 {
					return
				}
				if string(body) != "secure" || resp.Header.Get("X-Client-Cn") != tt.clientCN || resp.Header.Get("X-Sni") != svc.TLSServerName {
					t.Errorf("body %q, client CN %q (want %q), SNI %q", body, resp.Header.Get("X-Client-Cn"), tt.clientCN, resp.Header.Get("X-Sni"))
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("TLS connections = %d, want 1 (kept alive)", n)
			}
		})
	}
}

// TestTLSPoolKeys checks that services with different TLS settings to the
// same address never share connections, and equal settings do.
func TestTLSPoolKeys(t *testing.T) {
	ca := newCA(t, "Root", nil)
	cc := ca.leaf(t, "c", x509.ExtKeyUsageClientAuth)
	mk := func(mod func(*Service)) *Service {
		s := &Service{Host: "127.0.0.1", Port: 443, Protocol: "https"}
		mod(s)
		if err := s.Prepare(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := mk(func(*Service) {})
	same := mk(func(*Service) {})
	for name, s := range map[string]*Service{
		"verify":      mk(func(s *Service) { s.TLSVerify = true }),
		"client cert": mk(func(s *Service) { s.ClientCertificate = cc }),
		"ca":          mk(func(s *Service) { s.TLSVerify, s.CACertificates = true, []*x509.Certificate{ca.cert} }),
		"sni":         mk(func(s *Service) { s.TLSServerName = "x" }),
	} {
		if s.poolKey == base.poolKey {
			t.Errorf("%s: same pool key as the default settings", name)
		}
	}
	if same.poolKey != base.poolKey {
		t.Error("equal TLS settings got different pool keys")
	}
	if plain := mk(func(s *Service) { s.Protocol = "http" }); plain.tlsConfig != nil || plain.poolKey != "" {
		t.Error("plain service got TLS settings")
	}
	if err := (&Service{Host: "h", Port: 1, TLSVerifyDepth: -1}).Prepare(); err == nil {
		t.Error("negative tls_verify_depth accepted")
	}
}
