package cluster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// Certificate is a client certificate pinned to one runtime group: an instance presenting it
// receives that group's configuration and no other.
type Certificate struct {
	// ID is the pin's UUID.
	ID string `json:"id"`
	// GroupID is the group the certificate belongs to.
	GroupID string `json:"-"`
	// Cert is the PEM certificate.
	Cert string `json:"cert"`
	// Title is the user's label; may be empty.
	Title string `json:"title"`
	// Fingerprint is the hex SHA-256 of the DER certificate; unique across all groups.
	Fingerprint string `json:"fingerprint"`
	// Generated is true for certificates the control plane issued from its CA.
	Generated bool `json:"generated"`
	// CreatedAt, UpdatedAt and ExpiresAt are Unix seconds (Konnect's integer epochs).
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
	ExpiresAt int64 `json:"expires_at"`
	// Labels are the labels of the enrollment token that issued it, which its instances carry;
	// empty for other certificates.
	Labels map[string]string `json:"labels,omitempty"`
	// EnrollmentTokenID is the enrollment token that issued it; empty for other certificates.
	EnrollmentTokenID string `json:"enrollment_token_id,omitempty"`
}

// IssuedCertificate is what IssueCertificate returns once: the key is not kept by the control
// plane.
type IssuedCertificate struct {
	// Certificate is the pinned certificate.
	Certificate Certificate
	// CertPEM and KeyPEM are the instance's client certificate and private key.
	CertPEM string
	KeyPEM  string
	// CAPEM is the CA the instance must trust for the cluster listener (Kong's
	// cluster_ca_cert, pki mode).
	CAPEM string
}

// ErrCertificateInvalid wraps every reason a certificate cannot be pinned.
var ErrCertificateInvalid = errors.New("invalid certificate")

// PinCertificate pins a client certificate the user brings to a group. The certificate must
// parse, must not be expired, and must not be pinned already (to this or another group: a
// certificate belongs to exactly one group, store.ErrConflict otherwise).
func (c *Cluster) PinCertificate(ctx context.Context, groupID, title, certPEM string) (Certificate, error) {
	cert, err := parseCertPEM(strings.TrimSpace(certPEM))
	if err != nil {
		return Certificate{}, fmt.Errorf("%w: %w", ErrCertificateInvalid, err)
	}
	now := c.now()
	if now.After(cert.NotAfter) {
		return Certificate{}, fmt.Errorf("%w: it expired at %s", ErrCertificateInvalid, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return c.pin(ctx, groupID, title, certPEM, Fingerprint(cert), cert.NotAfter, false)
}

// IssueCertificate generates a key pair and a client certificate for the group, signed by the
// control plane's CA, pins it, and returns the certificate, its key and the CA to trust. The
// key is returned only here: it is not stored.
func (c *Cluster) IssueCertificate(ctx context.Context, groupID, title string) (IssuedCertificate, error) {
	certPEM, keyPEM, cert, err := c.ca.issueClient(groupID, c.now())
	if err != nil {
		return IssuedCertificate{}, err
	}
	pinned, err := c.pin(ctx, groupID, title, string(certPEM), Fingerprint(cert), cert.NotAfter, true)
	if err != nil {
		return IssuedCertificate{}, err
	}
	return IssuedCertificate{Certificate: pinned, CertPEM: string(certPEM), KeyPEM: string(keyPEM), CAPEM: string(c.ca.certPEM)}, nil
}

func (c *Cluster) pin(ctx context.Context, groupID, title, certPEM, fp string, expires time.Time, generated bool) (Certificate, error) {
	now := c.now().Unix()
	p := Certificate{ID: uuid.NewString(), GroupID: groupID, Cert: strings.TrimSpace(certPEM) + "\n", Title: title, Fingerprint: fp,
		Generated: generated, CreatedAt: now, UpdatedAt: now, ExpiresAt: expires.Unix()}
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.insertPin(ctx, tx, p); err != nil {
			return err
		}
		return c.st.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionCreate, GroupID: groupID, EntityType: AuditCertificates,
			EntityID: p.ID, EntityName: p.Title, After: p})
	})
	if err != nil {
		return Certificate{}, err
	}
	return p, nil
}

// Entity types of the cluster's writes in the audit log.
const (
	AuditCertificates     = "dp_client_certificates"
	AuditEnrollmentTokens = "enrollment_tokens"
	AuditNodes            = "nodes"
)

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertPin stores p, the one place pins are written (by hand, generated, enrolled or renewed).
func (c *Cluster) insertPin(ctx context.Context, db execer, p Certificate) error {
	labels := []byte("{}")
	if len(p.Labels) > 0 {
		labels, _ = json.Marshal(p.Labels) // a map of strings always encodes
	}
	_, err := db.ExecContext(ctx, c.st.Rebind(`INSERT INTO dp_client_certificates
		(id, group_id, cert_pem, fingerprint, title, generated, created_at, updated_at, expires_at, labels, enrollment_token_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.ID, p.GroupID, p.Cert, p.Fingerprint, p.Title, p.Generated, p.CreatedAt, p.UpdatedAt, p.ExpiresAt, string(labels), p.EnrollmentTokenID)
	if err != nil {
		return fmt.Errorf("pin certificate: %w", c.st.MapError(err))
	}
	return nil
}

const certColumns = `id, group_id, cert_pem, fingerprint, title, generated, created_at, updated_at, expires_at, labels, enrollment_token_id`

func scanCert(row interface{ Scan(...any) error }) (Certificate, error) {
	var p Certificate
	var labels string
	err := row.Scan(&p.ID, &p.GroupID, &p.Cert, &p.Fingerprint, &p.Title, &p.Generated, &p.CreatedAt, &p.UpdatedAt, &p.ExpiresAt, &labels, &p.EnrollmentTokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("certificate: %w", store.ErrNotFound)
	}
	if err == nil && labels != "" && labels != "{}" {
		err = json.Unmarshal([]byte(labels), &p.Labels)
	}
	return p, err
}

// Certificates lists the group's pinned certificates, oldest first.
func (c *Cluster) Certificates(ctx context.Context, groupID string) ([]Certificate, error) {
	rows, err := c.st.DB().QueryContext(ctx, c.st.Rebind(`SELECT `+certColumns+` FROM dp_client_certificates WHERE group_id = ? ORDER BY created_at, id`), groupID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Certificate{}
	for rows.Next() {
		p, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Certificate returns one pinned certificate of the group, or an error wrapping
// store.ErrNotFound.
func (c *Cluster) Certificate(ctx context.Context, groupID, id string) (Certificate, error) {
	return scanCert(c.st.DB().QueryRowContext(ctx, c.st.Rebind(`SELECT `+certColumns+` FROM dp_client_certificates WHERE group_id = ? AND id = ?`), groupID, id))
}

// UnpinCertificate deletes a pin; instances presenting the certificate are refused from their
// next connection on, and connected ones are disconnected.
func (c *Cluster) UnpinCertificate(ctx context.Context, groupID, id string) error {
	p, err := c.Certificate(ctx, groupID, id)
	if err != nil {
		return err
	}
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, c.st.Rebind(`DELETE FROM dp_client_certificates WHERE group_id = ? AND id = ?`), groupID, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("certificate: %w", store.ErrNotFound)
		}
		return c.st.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionDelete, GroupID: groupID, EntityType: AuditCertificates,
			EntityID: p.ID, EntityName: p.Title, Before: p})
	})
	if err != nil {
		return err
	}
	c.hub.dropFingerprint(p.Fingerprint, "client certificate was unpinned from the runtime group")
	return nil
}

// certByFingerprint returns the pin of a certificate, whatever its group.
func (c *Cluster) certByFingerprint(ctx context.Context, fp string) (Certificate, error) {
	return scanCert(c.st.DB().QueryRowContext(ctx, c.st.Rebind(`SELECT `+certColumns+` FROM dp_client_certificates WHERE fingerprint = ?`), fp))
}
