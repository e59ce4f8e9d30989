package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Client authentication methods (RFC 7591 §2 names).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
)

// Client is an OAuth 2.0 client registration.
type Client struct {
	ID         string `db:"id"`
	Name       string `db:"name"`
	SecretHash []byte `db:"secret_hash"` // SHA-256 of the secret; nil for public clients
	Public     bool   `db:"public"`
	AuthMethod string `db:"auth_method"` // AuthSecretBasic, AuthSecretPost or AuthNone
	GrantTypes List   `db:"grant_types"`
	Scopes     List   `db:"scopes"`
	Audiences  List   `db:"audiences"` // the first is the default
	// IntrospectAudiences is the resource-server role: the audiences whose
	// access tokens the client may introspect, whoever they were issued to.
	IntrospectAudiences List `db:"introspect_audiences"`
	Disabled            bool `db:"disabled"`
	CreatedAt           Time `db:"created_at"`
	UpdatedAt           Time `db:"updated_at"`
	// RedirectURIs are the authorization endpoint's redirect URIs, matched
	// exactly (a loopback http one on any port, RFC 8252 §7.3).
	RedirectURIs List `db:"redirect_uris"`
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser back to, matched exactly.
	PostLogoutRedirectURIs List `db:"post_logout_redirect_uris"`
	// FirstParty clients skip the consent page.
	FirstParty bool `db:"first_party"`
}

const clientColumns = `id, name, secret_hash, public, auth_method, grant_types, scopes,
	audiences, introspect_audiences, disabled, created_at, updated_at, redirect_uris,
	post_logout_redirect_uris, first_party`

// CreateClient stores c; a taken id gives ErrConflict.
func (db *DB) CreateClient(ctx context.Context, c *Client) error {
	now := At(time.Now())
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = c.CreatedAt
	_, err := db.exec(ctx, `INSERT INTO clients (`+clientColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.SecretHash, c.Public, c.AuthMethod, c.GrantTypes, c.Scopes,
		c.Audiences, c.IntrospectAudiences, c.Disabled, c.CreatedAt, c.UpdatedAt,
		c.RedirectURIs, c.PostLogoutRedirectURIs, c.FirstParty)
	db.clients.forget(c.ID)
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, classify(err))
	}
	return nil
}

// Client returns the client with the given id. Opened WithClientCacheTTL,
// the DB reads it from the database at most once per TTL; this DB's own
// CreateClient, UpdateClient and DeleteClient take effect at once. The lists of the Client returned may be
// shared with the cache: callers must not modify their elements.
func (db *DB) Client(ctx context.Context, id string) (Client, error) {
	if c, ok := db.clients.get(id); ok {
		return c, nil
	}
	gen := db.clients.generation()
	var c Client
	err := db.get(ctx, &c, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id)
	if err != nil {
		return Client{}, fmt.Errorf("get client %q: %w", id, notFound(err))
	}
	db.clients.put(c, gen)
	return c, nil
}

// Clients lists every client ordered by id.
func (db *DB) Clients(ctx context.Context) ([]Client, error) {
	var cs []Client
	if err := db.selOnce(ctx, &cs, `SELECT `+clientColumns+` FROM clients ORDER BY id`); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// UpdateClient reads the client, lets update change it, and writes it back in
// one transaction. The id cannot change.
func (db *DB) UpdateClient(ctx context.Context, id string, update func(*Client) error) (Client, error) {
	var c Client
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &c, db.q(`SELECT `+clientColumns+` FROM clients WHERE id = ?`+db.forUpdate()), id); err != nil {
			return notFound(err)
		}
		if err := update(&c); err != nil {
			return err
		}
		c.ID = id
		c.UpdatedAt = At(time.Now())
		_, err := tx.ExecContext(ctx, db.q(`UPDATE clients SET name = ?, secret_hash = ?, public = ?,
			auth_method = ?, grant_types = ?, scopes = ?, audiences = ?, introspect_audiences = ?,
			disabled = ?, updated_at = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
			first_party = ? WHERE id = ?`),
			c.Name, c.SecretHash, c.Public, c.AuthMethod, c.GrantTypes, c.Scopes, c.Audiences,
			c.IntrospectAudiences, c.Disabled, c.UpdatedAt, c.RedirectURIs, c.PostLogoutRedirectURIs,
			c.FirstParty, id)
		return err
	})
	db.clients.forget(id)
	if err != nil {
		return Client{}, fmt.Errorf("update client %q: %w", id, err)
	}
	return c, nil
}

// DeleteClient removes the client and, by cascade, its refresh-token families.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	res, err := db.exec(ctx, `DELETE FROM clients WHERE id = ?`, id)
	db.clients.forget(id)
	if err != nil {
		return fmt.Errorf("delete client %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete client %q: %w", id, ErrNotFound)
	}
	return nil
}
