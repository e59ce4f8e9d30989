-- +goose Up
-- Failure counters for login throttling, keyed by what is counted
-- (account and IP, account, IP, client). Every replica shares them.
CREATE TABLE throttle_counters (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    blocked_until BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX throttle_counters_expires ON throttle_counters (expires_at);

-- Security events (login, tokens, admin actions), kept for the audit
-- retention period. No column holds a password, token, secret or code.
CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    subject    TEXT NOT NULL DEFAULT '',
    client_id  TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_subject ON audit_events (subject, at);
CREATE INDEX audit_events_type ON audit_events (type, at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE throttle_counters;
