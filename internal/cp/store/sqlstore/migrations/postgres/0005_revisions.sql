-- Configuration history. Every committed change of a runtime group's configuration is one row of
-- revisions (number = the group's revision after the change), written in the same transaction as
-- the change, with one row per changed entity in revision_changes: the document before and after
-- (deltas, not full copies). The configuration of revision n is the current configuration with the
-- changes of the revisions after n undone, newest first; so history is pruned only from the oldest
-- end. Timestamps are Unix seconds.
CREATE TABLE revisions (
    group_id       TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    number         BIGINT NOT NULL,
    -- hash is the configuration hash when it was known at commit; NULL otherwise.
    hash           TEXT,
    created_at     BIGINT NOT NULL,
    -- The authenticated caller that made the change; NULL for internal writers.
    actor_user_id  TEXT,
    actor_token_id TEXT,
    -- source is admin-api, rollback or import.
    source         TEXT NOT NULL,
    -- summary is JSON: per entity type, the created, updated and deleted counts.
    summary        TEXT NOT NULL,
    PRIMARY KEY (group_id, number)
);
CREATE INDEX revisions_created ON revisions (group_id, created_at);

-- One changed entity of a revision. Consumer group memberships are entity type
-- consumer_group_consumers with id "<consumer group id>:<consumer id>". Entities a delete removed
-- through cascading foreign keys (a consumer's credentials, a certificate's SNIs, …) are rows too.
CREATE TABLE revision_changes (
    group_id    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    seq         INTEGER NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    -- entity_key is the endpoint key (name, username, …) when the entity has one.
    entity_key  TEXT,
    op          TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    before_doc  TEXT,
    after_doc   TEXT,
    PRIMARY KEY (group_id, revision, seq),
    FOREIGN KEY (group_id, revision) REFERENCES revisions (group_id, number) ON DELETE CASCADE
);
