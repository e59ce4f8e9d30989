-- +goose Up
-- email_pending is a new address awaiting verification: the account keeps
-- its email (and email_verified) until a verify token mailed to the pending
-- address is used. The index on lower(email) serves the forgot-password
-- lookup by address.
ALTER TABLE users ADD COLUMN email_pending TEXT NOT NULL DEFAULT '';
CREATE INDEX users_email_lower ON users (lower(email));

-- +goose Down
DROP INDEX users_email_lower;
ALTER TABLE users DROP COLUMN email_pending;
