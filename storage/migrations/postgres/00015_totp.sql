-- +goose Up
-- TOTP second factor (issue 15, idp/login). secret is sealed by idp/login
-- (AES-256-GCM when a key is configured, see docs/login.md); confirmed_at
-- is 0 while enrolment waits for its first code; last_step is the time
-- step of the last code accepted, so a code is never accepted twice.
CREATE TABLE totp_credentials (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT NOT NULL DEFAULT 0,
    last_step    BIGINT NOT NULL DEFAULT 0
);

-- Recovery codes: SHA-256 of each (they are 80-bit random), single use.
CREATE TABLE totp_recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- +goose Down
DROP TABLE totp_recovery_codes;
DROP TABLE totp_credentials;
