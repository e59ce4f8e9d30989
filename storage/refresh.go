package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// RefreshFamily is one login: every refresh token rotated from its first
// token belongs to it, and revoking it ends them all (RFC 9700 §4.14.2).
type RefreshFamily struct {
	ID           string `db:"id"`
	ClientID     string `db:"client_id"`
	UserID       string `db:"user_id"`
	Scope        List   `db:"scope"`
	Audience     string `db:"audience"`
	AuthTime     Time   `db:"auth_time"` // when the user last entered a password
	CreatedAt    Time   `db:"created_at"`
	ExpiresAt    Time   `db:"expires_at"` // absolute lifetime of the family
	RevokedAt    Time   `db:"revoked_at"` // zero while live
	RevokeReason string `db:"revoke_reason"`
	// Grant is the grant that started the family ("password",
	// "authorization_code"): TE-16's password-grant limits apply to
	// password families only.
	Grant string `db:"grant"`
}

// RefreshToken is one refresh token of a family, stored only as its SHA-256
// hash. A used token records the hash of its successor and the salt the
// successor was derived from.
type RefreshToken struct {
	Hash          []byte `db:"hash"`
	FamilyID      string `db:"family_id"`
	Scope         List   `db:"scope"`
	CreatedAt     Time   `db:"created_at"`
	IdleExpiresAt Time   `db:"idle_expires_at"`
	UsedAt        Time   `db:"used_at"` // zero while unused
	SuccessorHash []byte `db:"successor_hash"`
	SuccessorSalt []byte `db:"successor_salt"`
}

const (
	familyColumns = `id, client_id, user_id, scope, audience, auth_time, created_at, expires_at,
	revoked_at, revoke_reason, "grant"`
	refreshColumns = `hash, family_id, scope, created_at, idle_expires_at, used_at,
	successor_hash, successor_salt`
)

// Reasons recorded when a family is revoked.
const (
	RevokeReuse        = "reuse"         // an already-used token was presented
	RevokeByClient     = "revoked"       // RFC 7009 revocation by its client
	RevokeUserDisabled = "user_disabled" // the account was disabled or locked
	RevokePassword     = "password"      // the password changed or was reset
	RevokeSignOut      = "sign_out"      // an administrator ended the sessions
	RevokeClient       = "client"        // the client was disabled
)

// SignIn is what a login read of the account when it checked the
// password, before it asks for a family: the PasswordChangedAt of the row
// whose hash it verified. Every login path (the password grant today, the
// authorization code later) passes it to CreateRefreshFamily; the zero
// SignIn matches no account.
type SignIn struct {
	PasswordChangedAt Time
}

// SignInOf is the SignIn of a login that checked the password against u.
func SignInOf(u User) SignIn { return SignIn{PasswordChangedAt: u.PasswordChangedAt} }

// ErrSignInStale is CreateRefreshFamily's refusal: since the login checked
// the password, the account's password changed, or it was disabled or
// deleted. The login must fail as a wrong password would.
var ErrSignInStale = errors.New("the account changed since the sign-in was checked")

// CreateRefreshFamily stores f and its first token in one transaction, only
// if f's user still exists, is enabled and has the password the login
// checked (its PasswordChangedAt equals in's); otherwise it stores nothing
// and returns ErrSignInStale. The user's row is read in the same
// transaction, locked (FOR SHARE on PostgreSQL; SQLite's immediate
// transaction holds the write lock), so a concurrent password change,
// disable or delete either commits first and is seen here, or waits for
// this commit and then revokes (or, deleting, cascades to) the new family:
// no family outlives an account event that followed its password check.
func (db *DB) CreateRefreshFamily(ctx context.Context, f RefreshFamily, first RefreshToken, in SignIn) error {
	first.FamilyID = f.ID
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var cur struct {
			Disabled          bool `db:"disabled"`
			PasswordChangedAt Time `db:"password_changed_at"`
		}
		err := tx.GetContext(ctx, &cur, db.q(`SELECT disabled, password_changed_at FROM users WHERE id = ?`+db.forShare()), f.UserID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrSignInStale
		case err != nil:
			return err
		case cur.Disabled || in.PasswordChangedAt.IsZero() || !cur.PasswordChangedAt.Equal(in.PasswordChangedAt.Time):
			return ErrSignInStale
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO refresh_families (`+familyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			f.ID, f.ClientID, f.UserID, f.Scope, f.Audience, f.AuthTime, f.CreatedAt, f.ExpiresAt,
			f.RevokedAt, f.RevokeReason, f.Grant); err != nil {
			return classify(err)
		}
		return db.insertRefresh(ctx, tx, first)
	})
	if err != nil {
		return fmt.Errorf("create refresh family: %w", err)
	}
	return nil
}

func (db *DB) insertRefresh(ctx context.Context, tx *sqlx.Tx, t RefreshToken) error {
	ins, err := db.inTxPrepared(ctx, tx, `INSERT INTO refresh_tokens (`+refreshColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	_, err = ins.ExecContext(ctx, t.Hash, t.FamilyID, t.Scope, t.CreatedAt, t.IdleExpiresAt, t.UsedAt,
		nilIfEmpty(t.SuccessorHash), nilIfEmpty(t.SuccessorSalt))
	return classify(err)
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Rotation asks RotateRefreshToken to use the token whose hash is Hash.
type Rotation struct {
	Hash     []byte // SHA-256 of the presented token
	ClientID string // the authenticated client
	Now      time.Time
	IdleTTL  time.Duration // lifetime of the successor without use
	// ReuseWindow is how long after a token's use a retry of it gets the
	// same successor back, while that successor is unused; <= 0 turns it off.
	ReuseWindow time.Duration
	// Successor returns the hash of the successor token derived from salt.
	// The store never sees a token in clear.
	Successor func(salt []byte) []byte
	// Check, when set, vets the family before anything is issued or written
	// (for example, that a narrowed scope is a subset). Its error is
	// returned as is and nothing changes.
	Check func(RefreshFamily) error
}

// RotateOutcome says what RotateRefreshToken did.
type RotateOutcome int

// Outcomes of a rotation. Only Rotated and Replayed issue a successor.
const (
	RefreshUnknown      RotateOutcome = iota // no such token
	Rotated                                  // a fresh successor was stored
	Replayed                                 // a retry within the window: the same successor
	RefreshWrongClient                       // the token belongs to another client; nothing changed
	RefreshRevoked                           // the family was already revoked
	RefreshExpired                           // past the family's absolute or the token's idle lifetime
	RefreshUserInactive                      // the user is disabled or changed password since the login
	RefreshReuse                             // an already-used token: the family is now revoked
)

var outcomeNames = [...]string{"unknown", "rotated", "replayed", "wrong_client", "revoked", "expired", "user_inactive", "reuse"}

func (o RotateOutcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// RotateResult is the typed answer of RotateRefreshToken.
type RotateResult struct {
	Outcome RotateOutcome
	Family  RefreshFamily // set unless Outcome is RefreshUnknown
	// Salt derives the successor (with the presented token) when Outcome is
	// Rotated or Replayed.
	Salt []byte
}

// rotationState is what the decision reads from the database.
type rotationState struct {
	token             RefreshToken
	family            RefreshFamily
	userDisabled      bool
	passwordChangedAt Time
	successor         *RefreshToken // the used token's successor, if any
}

// decideRotation is the rotation rule, without I/O: which outcome a
// presented token gets at now.
func decideRotation(st rotationState, rot Rotation) RotateOutcome {
	f, t := st.family, st.token
	now := rot.Now
	switch {
	case f.ClientID != rot.ClientID:
		return RefreshWrongClient
	case !f.RevokedAt.IsZero():
		return RefreshRevoked
	case st.userDisabled || st.passwordChangedAt.After(f.AuthTime.Time):
		return RefreshUserInactive
	case !now.Before(f.ExpiresAt.Time):
		return RefreshExpired
	case t.UsedAt.IsZero():
		if !now.Before(t.IdleExpiresAt.Time) {
			return RefreshExpired
		}
		return Rotated
	case rot.ReuseWindow > 0 && now.Sub(t.UsedAt.Time) <= rot.ReuseWindow &&
		st.successor != nil && st.successor.UsedAt.IsZero() && now.Before(st.successor.IdleExpiresAt.Time):
		return Replayed
	default:
		return RefreshReuse
	}
}

// tokenFamilyUser is one row of rotationQuery: the presented token, its
// family and what the decision needs of the family's user.
type tokenFamilyUser struct {
	RefreshToken
	Family                RefreshFamily `db:"f"`
	UserDisabled          bool          `db:"user_disabled"`
	UserPasswordChangedAt Time          `db:"user_password_changed_at"`
}

// rotationQuery reads the presented token, its family and its user in one
// statement (one round trip), locking the token's row on PostgreSQL (FOR
// UPDATE OF t, added by RotateRefreshToken): the family and user rows are
// read, not locked, as they were when these were three reads.
const rotationQuery = `SELECT t.hash, t.family_id, t.scope, t.created_at, t.idle_expires_at, t.used_at,
	t.successor_hash, t.successor_salt,
	f.id AS "f.id", f.client_id AS "f.client_id", f.user_id AS "f.user_id", f.scope AS "f.scope",
	f.audience AS "f.audience", f.auth_time AS "f.auth_time", f.created_at AS "f.created_at",
	f.expires_at AS "f.expires_at", f.revoked_at AS "f.revoked_at", f.revoke_reason AS "f.revoke_reason",
	f."grant" AS "f.grant",
	u.disabled AS user_disabled, u.password_changed_at AS user_password_changed_at
	FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id JOIN users u ON u.id = f.user_id
	WHERE t.hash = ?`

// RotateRefreshToken uses the refresh token rot.Hash in one transaction: it
// locks the token row (SELECT … FOR UPDATE on PostgreSQL; SQLite's
// immediate transaction holds the write lock), decides with decideRotation,
// and writes the outcome: a new successor, nothing (a replay within the
// window, or a rejection), or the revocation of the family (reuse). Two
// concurrent uses of one token therefore never both create a successor.
// Rejections are outcomes, not errors; the error is for storage failures and
// for rot.Check.
func (db *DB) RotateRefreshToken(ctx context.Context, rot Rotation) (RotateResult, error) {
	var res RotateResult
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res = RotateResult{}
		var st rotationState
		var row tokenFamilyUser
		sel, err := db.inTxPrepared(ctx, tx, rotationQuery+db.forUpdateOf("t"))
		if err != nil {
			return err
		}
		err = sel.GetContext(ctx, &row, rot.Hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // RefreshUnknown
		}
		if err != nil {
			return err
		}
		st.token, st.family = row.RefreshToken, row.Family
		st.userDisabled, st.passwordChangedAt = row.UserDisabled, row.UserPasswordChangedAt
		res.Family = st.family
		if !st.token.UsedAt.IsZero() && len(st.token.SuccessorHash) > 0 {
			var succ RefreshToken
			err := tx.GetContext(ctx, &succ, db.q(`SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = ?`+db.forUpdate()), st.token.SuccessorHash)
			switch {
			case err == nil:
				st.successor = &succ
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		res.Outcome = decideRotation(st, rot)
		switch res.Outcome {
		case Rotated, Replayed:
			if rot.Check != nil {
				if err := rot.Check(st.family); err != nil {
					return err
				}
			}
		}
		now := At(rot.Now)
		switch res.Outcome {
		case Rotated:
			salt := make([]byte, 32)
			if _, err := rand.Read(salt); err != nil {
				return err
			}
			succ := RefreshToken{
				Hash: rot.Successor(salt), FamilyID: st.family.ID, Scope: st.token.Scope,
				CreatedAt: now, IdleExpiresAt: idleExpiry(rot.Now, rot.IdleTTL, st.family.ExpiresAt),
			}
			use, err := db.inTxPrepared(ctx, tx, `UPDATE refresh_tokens SET used_at = ?, successor_hash = ?,
				successor_salt = ? WHERE hash = ?`)
			if err != nil {
				return err
			}
			if _, err := use.ExecContext(ctx, now, succ.Hash, salt, rot.Hash); err != nil {
				return err
			}
			if err := db.insertRefresh(ctx, tx, succ); err != nil {
				return err
			}
			res.Salt = salt
		case Replayed:
			if !bytes.Equal(rot.Successor(st.token.SuccessorSalt), st.token.SuccessorHash) {
				return errors.New("stored successor does not match its derivation")
			}
			res.Salt = st.token.SuccessorSalt
		case RefreshReuse:
			if err := db.revokeFamily(ctx, tx, st.family.ID, RevokeReuse, rot.Now); err != nil {
				return err
			}
			res.Family.RevokedAt, res.Family.RevokeReason = now, RevokeReuse
		}
		return nil
	})
	if err != nil {
		return RotateResult{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	return res, nil
}

// idleExpiry is when a token issued at now expires without use: after
// idle, but never past the family's absolute expiry.
func idleExpiry(now time.Time, idle time.Duration, familyExpires Time) Time {
	t := now.Add(idle)
	if t.After(familyExpires.Time) {
		return familyExpires
	}
	return At(t)
}

// RefreshIdleExpiry is the idle expiry RotateRefreshToken and callers of
// CreateRefreshFamily give a token issued at now.
func RefreshIdleExpiry(now time.Time, idle time.Duration, familyExpires time.Time) Time {
	return idleExpiry(now, idle, At(familyExpires))
}

// RefreshToken returns the token with the given hash and its family.
func (db *DB) RefreshToken(ctx context.Context, hash []byte) (RefreshToken, RefreshFamily, error) {
	var t RefreshToken
	if err := db.getOnce(ctx, &t, `SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = ?`, hash); err != nil {
		return RefreshToken{}, RefreshFamily{}, fmt.Errorf("get refresh token: %w", notFound(err))
	}
	f, err := db.RefreshFamily(ctx, t.FamilyID)
	if err != nil {
		return RefreshToken{}, RefreshFamily{}, err
	}
	return t, f, nil
}

// RefreshFamily returns the family with the given id.
func (db *DB) RefreshFamily(ctx context.Context, id string) (RefreshFamily, error) {
	var f RefreshFamily
	if err := db.getOnce(ctx, &f, `SELECT `+familyColumns+` FROM refresh_families WHERE id = ?`, id); err != nil {
		return RefreshFamily{}, fmt.Errorf("get refresh family: %w", notFound(err))
	}
	return f, nil
}

// RefreshFamilies lists a user's families, newest first.
func (db *DB) RefreshFamilies(ctx context.Context, userID string) ([]RefreshFamily, error) {
	var fs []RefreshFamily
	if err := db.selOnce(ctx, &fs, `SELECT `+familyColumns+` FROM refresh_families
		WHERE user_id = ? ORDER BY created_at DESC, id`, userID); err != nil {
		return nil, fmt.Errorf("list refresh families: %w", err)
	}
	return fs, nil
}

func (db *DB) revokeFamily(ctx context.Context, tx *sqlx.Tx, id, reason string, now time.Time) error {
	_, err := tx.ExecContext(ctx, db.q(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE id = ? AND revoked_at = 0`), At(now), reason, id)
	return err
}

// RevokeRefreshFamily revokes the family and so every token in it. Revoking
// a revoked family keeps the first reason; an unknown id is ErrNotFound.
func (db *DB) RevokeRefreshFamily(ctx context.Context, id, reason string, now time.Time) error {
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, db.q(`SELECT COUNT(*) FROM refresh_families WHERE id = ?`), id); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return db.revokeFamily(ctx, tx, id, reason, now)
	})
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}

// RevokeUserRefreshFamilies revokes every live family of the user (password
// change, disable, sign out everywhere) and returns how many it revoked.
func (db *DB) RevokeUserRefreshFamilies(ctx context.Context, userID, reason string, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND revoked_at = 0`, At(now), reason, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke refresh families of user: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// RevokeClientRefreshFamilies revokes every live family of the client.
func (db *DB) RevokeClientRefreshFamilies(ctx context.Context, clientID, reason string, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE client_id = ? AND revoked_at = 0`, At(now), reason, clientID)
	if err != nil {
		return 0, fmt.Errorf("revoke refresh families of client: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// RevokeAccessToken records an access token's jti as revoked until
// expiresAt, when the token dies anyway. Revoking twice is not an error.
func (db *DB) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := db.exec(ctx, `INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?)
		ON CONFLICT (jti) DO NOTHING`, jti, At(expiresAt))
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// AccessTokenRevoked reports whether the jti was revoked.
func (db *DB) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	if err := db.get(ctx, &n, `SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = ?`, jti); err != nil {
		return false, fmt.Errorf("check revoked access token: %w", err)
	}
	return n > 0, nil
}

// DeleteExpiredTokens removes what can no longer matter at before: families
// (with their tokens) past their absolute expiry or revoked before it, and
// revoked access-token ids and account tokens (reset and verify links) past
// their expiry. Callers pass now minus the
// longest access-token lifetime, so an access token's sid still finds its
// family while the token lives.
func (db *DB) DeleteExpiredTokens(ctx context.Context, before time.Time) (int64, error) {
	b := At(before)
	var total int64
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		total = 0
		// Tokens first: SQLite cascades only with foreign_keys on, and
		// deleting children explicitly keeps both dialects alike.
		for _, q := range []string{
			`DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families
				WHERE expires_at < ? OR (revoked_at > 0 AND revoked_at < ?))`,
			`DELETE FROM refresh_families WHERE expires_at < ? OR (revoked_at > 0 AND revoked_at < ?)`,
		} {
			res, err := tx.ExecContext(ctx, db.q(q), b, b)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		for _, q := range []string{
			`DELETE FROM revoked_access_tokens WHERE expires_at < ?`,
			`DELETE FROM account_tokens WHERE expires_at < ?`,
		} {
			res, err := tx.ExecContext(ctx, db.q(q), b)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		n, err := db.deleteExpiredAuthz(ctx, tx, b)
		total += n
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return total, nil
}
