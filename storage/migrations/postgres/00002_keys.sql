-- +goose Up
-- signing_keys holds the published key set. A key moves next -> active ->
-- retired and is deleted when removed. private_key is AES-256-GCM ciphertext
-- bound to kid; public_jwk is the public JWK in clear.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    alg          TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- key_set_version counts key-set changes so replicas can tell, with one cheap
-- read, whether they need to reload.
CREATE TABLE key_set_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO key_set_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE key_set_version;
DROP TABLE signing_keys;
