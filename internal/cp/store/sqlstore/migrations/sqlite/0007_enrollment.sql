-- Enrollment tokens: a runtime instance presents one (once, or up to max_uses times) with a
-- certificate signing request and gets a client certificate for the token's group, so no private
-- key is ever pasted. Only the SHA-256 of the token's secret is stored. Timestamps are Unix
-- seconds.
CREATE TABLE enrollment_tokens (
    id          TEXT PRIMARY KEY,
    group_id    TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    hint        TEXT NOT NULL DEFAULT '',
    labels      TEXT NOT NULL DEFAULT '{}',
    max_uses    INTEGER NOT NULL,
    uses        INTEGER NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX enrollment_tokens_group ON enrollment_tokens (group_id, created_at);

-- A certificate issued by enrollment remembers its token and the token's labels, which the
-- instances presenting it carry in the catalogue.
ALTER TABLE dp_client_certificates ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE dp_client_certificates ADD COLUMN enrollment_token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE cluster_nodes ADD COLUMN enrollment_token_id TEXT NOT NULL DEFAULT '';
