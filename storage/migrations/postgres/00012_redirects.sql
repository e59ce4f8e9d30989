-- +goose Up
-- Clients of the authorization endpoint (issue 15): their registered redirect
-- URIs and post-logout redirect URIs (space-separated, matched exactly), and
-- whether they are first-party (consent skipped).
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;

-- The grant that started a refresh family: TE-16's password-grant limits apply
-- to password families only. Every family before this migration came from the
-- password grant, the only user grant there was.
ALTER TABLE refresh_families ADD COLUMN "grant" TEXT NOT NULL DEFAULT 'password';

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN "grant";
ALTER TABLE clients DROP COLUMN first_party;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
ALTER TABLE clients DROP COLUMN redirect_uris;
