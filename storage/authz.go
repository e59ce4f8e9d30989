package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// AuthRequest is a pending authorization request (GET /oauth2/authorize)
// while the browser logs in and consents; it lives 10 minutes at most and is
// deleted when its code is issued.
type AuthRequest struct {
	ID            string `db:"id"` // 128-bit random, base64url; the pages carry it as ?req=ID
	ClientID      string `db:"client_id"`
	RedirectURI   string `db:"redirect_uri"`
	Scope         List   `db:"scope"`
	Audience      string `db:"audience"`
	State         string `db:"state"`
	Nonce         string `db:"nonce"`
	CodeChallenge string `db:"code_challenge"` // S256 only
	ResponseMode  string `db:"response_mode"`  // "query" or "form_post"
	Prompt        string `db:"prompt"`         // "", "none", "login", "consent" (space-separated allowed, none alone)
	MaxAge        int64  `db:"max_age"`        // -1 when absent
	LoginHint     string `db:"login_hint"`
	CreatedAt     Time   `db:"created_at"`
	ExpiresAt     Time   `db:"expires_at"`
	SessionID     string `db:"session_id"` // the login session this request is served under, set by MarkAuthRequestLogin
	LoginAt       Time   `db:"login_at"`   // when a login completed during this request (satisfies prompt=login/max_age)
	ConsentAt     Time   `db:"consent_at"` // when consent was given during this request
	Denied        bool   `db:"denied"`     // the user refused consent: access_denied to the client
}

const authRequestColumns = `id, client_id, redirect_uri, scope, audience, state, nonce, code_challenge,
	response_mode, prompt, max_age, login_hint, created_at, expires_at, session_id, login_at, consent_at, denied`

// CreateAuthRequest stores r; a taken id gives ErrConflict.
func (db *DB) CreateAuthRequest(ctx context.Context, r *AuthRequest) error {
	_, err := db.exec(ctx, `INSERT INTO auth_requests (`+authRequestColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.ClientID, r.RedirectURI, r.Scope, r.Audience, r.State, r.Nonce, r.CodeChallenge,
		r.ResponseMode, r.Prompt, r.MaxAge, r.LoginHint, r.CreatedAt, r.ExpiresAt, r.SessionID,
		r.LoginAt, r.ConsentAt, r.Denied)
	if err != nil {
		return fmt.Errorf("create auth request: %w", classify(err))
	}
	return nil
}

// AuthRequest returns the request with the given id; ErrNotFound when it is
// gone or past its ExpiresAt.
func (db *DB) AuthRequest(ctx context.Context, id string) (AuthRequest, error) {
	var r AuthRequest
	err := db.get(ctx, &r, `SELECT `+authRequestColumns+` FROM auth_requests WHERE id = ?`, id)
	if err != nil {
		return AuthRequest{}, fmt.Errorf("get auth request: %w", notFound(err))
	}
	if !time.Now().Before(r.ExpiresAt.Time) {
		return AuthRequest{}, fmt.Errorf("get auth request: %w", ErrNotFound)
	}
	return r, nil
}

// MarkAuthRequestLogin records that a login completed at at during the
// request, under the login session sessionID.
func (db *DB) MarkAuthRequestLogin(ctx context.Context, id, sessionID string, at time.Time) error {
	return db.updateAuthRequest(ctx, id, `session_id = ?, login_at = ?`, sessionID, At(at))
}

// MarkAuthRequestConsent records the user's answer on the consent page.
func (db *DB) MarkAuthRequestConsent(ctx context.Context, id string, at time.Time, denied bool) error {
	return db.updateAuthRequest(ctx, id, `consent_at = ?, denied = ?`, At(at), denied)
}

func (db *DB) updateAuthRequest(ctx context.Context, id, set string, args ...any) error {
	res, err := db.exec(ctx, `UPDATE auth_requests SET `+set+` WHERE id = ?`, append(args, id)...)
	if err != nil {
		return fmt.Errorf("update auth request: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update auth request: %w", ErrNotFound)
	}
	return nil
}

// DeleteAuthRequest removes the request; deleting a missing one is not an error.
func (db *DB) DeleteAuthRequest(ctx context.Context, id string) error {
	if _, err := db.exec(ctx, `DELETE FROM auth_requests WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}

// AuthCode is an authorization code, stored only as the SHA-256 Hash of the
// code: single use, bound to its client, redirect URI and PKCE challenge.
type AuthCode struct {
	Hash          []byte `db:"hash"`
	ClientID      string `db:"client_id"`
	UserID        string `db:"user_id"`
	RedirectURI   string `db:"redirect_uri"`
	CodeChallenge string `db:"code_challenge"`
	Nonce         string `db:"nonce"`
	Scope         List   `db:"scope"`
	Audience      string `db:"audience"`
	SessionID     string `db:"session_id"`
	AuthTime      Time   `db:"auth_time"`
	AMR           List   `db:"amr"`
	// PasswordChangedAt is the user's when the code was issued: the
	// SignIn the exchange passes to CreateRefreshFamily.
	PasswordChangedAt Time   `db:"password_changed_at"`
	CreatedAt         Time   `db:"created_at"`
	ExpiresAt         Time   `db:"expires_at"`
	UsedAt            Time   `db:"used_at"`     // zero while unused
	ReplayedAt        Time   `db:"replayed_at"` // the first replay of a used code
	FamilyID          string `db:"family_id"`   // the refresh family issued from it
	AccessJTI         string `db:"access_jti"`  // the access token issued from it
	AccessExpiresAt   Time   `db:"access_expires_at"`
}

const authCodeColumns = `hash, client_id, user_id, redirect_uri, code_challenge, nonce, scope, audience,
	session_id, auth_time, amr, password_changed_at, created_at, expires_at, used_at, replayed_at,
	family_id, access_jti, access_expires_at`

// CreateAuthCode stores c.
func (db *DB) CreateAuthCode(ctx context.Context, c AuthCode) error {
	_, err := db.exec(ctx, `INSERT INTO auth_codes (`+authCodeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Hash, c.ClientID, c.UserID, c.RedirectURI, c.CodeChallenge, c.Nonce, c.Scope, c.Audience,
		c.SessionID, c.AuthTime, c.AMR, c.PasswordChangedAt, c.CreatedAt, c.ExpiresAt, c.UsedAt,
		c.ReplayedAt, c.FamilyID, c.AccessJTI, c.AccessExpiresAt)
	if err != nil {
		return fmt.Errorf("create auth code: %w", classify(err))
	}
	return nil
}

// ErrCodeReplayed is UseAuthCode's answer to a code that was used before:
// the refresh family and access token issued from it are now revoked.
var ErrCodeReplayed = errors.New("authorization code already used")

// UseAuthCode uses up the code whose hash is hash, in one transaction with
// the row locked, and returns it; the caller checks its binding and expiry.
// An unknown code is ErrNotFound. A used one is ErrCodeReplayed: the family
// and the access token issued from it are revoked, and any issued later
// (RecordAuthCodeTokens after a concurrent use) are revoked as recorded.
func (db *DB) UseAuthCode(ctx context.Context, hash []byte, now time.Time) (AuthCode, error) {
	var c AuthCode
	replayed := false
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		replayed = false
		err := tx.GetContext(ctx, &c, db.q(`SELECT `+authCodeColumns+` FROM auth_codes WHERE hash = ?`+db.forUpdate()), hash)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if c.UsedAt.IsZero() {
			c.UsedAt = At(now)
			_, err := tx.ExecContext(ctx, db.q(`UPDATE auth_codes SET used_at = ? WHERE hash = ?`), c.UsedAt, hash)
			return err
		}
		replayed = true
		if c.ReplayedAt.IsZero() {
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE auth_codes SET replayed_at = ? WHERE hash = ?`), At(now), hash); err != nil {
				return err
			}
		}
		return db.revokeCodeTokens(ctx, tx, c, now)
	})
	if err != nil {
		return AuthCode{}, fmt.Errorf("use auth code: %w", err)
	}
	if replayed {
		return c, ErrCodeReplayed
	}
	return c, nil
}

// revokeCodeTokens revokes what c records as issued from it.
func (db *DB) revokeCodeTokens(ctx context.Context, tx *sqlx.Tx, c AuthCode, now time.Time) error {
	if c.FamilyID != "" {
		if err := db.revokeFamily(ctx, tx, c.FamilyID, RevokeReuse, now); err != nil {
			return err
		}
	}
	if c.AccessJTI != "" {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?)
			ON CONFLICT (jti) DO NOTHING`), c.AccessJTI, c.AccessExpiresAt)
		return err
	}
	return nil
}

// RecordAuthCodeTokens records the refresh family (or "") and access token
// issued from the code, so a replay can revoke them. When the code was
// replayed meanwhile, it revokes them at once and returns ErrCodeReplayed.
func (db *DB) RecordAuthCodeTokens(ctx context.Context, hash []byte, familyID, jti string, accessExpiresAt, now time.Time) error {
	replayed := false
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var c AuthCode
		if err := tx.GetContext(ctx, &c, db.q(`SELECT `+authCodeColumns+` FROM auth_codes WHERE hash = ?`+db.forUpdate()), hash); err != nil {
			return notFound(err)
		}
		c.FamilyID, c.AccessJTI, c.AccessExpiresAt = familyID, jti, At(accessExpiresAt)
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE auth_codes SET family_id = ?, access_jti = ?, access_expires_at = ?
			WHERE hash = ?`), c.FamilyID, c.AccessJTI, c.AccessExpiresAt, hash); err != nil {
			return err
		}
		if c.ReplayedAt.IsZero() {
			return nil
		}
		replayed = true
		return db.revokeCodeTokens(ctx, tx, c, now)
	})
	if err != nil {
		return fmt.Errorf("record auth code tokens: %w", err)
	}
	if replayed {
		return ErrCodeReplayed
	}
	return nil
}

// deleteExpiredAuthz removes authorization requests and codes that expired
// before b, within DeleteExpiredTokens' transaction.
func (db *DB) deleteExpiredAuthz(ctx context.Context, tx *sqlx.Tx, b Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM auth_requests WHERE expires_at < ?`,
		`DELETE FROM auth_codes WHERE expires_at < ?`,
	} {
		res, err := tx.ExecContext(ctx, db.q(q), b)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
