package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/google/uuid"
)

// Enrollment: a runtime instance given a one-time token makes its own key, sends a certificate
// signing request with the token to the cluster listener (wire.EnrollPath) and gets a client
// certificate for the token's group, pinned like a generated one. The token carries the SHA-256
// of the cluster CA, so the instance checks the listener before it sends anything, with no CA
// file (as kubeadm join's discovery hash). The private key never leaves the instance.

// Bounds of enrollment tokens.
const (
	// DefaultEnrollmentTTL is a token's lifetime when the request names none.
	DefaultEnrollmentTTL = time.Hour
	// MaxEnrollmentTTL bounds a token's lifetime.
	MaxEnrollmentTTL = 30 * 24 * time.Hour
	// MaxEnrollmentUses bounds how many instances one token may enroll.
	MaxEnrollmentUses = 10000
	// maxCSRBytes bounds an enrollment request's body.
	maxCSRBytes = 64 << 10
)

// EnrollmentToken is a token as the API shows it; the secret is shown only when it is created.
type EnrollmentToken struct {
	ID      string            `json:"id"`
	GroupID string            `json:"-"`
	Hint    string            `json:"hint"`
	Labels  map[string]string `json:"labels"`
	// MaxUses is how many instances it may enroll, Uses how many it did.
	MaxUses int `json:"max_uses"`
	Uses    int `json:"uses"`
	// ExpiresAt, RevokedAt (null while not revoked) and CreatedAt are Unix seconds.
	ExpiresAt int64  `json:"expires_at"`
	RevokedAt *int64 `json:"revoked_at"`
	CreatedAt int64  `json:"created_at"`
	// Status is active, used_up, expired or revoked.
	Status string `json:"status"`
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newEnrollmentSecret returns a token: gent_<32 base32 characters of randomness>.<hex SHA-256 of
// the CA certificate>.
func (c *Cluster) newEnrollmentSecret() (token, secret string) {
	var b [20]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	secret = wire.EnrollmentTokenPrefix + tokenEncoding.EncodeToString(b[:])
	return secret + "." + Fingerprint(c.ca.cert), secret
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (t *EnrollmentToken) derive(now int64) {
	switch {
	case t.RevokedAt != nil:
		t.Status = "revoked"
	case now >= t.ExpiresAt:
		t.Status = "expired"
	case t.Uses >= t.MaxUses:
		t.Status = "used_up"
	default:
		t.Status = "active"
	}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
}

// CreateEnrollmentToken makes a token for the group and returns it with its secret (the only time
// the secret is available).
func (c *Cluster) CreateEnrollmentToken(ctx context.Context, groupID string, ttl time.Duration, maxUses int, labels map[string]string) (EnrollmentToken, string, error) {
	token, secret := c.newEnrollmentSecret()
	now := c.now()
	labelsJSON, _ := json.Marshal(labels)
	t := EnrollmentToken{ID: uuid.NewString(), GroupID: groupID, Hint: secret[:len(wire.EnrollmentTokenPrefix)+4] + "…", Labels: labels,
		MaxUses: maxUses, ExpiresAt: now.Add(ttl).Unix(), CreatedAt: now.Unix()}
	t.derive(now.Unix())
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, c.st.Rebind(`INSERT INTO enrollment_tokens (id, group_id, token_hash, hint, labels, max_uses, uses, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`), t.ID, groupID, hashSecret(secret), t.Hint, string(labelsJSON), maxUses, t.ExpiresAt, t.CreatedAt)
		if err != nil {
			return err
		}
		return c.st.RecordAudit(ctx, tx, store.AuditChange{Action: sqlstore.AuditTokenCreate, GroupID: groupID, EntityType: AuditEnrollmentTokens,
			EntityID: t.ID, EntityName: t.Hint, After: t})
	})
	if err != nil {
		return EnrollmentToken{}, "", fmt.Errorf("create enrollment token: %w", err)
	}
	return t, token, nil
}

const enrollmentColumns = `id, group_id, hint, labels, max_uses, uses, expires_at, revoked_at, created_at`

func scanEnrollment(row interface{ Scan(...any) error }, now int64) (EnrollmentToken, error) {
	var t EnrollmentToken
	var labels string
	var revoked sql.NullInt64
	err := row.Scan(&t.ID, &t.GroupID, &t.Hint, &labels, &t.MaxUses, &t.Uses, &t.ExpiresAt, &revoked, &t.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("enrollment token: %w", store.ErrNotFound)
	}
	if err != nil {
		return t, err
	}
	if revoked.Valid {
		t.RevokedAt = &revoked.Int64
	}
	if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
		return t, fmt.Errorf("enrollment token %s labels: %w", t.ID, err)
	}
	t.derive(now)
	return t, nil
}

// EnrollmentTokens lists the group's tokens, newest first.
func (c *Cluster) EnrollmentTokens(ctx context.Context, groupID string) ([]EnrollmentToken, error) {
	rows, err := c.st.DB().QueryContext(ctx, c.st.Rebind(`SELECT `+enrollmentColumns+` FROM enrollment_tokens WHERE group_id = ? ORDER BY created_at DESC, id`), groupID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []EnrollmentToken{}
	now := c.now().Unix()
	for rows.Next() {
		t, err := scanEnrollment(rows, now)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeEnrollmentToken revokes a token; instances it already enrolled keep their certificates
// (unpin those to refuse them).
func (c *Cluster) RevokeEnrollmentToken(ctx context.Context, groupID, id string) error {
	now := c.now().Unix()
	return c.st.InTx(ctx, func(tx *sql.Tx) error {
		before, err := scanEnrollment(tx.QueryRowContext(ctx, c.st.Rebind(`SELECT `+enrollmentColumns+` FROM enrollment_tokens WHERE group_id = ? AND id = ?`+c.st.ForUpdate()), groupID, id), now)
		if err != nil {
			return fmt.Errorf("enrollment token %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, c.st.Rebind(`UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE group_id = ? AND id = ?`), now, groupID, id); err != nil {
			return err
		}
		after := before
		if after.RevokedAt == nil {
			after.RevokedAt = &now
		}
		after.derive(now)
		return c.st.RecordAudit(ctx, tx, store.AuditChange{Action: sqlstore.AuditTokenRevoke, GroupID: groupID, EntityType: AuditEnrollmentTokens,
			EntityID: id, EntityName: before.Hint, Before: before, After: after})
	})
}

// EnrollError is a refused enrollment: its message is what the instance is told.
type EnrollError struct {
	Status  int
	Message string
}

func (e *EnrollError) Error() string { return e.Message }

// Enroll checks the token, counts one use and signs csrPEM's public key for the token's group,
// pinning the certificate with the token's labels, all in one transaction. It returns the
// certificate, the CA and the group.
func (c *Cluster) Enroll(ctx context.Context, token, csrPEM, hostname string) (certPEM, caPEM, groupID string, err error) {
	secret, _, _ := strings.Cut(token, ".")
	if !strings.HasPrefix(secret, wire.EnrollmentTokenPrefix) {
		return "", "", "", &EnrollError{http.StatusUnauthorized, "this is not an enrollment token (they start with " + wire.EnrollmentTokenPrefix + "); create one with POST /v2/runtime-groups/{id}/enrollment-tokens"}
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return "", "", "", err
	}
	now := c.now()
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		t, err := scanEnrollment(tx.QueryRowContext(ctx, c.st.Rebind(`SELECT `+enrollmentColumns+` FROM enrollment_tokens WHERE token_hash = ?`+c.st.ForUpdate()),
			hashSecret(secret)), now.Unix())
		if errors.Is(err, store.ErrNotFound) {
			return &EnrollError{http.StatusUnauthorized, "the enrollment token is not known to this control plane: check it was copied whole, or create a new one"}
		}
		if err != nil {
			return err
		}
		switch t.Status {
		case "revoked":
			return &EnrollError{http.StatusUnauthorized, "the enrollment token was revoked: create a new one"}
		case "expired":
			return &EnrollError{http.StatusUnauthorized, "the enrollment token expired at " + time.Unix(t.ExpiresAt, 0).UTC().Format(time.RFC3339) + ": create a new one"}
		case "used_up":
			return &EnrollError{http.StatusUnauthorized, fmt.Sprintf("the enrollment token was already used (%d of %d): create a new one", t.Uses, t.MaxUses)}
		}
		tmpl, err := clientTemplate(t.GroupID, now, c.opts.EnrolledCertValidity)
		if err != nil {
			return err
		}
		cert, leaf, err := c.ca.sign(tmpl, csr.PublicKey)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, c.st.Rebind(`UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?`), t.ID); err != nil {
			return err
		}
		title := "enrolled"
		if hostname != "" {
			title = "enrolled by " + truncate(hostname)
		}
		pin := enrolledPin(t.GroupID, title, cert, leaf, now, t.Labels, t.ID)
		if err := c.insertPin(ctx, tx, pin); err != nil {
			return err
		}
		if err := c.recordInstancePin(ctx, tx, AuditActorEnrollmentToken, t.ID, t.Hint, AuditEnroll, pin); err != nil {
			return err
		}
		certPEM, groupID = string(cert), t.GroupID
		return nil
	})
	if err != nil {
		return "", "", "", err
	}
	return certPEM, string(c.ca.certPEM), groupID, nil
}

// parseCSR decodes and checks a certificate request; a bad one is an *EnrollError (400).
func parseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, &EnrollError{http.StatusBadRequest, "csr must be a PEM CERTIFICATE REQUEST"}
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, &EnrollError{http.StatusBadRequest, "csr is not a valid certificate request: " + err.Error()}
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, &EnrollError{http.StatusBadRequest, err.Error()}
	}
	return csr, nil
}

// enrolledPin is the pin of a certificate issued by enrollment or renewal.
func enrolledPin(groupID, title string, certPEM []byte, leaf *x509.Certificate, now time.Time, labels map[string]string, tokenID string) Certificate {
	return Certificate{ID: uuid.NewString(), GroupID: groupID, Cert: string(certPEM), Title: title, Fingerprint: Fingerprint(leaf),
		Generated: true, CreatedAt: now.Unix(), UpdatedAt: now.Unix(), ExpiresAt: leaf.NotAfter.Unix(), Labels: labels, EnrollmentTokenID: tokenID}
}

// checkPublicKey accepts the key types and sizes the cluster listener's TLS accepts.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return errors.New("csr: an ECDSA key must be P-256 or larger")
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return errors.New("csr: an RSA key must have at least 2048 bits")
		}
	default:
		return fmt.Errorf("csr: unsupported public key type %T", pub)
	}
	return nil
}

// serveEnroll handles POST wire.EnrollPath on the cluster listener: the only request accepted
// without a client certificate.
func (c *Cluster) serveEnroll(w http.ResponseWriter, r *http.Request) {
	var req wire.EnrollRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxCSRBytes)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeMessage(w, http.StatusBadRequest, "the enrollment request must be JSON: {\"token\": …, \"csr\": …}")
		return
	}
	cert, ca, group, err := c.Enroll(withInstanceAudit(r), req.Token, req.CSR, req.Hostname)
	var ee *EnrollError
	switch {
	case errors.As(err, &ee):
		c.log.WarnContext(r.Context(), "refused enrollment", "remote", r.RemoteAddr, "hostname", truncate(req.Hostname), "reason", ee.Message)
		writeMessage(w, ee.Status, ee.Message)
		return
	case err != nil:
		c.log.ErrorContext(r.Context(), "enrollment failed", "remote", r.RemoteAddr, "err", err)
		status := http.StatusInternalServerError
		if store.Unavailable(err) {
			status = http.StatusServiceUnavailable
		}
		writeMessage(w, status, "the control plane could not enroll this instance; try again")
		return
	}
	c.log.InfoContext(r.Context(), "enrolled runtime instance", "group", group, "remote", r.RemoteAddr, "hostname", truncate(req.Hostname))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(wire.EnrollResponse{Cert: cert, CACert: ca, GroupID: group})
}

// Enrollment token API handlers.

func (h *handlers) createEnrollmentToken(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	var body struct {
		TTL     *int64            `json:"ttl"`
		MaxUses *int              `json:"max_uses"`
		Labels  map[string]string `json:"labels"`
	}
	if r.ContentLength != 0 {
		if err := api.DecodeJSON(w, r, &body); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	ttl, uses := DefaultEnrollmentTTL, 1
	var bad []api.InvalidParameter
	if body.TTL != nil {
		ttl = time.Duration(*body.TTL) * time.Second
		if *body.TTL < 60 || ttl > MaxEnrollmentTTL {
			bad = append(bad, api.InvalidParameter{Field: "ttl", Rule: "range", Reason: fmt.Sprintf("must be from 60 to %d seconds", int64(MaxEnrollmentTTL/time.Second)), Source: "body"})
		}
	}
	if body.MaxUses != nil {
		uses = *body.MaxUses
		if uses < 1 || uses > MaxEnrollmentUses {
			bad = append(bad, api.InvalidParameter{Field: "max_uses", Rule: "range", Reason: fmt.Sprintf("must be from 1 to %d", MaxEnrollmentUses), Source: "body"})
		}
	}
	for k, v := range body.Labels {
		if k == "" || len(k) > 63 || len(v) > 63 {
			bad = append(bad, api.InvalidParameter{Field: "labels." + k, Rule: "length", Reason: "keys must be 1 to 63 characters and values at most 63", Source: "body"})
		}
	}
	if len(body.Labels) > 50 {
		bad = append(bad, api.InvalidParameter{Field: "labels", Rule: "max_items", Reason: "must have at most 50 labels", Source: "body"})
	}
	if len(bad) > 0 {
		h.fail(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "The enrollment token request is not valid.", InvalidParameters: bad})
		return
	}
	t, token, err := h.c.CreateEnrollmentToken(r.Context(), g.ID, ttl, uses, body.Labels)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"item": t, "token": token})
}

func (h *handlers) listEnrollmentTokens(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	ts, err := h.c.EnrollmentTokens(r.Context(), g.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": ts})
}

func (h *handlers) revokeEnrollmentToken(w http.ResponseWriter, r *http.Request, g store.RuntimeGroup) {
	if err := h.c.RevokeEnrollmentToken(r.Context(), g.ID, r.PathValue("tokenId")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Renew signs csrPEM's public key for the group of the pinned certificate fp that authenticated
// the request (a renewal before it expires), pinning the new certificate with the old one's labels
// and enrollment token. The old pin stays valid until it expires.
func (c *Cluster) Renew(ctx context.Context, id peerIdentity, csrPEM string) (certPEM, caPEM string, err error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return "", "", err
	}
	old, err := c.certByFingerprint(ctx, id.fingerprint)
	if err != nil {
		return "", "", err
	}
	now := c.now()
	tmpl, err := clientTemplate(old.GroupID, now, c.opts.EnrolledCertValidity)
	if err != nil {
		return "", "", err
	}
	cert, leaf, err := c.ca.sign(tmpl, csr.PublicKey)
	if err != nil {
		return "", "", err
	}
	pin := enrolledPin(old.GroupID, "renewed: "+truncate(old.Title), cert, leaf, now, old.Labels, old.EnrollmentTokenID)
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.insertPin(ctx, tx, pin); err != nil {
			return err
		}
		return c.recordInstancePin(ctx, tx, AuditActorCertificate, old.ID, old.Title, AuditRenew, pin)
	})
	if err != nil {
		return "", "", err
	}
	return string(cert), string(c.ca.certPEM), nil
}

// Audit of the certificates instances obtain themselves: the actor is the credential they
// present (an enrollment token, or the pinned certificate being renewed), not a user.
const (
	AuditEnroll = "enroll"
	AuditRenew  = "renew"

	AuditActorEnrollmentToken = "enrollment_token"
	AuditActorCertificate     = "dp_client_certificate"
)

// recordInstancePin records, in tx, a certificate pinned for an instance by its own request:
// the cluster listener attached the request's pending entry (source address, user agent) to
// ctx; the organization is the group's.
func (c *Cluster) recordInstancePin(ctx context.Context, tx *sql.Tx, actorType, actorID, actorName, action string, pin Certificate) error {
	p := store.PendingAudit(ctx)
	if p == nil {
		return nil
	}
	if err := tx.QueryRowContext(ctx, c.st.Rebind(`SELECT org_id FROM runtime_groups WHERE id = ?`), pin.GroupID).Scan(&p.OrgID); err != nil {
		return err
	}
	p.ActorType, p.ActorID, p.ActorName = actorType, actorID, actorName
	return c.st.RecordAudit(ctx, tx, store.AuditChange{Action: action, GroupID: pin.GroupID, EntityType: AuditCertificates,
		EntityID: pin.ID, EntityName: pin.Title, After: pin, Status: http.StatusOK})
}

// withInstanceAudit attaches to r's context the pending audit entry of an instance's own
// request (enrollment, renewal).
func withInstanceAudit(r *http.Request) context.Context {
	e := api.RequestAudit(r)
	return store.WithPendingAudit(r.Context(), &e)
}

// serveRenew handles POST wire.RenewPath from an instance authenticated by its pinned certificate.
func (c *Cluster) serveRenew(w http.ResponseWriter, r *http.Request, id peerIdentity) {
	var req wire.EnrollRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxCSRBytes)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeMessage(w, http.StatusBadRequest, "the renewal request must be JSON: {\"csr\": …}")
		return
	}
	cert, ca, err := c.Renew(withInstanceAudit(r), id, req.CSR)
	var ee *EnrollError
	switch {
	case errors.As(err, &ee):
		writeMessage(w, ee.Status, ee.Message)
		return
	case err != nil:
		c.log.ErrorContext(r.Context(), "certificate renewal failed", "remote", r.RemoteAddr, "err", err)
		writeMessage(w, http.StatusServiceUnavailable, "the control plane could not renew the certificate; try again")
		return
	}
	c.log.InfoContext(r.Context(), "renewed runtime certificate", "group", id.groupID, "remote", r.RemoteAddr, "hostname", truncate(req.Hostname))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(wire.EnrollResponse{Cert: cert, CACert: ca, GroupID: id.groupID})
}
