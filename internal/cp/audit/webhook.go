package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// The webhook. Each organization may stream its audit log to one HTTPS (or HTTP) endpoint.
// Delivery is driven from the audit_log table, not from memory: audit_webhooks keeps a cursor
// (the last entry the endpoint accepted), and the delivery job sends what follows it, in batches
// of at most WebhookOptions.BatchSize entries, as JSON lines (one entry per line, the shape of
// GET /v2/audit-logs' data items) in one POST. The body is signed with HMAC-SHA256 under the
// webhook's secret, in the header X-Gantry-Signature: sha256=<hex>. A 2xx answer moves the
// cursor; anything else leaves it and waits before trying again, doubling the wait after each
// failure from WebhookOptions.MinBackoff up to MaxBackoff (the failure count and the next
// attempt's time are stored, so the back-off survives restarts and moves with the job between
// control plane processes). Delivery is at least once: an endpoint that accepted a batch whose
// answer was lost gets it again. Entries pruned by retention before they were delivered are
// lost to the webhook. On PostgreSQL an entry is sent only once every transaction older than its
// own has ended (see sqlstore.Store.AuditAfter), so a long-running writing transaction on the
// database server delays deliveries until it ends; it never makes them skip an entry.

// SignatureHeader carries the signature of each delivery: "sha256=" and the hex HMAC-SHA256 of
// the body under the webhook's secret.
const SignatureHeader = "X-Gantry-Signature"

// MinSecretLength is the shortest webhook secret accepted.
const MinSecretLength = 16

// WebhookOptions configure deliveries.
type WebhookOptions struct {
	// Interval is how often the job looks for entries to deliver; zero takes 2 s.
	Interval time.Duration
	// BatchSize bounds the entries of one delivery; zero takes 100.
	BatchSize int
	// MaxBatches bounds the deliveries to one endpoint per round, so that one backlog does not
	// hold up the others; zero takes 10.
	MaxBatches int
	// MinBackoff and MaxBackoff bound the wait after failed deliveries; zero takes 1 s and
	// 5 min.
	MinBackoff, MaxBackoff time.Duration
	// Client sends the deliveries; nil takes a client with a 10 s timeout.
	Client *http.Client
}

func (o *WebhookOptions) defaults() {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.MaxBatches <= 0 {
		o.MaxBatches = 10
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
}

// webhook is one organization's row of audit_webhooks.
type webhook struct {
	OrgID           string
	Endpoint        string
	Enabled         bool
	Secret          string
	Cursor          sqlstore.AuditCursor
	Failures        int
	NextAttemptAt   int64 // Unix microseconds
	LastError       string
	LastDeliveredAt int64 // Unix microseconds
	UpdatedAt       int64
}

const webhookCols = `org_id, endpoint, enabled, secret, cursor_txid, cursor_seq, failures, next_attempt_at, last_error, last_delivered_at, updated_at`

func scanWebhook(sc interface{ Scan(...any) error }) (webhook, error) {
	var h webhook
	err := sc.Scan(&h.OrgID, &h.Endpoint, &h.Enabled, &h.Secret, &h.Cursor.TxID, &h.Cursor.Seq, &h.Failures, &h.NextAttemptAt, &h.LastError, &h.LastDeliveredAt, &h.UpdatedAt)
	return h, err
}

// webhookJSON is the webhook as GET and PATCH answer it: never the secret.
type webhookJSON struct {
	Endpoint  string `json:"endpoint"`
	Enabled   bool   `json:"enabled"`
	SecretSet bool   `json:"secret_set"`
	// Status reports deliveries.
	Status webhookStatus `json:"status"`
}

type webhookStatus struct {
	LastDeliveredAt *time.Time `json:"last_delivered_at"`
	Failures        int        `json:"failures"`
	LastError       string     `json:"last_error"`
	NextAttemptAt   *time.Time `json:"next_attempt_at"`
}

func micros(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := time.UnixMicro(v).UTC()
	return &t
}

func webhookView(h webhook) webhookJSON {
	v := webhookJSON{Endpoint: h.Endpoint, Enabled: h.Enabled, SecretSet: h.Secret != "",
		Status: webhookStatus{LastDeliveredAt: micros(h.LastDeliveredAt), Failures: h.Failures, LastError: h.LastError}}
	if h.Failures > 0 {
		v.Status.NextAttemptAt = micros(h.NextAttemptAt)
	}
	return v
}

// auditDoc is the webhook as its own audit entries show it (the secret is redacted there).
func (h webhook) auditDoc() map[string]any {
	return map[string]any{"endpoint": h.Endpoint, "enabled": h.Enabled, "secret": h.Secret}
}

// AuditWebhookEntity is the entity type of webhook changes in the audit log.
const AuditWebhookEntity = "audit_log_webhooks"

func (s *Service) loadWebhook(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, orgID, lock string) (webhook, error) {
	h, err := scanWebhook(q.QueryRowContext(ctx, s.st.Rebind(`SELECT `+webhookCols+` FROM audit_webhooks WHERE org_id = ?`+lock), orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return webhook{OrgID: orgID}, nil
	}
	return h, err
}

func (s *Service) getWebhook(w http.ResponseWriter, r *http.Request) {
	p, _ := api.PrincipalFrom(r.Context())
	h, err := s.loadWebhook(r.Context(), s.st.DB(), p.OrgID, "")
	if err != nil {
		api.WriteProblem(w, r, api.ServerProblem(w, r, s.log, err))
		return
	}
	api.WriteJSON(w, http.StatusOK, webhookView(h))
}

type patchWebhookRequest struct {
	Endpoint *string `json:"endpoint"`
	Enabled  *bool   `json:"enabled"`
	// Secret is write-only: it signs deliveries and is never answered.
	Secret *string `json:"secret"`
}

// patchWebhook changes the caller's organization's webhook. Enabling it (or pointing it at
// another endpoint) starts delivery with the entries recorded from then on.
func (s *Service) patchWebhook(w http.ResponseWriter, r *http.Request) {
	p, _ := api.PrincipalFrom(r.Context())
	var req patchWebhookRequest
	if err := api.DecodeJSON(w, r, &req); err != nil {
		var pr *api.Problem
		if errors.As(err, &pr) {
			api.WriteProblem(w, r, pr)
			return
		}
		api.WriteProblem(w, r, api.ServerProblem(w, r, s.log, err))
		return
	}
	var bad []api.InvalidParameter
	if req.Endpoint != nil && *req.Endpoint != "" {
		u, err := url.Parse(*req.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad = append(bad, api.InvalidParameter{Field: "endpoint", Rule: "format", Reason: "must be an absolute http:// or https:// URL", Source: "body"})
		}
	}
	if req.Secret != nil && len(*req.Secret) < MinSecretLength {
		bad = append(bad, api.InvalidParameter{Field: "secret", Rule: "min_length", Reason: fmt.Sprintf("must be at least %d characters", MinSecretLength), Source: "body"})
	}
	if len(bad) > 0 {
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "The audit log webhook is not valid.", InvalidParameters: bad})
		return
	}
	var after webhook
	err := s.st.InTx(r.Context(), func(tx *sql.Tx) error {
		before, err := s.loadWebhook(r.Context(), tx, p.OrgID, s.st.ForUpdate())
		if err != nil {
			return err
		}
		after = before
		if req.Endpoint != nil {
			after.Endpoint = *req.Endpoint
		}
		if req.Enabled != nil {
			after.Enabled = *req.Enabled
		}
		if req.Secret != nil {
			after.Secret = *req.Secret
		}
		if after.Enabled && (after.Endpoint == "" || after.Secret == "") {
			return &api.Problem{Status: http.StatusBadRequest, Detail: "An enabled webhook needs an endpoint and a secret.", InvalidParameters: []api.InvalidParameter{
				{Field: "enabled", Rule: "dependency", Reason: "set endpoint and secret to enable the webhook", Source: "body"}}}
		}
		if after.Enabled && (!before.Enabled || after.Endpoint != before.Endpoint) {
			// A new destination starts with what is recorded from now on, not the history.
			if after.Cursor, err = s.st.AuditTail(r.Context(), p.OrgID); err != nil {
				return err
			}
			after.Failures, after.NextAttemptAt, after.LastError = 0, 0, ""
		}
		after.UpdatedAt = s.now().UnixMicro()
		_, err = tx.ExecContext(r.Context(), s.st.Rebind(`INSERT INTO audit_webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id) DO UPDATE SET endpoint = excluded.endpoint, enabled = excluded.enabled, secret = excluded.secret,
			cursor_txid = excluded.cursor_txid, cursor_seq = excluded.cursor_seq, failures = excluded.failures,
			next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, updated_at = excluded.updated_at`),
			p.OrgID, after.Endpoint, after.Enabled, after.Secret, after.Cursor.TxID, after.Cursor.Seq, after.Failures, after.NextAttemptAt,
			after.LastError, after.LastDeliveredAt, after.UpdatedAt)
		if err != nil {
			return err
		}
		return s.st.RecordAudit(r.Context(), tx, store.AuditChange{Action: store.ActionUpdate, EntityType: AuditWebhookEntity,
			EntityID: p.OrgID, Before: before.auditDoc(), After: after.auditDoc(), Status: http.StatusOK})
	})
	var pr *api.Problem
	switch {
	case errors.As(err, &pr):
		api.WriteProblem(w, r, pr)
	case err != nil:
		api.WriteProblem(w, r, api.ServerProblem(w, r, s.log, err))
	default:
		api.WriteJSON(w, http.StatusOK, webhookView(after))
	}
}

// RunWebhooks delivers entries to the organizations' webhooks every WebhookOptions.Interval until
// ctx ends. With several control plane processes on one database, one of them delivers at a
// time (the store's Exclusive job "audit-webhook").
func (s *Service) RunWebhooks(ctx context.Context) {
	t := time.NewTicker(s.opts.Webhook.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.st.Exclusive(ctx, "audit-webhook", func(ctx context.Context, _ *sql.Conn) error { return s.DeliverOnce(ctx) }); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "audit log webhook", "err", err)
		}
	}
}

// DeliverOnce runs one round of deliveries: for each enabled webhook whose back-off has passed,
// up to MaxBatches batches of the entries after its cursor.
func (s *Service) DeliverOnce(ctx context.Context) error {
	due, err := s.dueWebhooks(ctx)
	if err != nil {
		return err
	}
	for _, h := range due {
		for range s.opts.Webhook.MaxBatches {
			more, err := s.deliverBatch(ctx, h)
			if err != nil {
				return err
			}
			if !more {
				break
			}
			// The row moved on; read it again for the next batch.
			if h, err = s.loadWebhook(ctx, s.st.DB(), h.OrgID, ""); err != nil {
				return err
			}
			if !h.Enabled {
				break
			}
		}
	}
	return nil
}

// dueWebhooks returns the enabled webhooks whose back-off has passed.
func (s *Service) dueWebhooks(ctx context.Context) ([]webhook, error) {
	rows, err := s.st.DB().QueryContext(ctx, s.st.Rebind(`SELECT `+webhookCols+` FROM audit_webhooks WHERE enabled AND next_attempt_at <= ? ORDER BY org_id`), s.now().UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var due []webhook
	for rows.Next() {
		h, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		due = append(due, h)
	}
	return due, rows.Err()
}

// deliverBatch sends one batch to h and records the outcome; more reports whether a full batch
// was accepted (so more may follow). A failed delivery is not an error of the job: it is stored
// and retried after the back-off.
func (s *Service) deliverBatch(ctx context.Context, h webhook) (more bool, err error) {
	entries, cursors, err := s.st.AuditAfter(ctx, h.OrgID, h.Cursor, s.opts.Webhook.BatchSize)
	if err != nil || len(entries) == 0 {
		return false, err
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range entries {
		if err := enc.Encode(view(e)); err != nil {
			return false, err
		}
	}
	sendErr := s.send(ctx, h, body.Bytes())
	if ctx.Err() != nil {
		// Stopping: the batch is sent again next time, and the endpoint is not to blame.
		return false, ctx.Err()
	}
	now := s.now()
	if sendErr != nil {
		failures := h.Failures + 1
		wait := s.backoff(failures)
		s.log.WarnContext(ctx, "audit log webhook delivery failed; retrying later", "org", h.OrgID, "endpoint", h.Endpoint,
			"failures", failures, "retry_in", wait, "err", sendErr)
		_, err := s.st.DB().ExecContext(ctx, s.st.Rebind(`UPDATE audit_webhooks SET failures = ?, next_attempt_at = ?, last_error = ?
			WHERE org_id = ? AND cursor_txid = ? AND cursor_seq = ? AND endpoint = ?`),
			failures, now.Add(wait).UnixMicro(), truncate(sendErr.Error(), 500), h.OrgID, h.Cursor.TxID, h.Cursor.Seq, h.Endpoint)
		return false, err
	}
	last := cursors[len(cursors)-1]
	// The cursor moves only from where this batch started, and only for the endpoint it went
	// to: a concurrent change of the webhook wins.
	_, err = s.st.DB().ExecContext(ctx, s.st.Rebind(`UPDATE audit_webhooks SET cursor_txid = ?, cursor_seq = ?, failures = 0, next_attempt_at = 0,
		last_error = '', last_delivered_at = ? WHERE org_id = ? AND cursor_txid = ? AND cursor_seq = ? AND endpoint = ?`),
		last.TxID, last.Seq, now.UnixMicro(), h.OrgID, h.Cursor.TxID, h.Cursor.Seq, h.Endpoint)
	return err == nil && len(entries) == s.opts.Webhook.BatchSize, err
}

// backoff is the wait after the n-th failure in a row: MinBackoff doubled n-1 times, at most
// MaxBackoff.
func (s *Service) backoff(n int) time.Duration {
	d := s.opts.Webhook.MinBackoff
	for i := 1; i < n && d < s.opts.Webhook.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.opts.Webhook.MaxBackoff)
}

// Sign returns the X-Gantry-Signature value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature (an X-Gantry-Signature value) signs body under secret, in
// constant time.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

func (s *Service) send(ctx context.Context, h webhook, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "gantry-audit-webhook")
	req.Header.Set(SignatureHeader, Sign(h.Secret, body))
	res, err := s.opts.Webhook.Client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("the endpoint answered %s", res.Status)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
