-- Organizations, users, tokens and runtime groups. Every table that belongs to a runtime group
-- references runtime_groups(id) ON DELETE CASCADE, so deleting a group removes everything that
-- belongs to it in the same transaction.
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- bootstrap holds one row: the organization made on first start. Its primary key makes the first
-- start happen exactly once even when several processes start together.
CREATE TABLE bootstrap (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    org_id TEXT NOT NULL REFERENCES organizations(id)
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE runtime_groups (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    region       TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    cluster_type TEXT NOT NULL,
    auth_type    TEXT NOT NULL,
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    revision     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (org_id, region, name)
);
CREATE UNIQUE INDEX runtime_groups_one_default ON runtime_groups (org_id, region) WHERE is_default;
CREATE INDEX runtime_groups_created ON runtime_groups (org_id, region, created_at);

CREATE TABLE runtime_group_labels (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (group_id, key)
);
CREATE INDEX runtime_group_labels_kv ON runtime_group_labels (key, value);
