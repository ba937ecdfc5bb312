-- The cluster side of the control plane: its certificate authority, the client certificates
-- pinned to each runtime group, and the catalogue of runtime instances. Timestamps are Unix
-- seconds.

-- cluster_ca holds one row: the CA that signs the cluster listener's certificate and the client
-- certificates generated for runtime groups. The private key is stored as PEM, unencrypted, for
-- now: whoever can read the database can issue certificates. Encrypting it with a key kept
-- outside the database is planned.
CREATE TABLE cluster_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A client certificate belongs to exactly one group (fingerprint is unique); deleting the group
-- unpins it.
CREATE TABLE dp_client_certificates (
    id          TEXT PRIMARY KEY,
    group_id    TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    cert_pem    TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL DEFAULT '',
    generated   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX dp_client_certificates_group ON dp_client_certificates (group_id, created_at);

CREATE TABLE cluster_nodes (
    group_id        TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    hostname        TEXT NOT NULL DEFAULT '',
    version         TEXT NOT NULL DEFAULT '',
    type            TEXT NOT NULL DEFAULT '',
    ip              TEXT NOT NULL DEFAULT '',
    labels          TEXT NOT NULL DEFAULT '{}',
    connected       BOOLEAN NOT NULL DEFAULT FALSE,
    connected_since BIGINT,
    last_ping       BIGINT NOT NULL,
    config_hash     TEXT NOT NULL DEFAULT '',
    revision        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    error_hash      TEXT NOT NULL DEFAULT '',
    cert_expiry     BIGINT,
    sync_status     TEXT NOT NULL DEFAULT 'unknown',
    compatibility   TEXT NOT NULL DEFAULT '[]',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (group_id, id)
);
CREATE INDEX cluster_nodes_last_ping ON cluster_nodes (last_ping);
