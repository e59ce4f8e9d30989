-- +goose Up
-- The JWS algorithm the servers make new signing keys for, recorded beside
-- the key set's publication: the server started last records its
-- --key-algorithm, and every replica and the CLI make keys for what is
-- recorded, so replicas with different settings during a rolling deploy
-- never replace each other's next key. '' means nothing recorded (RS256).
ALTER TABLE key_set_version ADD COLUMN key_algorithm TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE key_set_version DROP COLUMN key_algorithm;
