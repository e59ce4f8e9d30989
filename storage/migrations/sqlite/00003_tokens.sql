-- +goose Up
-- A refresh family is one login: every refresh token rotated from the first
-- one belongs to it, and revoking it ends them all.
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope         TEXT NOT NULL DEFAULT '',
    audience      TEXT NOT NULL DEFAULT '',
    auth_time     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT NOT NULL DEFAULT 0,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

-- Refresh tokens are stored only as SHA-256 hashes. A used token keeps the
-- hash of its successor and the random salt the successor was derived from
-- (with the used token itself), so a retry within the reuse window gets the
-- same successor back while the database alone cannot reproduce it.
CREATE TABLE refresh_tokens (
    hash            BLOB PRIMARY KEY,
    family_id       TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    scope           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    used_at         BIGINT NOT NULL DEFAULT 0,
    successor_hash  BLOB,
    successor_salt  BLOB
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Revoked access tokens, by jti, until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);

-- +goose Down
DROP TABLE revoked_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
