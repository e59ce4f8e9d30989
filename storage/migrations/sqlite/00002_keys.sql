-- +goose Up
-- signing_keys holds the published key set. A key moves next -> active ->
-- retired and is deleted when removed. private_key is AES-256-GCM ciphertext
-- bound to kid; public_jwk is the public JWK in clear. Times are Unix ms:
-- created_at is when the key was first published, activates_at when it
-- started (or is planned to start) signing, retires_at when it stopped (or is
-- planned to stop), expires_at when it leaves the JWKS.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    alg          TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- At most one active and one next key, whatever writes the table.
CREATE UNIQUE INDEX signing_keys_one_per_state ON signing_keys (state)
    WHERE state IN ('next', 'active');

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
