-- +goose Up
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL,
    username_key        TEXT NOT NULL UNIQUE,
    email               TEXT NOT NULL DEFAULT '',
    email_verified      INTEGER NOT NULL DEFAULT 0,
    password_hash       TEXT NOT NULL,
    disabled            INTEGER NOT NULL DEFAULT 0,
    password_changed_at BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    secret_hash   BLOB,
    public        INTEGER NOT NULL DEFAULT 0,
    auth_method   TEXT NOT NULL,
    grant_types   TEXT NOT NULL DEFAULT '',
    scopes        TEXT NOT NULL DEFAULT '',
    audiences     TEXT NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE clients;
DROP TABLE users;
