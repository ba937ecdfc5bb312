-- Control plane processes sharing the database (several on PostgreSQL, one on SQLite). Each
-- process adds its row at start, refreshes heartbeat_at every few seconds and removes it on a
-- clean stop; a row whose heartbeat is old belongs to a process that died. Timestamps are Unix
-- seconds.
CREATE TABLE control_plane_nodes (
    id              TEXT PRIMARY KEY,
    hostname        TEXT NOT NULL DEFAULT '',
    version         TEXT NOT NULL DEFAULT '',
    api_address     TEXT NOT NULL DEFAULT '',
    cluster_address TEXT NOT NULL DEFAULT '',
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL
);

-- The process holding each instance's link; '' for rows written before this migration. An
-- instance counts as connected only while that process's heartbeat is fresh.
ALTER TABLE cluster_nodes ADD COLUMN control_plane_id TEXT NOT NULL DEFAULT '';

-- When the instance's last link ended (Unix seconds); NULL while connected or when unknown.
ALTER TABLE cluster_nodes ADD COLUMN disconnected_at BIGINT;
