-- Identities, teams, role assignments and console sessions. Users and system accounts share the
-- users table (kind tells them apart) so that tokens, team membership and role assignments refer
-- to one kind of row. Timestamps are Unix microseconds, as in 0001.

-- email is stored lowercased and is unique per organization among users; system accounts have
-- none. password_hash is an argon2id PHC string, '' when the identity cannot log in with a
-- password (system accounts, or a user who has not set one).
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_email ON users (org_id, email) WHERE email <> '';

-- predefined is '' for teams users made, else the fixed duty of a team created at bootstrap
-- ('organization_admin', 'runtime_admin'); predefined teams cannot be deleted or renamed.
CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    predefined  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Members of a team: users and system accounts alike.
CREATE TABLE team_members (
    team_id    TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- A role held by a user, a system account (subject_type 'user' for both: they share the users
-- table) or a team, on one runtime group (entity_id) or all of them ('*'), in one region or all
-- ('*'). Rows naming a group are removed with it; rows of a subject are removed with it.
CREATE TABLE role_assignments (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    subject_type     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    role_name        TEXT NOT NULL,
    entity_type_name TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    entity_region    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (subject_type, subject_id, role_name, entity_type_name, entity_id, entity_region)
);
CREATE INDEX role_assignments_subject ON role_assignments (subject_id);
CREATE INDEX role_assignments_entity ON role_assignments (entity_id);

-- Console sessions. id is the SHA-256 of the cookie's secret, never the secret itself. A session
-- ends at expires_at (absolute) or when last_seen_at is older than the idle limit the server is
-- configured with, whichever comes first; logout deletes the row.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token     TEXT NOT NULL,
    source_address TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
