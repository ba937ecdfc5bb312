-- Group analytics: the per-minute aggregates runtime instances send (schema gantry.analytics.v1),
-- merged per group, and their hour and day rollups. Only entity ids, the status code, the node id
-- and numbers are stored. Buckets are Unix seconds (UTC) of the bucket's start: a multiple of 60
-- in analytics_minutes, of 3600 in analytics_hours, of 86400 in analytics_days.
--
-- The three levels have one shape, keyed for range scans by (group, time): one row per bucket,
-- node, service, route, consumer and status code (ids are '' for "none", 'other' for a runtime's
-- overflow series). requests counts requests; request_bytes and response_bytes are body bytes;
-- latency_sum is microseconds. The five histograms are telemetry.Histogram in its compact binary
-- form: latency, upstream and gateway latency in microseconds, request and response size in bytes.
CREATE TABLE analytics_minutes (
    group_id       TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    bucket         BIGINT NOT NULL,
    node_id        TEXT NOT NULL,
    service_id     TEXT NOT NULL,
    route_id       TEXT NOT NULL,
    consumer_id    TEXT NOT NULL,
    status         INTEGER NOT NULL,
    requests       BIGINT NOT NULL,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency_sum    BIGINT NOT NULL,
    latency        BYTEA NOT NULL,
    upstream       BYTEA NOT NULL,
    gateway        BYTEA NOT NULL,
    request_size   BYTEA NOT NULL,
    response_size  BYTEA NOT NULL,
    PRIMARY KEY (group_id, bucket, node_id, service_id, route_id, consumer_id, status)
);

CREATE TABLE analytics_hours (
    group_id       TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    bucket         BIGINT NOT NULL,
    node_id        TEXT NOT NULL,
    service_id     TEXT NOT NULL,
    route_id       TEXT NOT NULL,
    consumer_id    TEXT NOT NULL,
    status         INTEGER NOT NULL,
    requests       BIGINT NOT NULL,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency_sum    BIGINT NOT NULL,
    latency        BYTEA NOT NULL,
    upstream       BYTEA NOT NULL,
    gateway        BYTEA NOT NULL,
    request_size   BYTEA NOT NULL,
    response_size  BYTEA NOT NULL,
    PRIMARY KEY (group_id, bucket, node_id, service_id, route_id, consumer_id, status)
);

CREATE TABLE analytics_days (
    group_id       TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    bucket         BIGINT NOT NULL,
    node_id        TEXT NOT NULL,
    service_id     TEXT NOT NULL,
    route_id       TEXT NOT NULL,
    consumer_id    TEXT NOT NULL,
    status         INTEGER NOT NULL,
    requests       BIGINT NOT NULL,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency_sum    BIGINT NOT NULL,
    latency        BYTEA NOT NULL,
    upstream       BYTEA NOT NULL,
    gateway        BYTEA NOT NULL,
    request_size   BYTEA NOT NULL,
    response_size  BYTEA NOT NULL,
    PRIMARY KEY (group_id, bucket, node_id, service_id, route_id, consumer_id, status)
);

-- analytics_batches remembers the batches stored per node (seq is unique per node id and grows
-- across runtime restarts), so that a batch resent after a lost acknowledgement is recognised and
-- never counted twice. Rows are kept for a retention of their own (longer than the minutes').
CREATE TABLE analytics_batches (
    node_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, seq)
);
CREATE INDEX analytics_batches_received ON analytics_batches (received_at);

-- analytics_dirty lists the hours (level 'hour') and days (level 'day') whose rollup is missing or
-- stale: ingest marks the hours it wrote minutes into, an hour's rollup marks its day. The rollup
-- job recomputes each closed one and deletes its mark; queries read the finer level for buckets
-- still marked. version grows on every mark, so the job can tell a mark renewed while it worked.
CREATE TABLE analytics_dirty (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    level    TEXT NOT NULL CHECK (level IN ('hour', 'day')),
    bucket   BIGINT NOT NULL,
    version  BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (group_id, level, bucket)
);

-- Whether a node sends analytics (it negotiated the analytics capability): Kong data planes and
-- runtimes with analytics turned off do not, and the node catalogue says so.
ALTER TABLE cluster_nodes ADD COLUMN analytics BOOLEAN NOT NULL DEFAULT FALSE;
