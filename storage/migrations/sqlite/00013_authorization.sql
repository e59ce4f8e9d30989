-- +goose Up
-- A pending authorization request (GET /oauth2/authorize) while the browser
-- logs in and consents: 10 minutes at most, deleted when its code is issued.
CREATE TABLE auth_requests (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL DEFAULT '',
    audience       TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL DEFAULT '',
    nonce          TEXT NOT NULL DEFAULT '',
    code_challenge TEXT NOT NULL,
    response_mode  TEXT NOT NULL,
    prompt         TEXT NOT NULL DEFAULT '',
    max_age        BIGINT NOT NULL DEFAULT -1,
    login_hint     TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    session_id     TEXT NOT NULL DEFAULT '',
    login_at       BIGINT NOT NULL DEFAULT 0,
    consent_at     BIGINT NOT NULL DEFAULT 0,
    denied         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX auth_requests_expires ON auth_requests (expires_at);

-- Authorization codes, stored only as their SHA-256 hash, single use. A used
-- code keeps the refresh family and access token issued from it, so a replay
-- revokes them (RFC 6749 §4.1.2).
CREATE TABLE auth_codes (
    hash                BLOB PRIMARY KEY,
    client_id           TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri        TEXT NOT NULL,
    code_challenge      TEXT NOT NULL,
    nonce               TEXT NOT NULL DEFAULT '',
    scope               TEXT NOT NULL DEFAULT '',
    audience            TEXT NOT NULL DEFAULT '',
    session_id          TEXT NOT NULL DEFAULT '',
    auth_time           BIGINT NOT NULL,
    amr                 TEXT NOT NULL DEFAULT '',
    password_changed_at BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    used_at             BIGINT NOT NULL DEFAULT 0,
    replayed_at         BIGINT NOT NULL DEFAULT 0,
    family_id           TEXT NOT NULL DEFAULT '',
    access_jti          TEXT NOT NULL DEFAULT '',
    access_expires_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

-- +goose Down
DROP TABLE auth_codes;
DROP TABLE auth_requests;
