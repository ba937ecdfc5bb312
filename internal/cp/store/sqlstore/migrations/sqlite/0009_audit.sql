-- The audit log: one row per write (appended in the write's own transaction) and per login,
-- logout or refused request. Rows outlive the runtime groups, users and tokens they name, so
-- group_id, actor_id and token_id are not foreign keys. Before and after hold the entity as JSON
-- with its secrets already redacted. Timestamps are Unix microseconds, as in 0001.
--
-- seq orders entries (newest first in lists). txid is the writing transaction's id: the webhook
-- delivers in (txid, seq) order and only up to the oldest transaction still running, so that an
-- entry committed late by a long transaction is not skipped by a cursor that already passed its
-- seq. On SQLite writers are serialized, txid stays 0 and seq alone orders commits.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    txid        BIGINT NOT NULL DEFAULT 0,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    actor_type  TEXT NOT NULL DEFAULT '',
    actor_id    TEXT NOT NULL DEFAULT '',
    actor_name  TEXT NOT NULL DEFAULT '',
    auth_method TEXT NOT NULL DEFAULT '',
    token_id    TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    group_id    TEXT NOT NULL DEFAULT '',
    entity_type TEXT NOT NULL DEFAULT '',
    entity_id   TEXT NOT NULL DEFAULT '',
    entity_name TEXT NOT NULL DEFAULT '',
    method      TEXT NOT NULL DEFAULT '',
    path        TEXT NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 0,
    request_id  TEXT NOT NULL DEFAULT '',
    source_addr TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    before_doc  TEXT,
    after_doc   TEXT
);
-- One index per list filter, each ending in seq for the newest-first order and the cursor.
CREATE INDEX audit_log_org ON audit_log (org_id, seq);
CREATE INDEX audit_log_actor ON audit_log (org_id, actor_id, seq);
CREATE INDEX audit_log_group ON audit_log (org_id, group_id, seq);
CREATE INDEX audit_log_entity_type ON audit_log (org_id, entity_type, seq);
CREATE INDEX audit_log_action ON audit_log (org_id, action, seq);
-- The time window filter and retention.
CREATE INDEX audit_log_created ON audit_log (created_at);
-- The webhook's delivery cursor.
CREATE INDEX audit_log_delivery ON audit_log (org_id, txid, seq);

-- Each organization's audit log webhook. secret signs deliveries (HMAC-SHA256) and is never
-- returned by the API. (cursor_txid, cursor_seq) is the last entry delivered; failures,
-- next_attempt_at and last_error drive and report the exponential back-off after failed
-- deliveries.
CREATE TABLE audit_webhooks (
    org_id            TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    endpoint          TEXT NOT NULL DEFAULT '',
    enabled           BOOLEAN NOT NULL DEFAULT FALSE,
    secret            TEXT NOT NULL DEFAULT '',
    cursor_txid       BIGINT NOT NULL DEFAULT 0,
    cursor_seq        BIGINT NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT NOT NULL DEFAULT '',
    last_delivered_at BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL
);
