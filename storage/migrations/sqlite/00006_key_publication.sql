-- +goose Up
-- What the servers publish the JWKS with, recorded beside the key-set version
-- so the CLI and every replica compute the same moment a next key may sign.
-- jwks_max_age_ms and publish_margin_ms are the Cache-Control max-age and the
-- publish margin, in ms (0: no server has recorded them yet). publish_floor
-- (Unix ms, 0: none) is set when a server lowers them: no next key signs
-- before it, so JWKS copies cached under the old, longer max-age expire first.
ALTER TABLE key_set_version ADD COLUMN jwks_max_age_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE key_set_version ADD COLUMN publish_margin_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE key_set_version ADD COLUMN publish_floor BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE key_set_version DROP COLUMN publish_floor;
ALTER TABLE key_set_version DROP COLUMN publish_margin_ms;
ALTER TABLE key_set_version DROP COLUMN jwks_max_age_ms;
