-- +goose Up
-- Account tokens: the single-use links mailed to a user, kind 'reset' (set a
-- new password, kwpr_) or 'verify' (confirm an address, kwev_). Only the
-- SHA-256 of a token is stored. email is the address a verify token was
-- issued for. A token is live while used_at is 0 and expires_at is in the
-- future; end_reason says why one stopped: used, superseded (a newer token of
-- the same kind for the user), or revoked (the password changed).
CREATE TABLE account_tokens (
    hash        BLOB PRIMARY KEY,
    kind        TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0,
    end_reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, kind);
CREATE INDEX account_tokens_expires ON account_tokens (expires_at);

-- +goose Down
DROP TABLE account_tokens;
