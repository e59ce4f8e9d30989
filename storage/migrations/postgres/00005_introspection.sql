-- +goose Up
-- introspect_audiences is the resource-server role: the audiences whose
-- access tokens the client may introspect (RFC 7662 §2.1). Existing clients
-- get none: being registered to request tokens for an audience no longer
-- lets a client introspect other clients' tokens for it, so an operator
-- grants the role explicitly after upgrading (docs/tokens.md).
ALTER TABLE clients ADD COLUMN introspect_audiences TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN introspect_audiences;
