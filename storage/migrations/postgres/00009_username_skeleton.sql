-- +goose Up
-- The confusable skeleton of each username (storage.UsernameSkeleton, UTS #39):
-- two usernames that look alike have one skeleton, and the unique index refuses
-- the second. Rows that exist already are filled in by DB.Migrate (the skeleton
-- is computed in Go); a row whose skeleton another row holds stays NULL, which a
-- unique index allows, and keeps working.
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_skeleton ON users (username_skeleton);

-- +goose Down
DROP INDEX users_username_skeleton;
ALTER TABLE users DROP COLUMN username_skeleton;
