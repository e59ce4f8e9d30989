-- +goose Up
-- Browser login sessions (issue 15, idp/login). The cookie holds a random
-- value; id is its SHA-256 in hex, so a database copy opens no session.
CREATE TABLE login_sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);
CREATE INDEX login_sessions_expires ON login_sessions (expires_at);

-- Remembered consents: the scopes a user granted a client (a union).
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL DEFAULT '',
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- +goose Down
DROP TABLE consents;
DROP TABLE login_sessions;
