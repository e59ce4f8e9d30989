package storage

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// LoginSession is a browser's login session (idp/login, issue 15). The
// browser's cookie holds a random value; ID is its SHA-256 (hex).
type LoginSession struct {
	ID            string `db:"id"`
	UserID        string `db:"user_id"`
	AuthTime      Time   `db:"auth_time"` // when the user last authenticated
	AMR           List   `db:"amr"`       // "pwd", "otp", "mfa"
	CreatedAt     Time   `db:"created_at"`
	LastSeenAt    Time   `db:"last_seen_at"`
	IdleExpiresAt Time   `db:"idle_expires_at"`
	ExpiresAt     Time   `db:"expires_at"`
	RevokedAt     Time   `db:"revoked_at"`
}

// Live reports whether s is neither revoked nor expired at now.
func (s LoginSession) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.IdleExpiresAt.Time) && now.Before(s.ExpiresAt.Time)
}

const loginSessionColumns = `id, user_id, auth_time, amr, created_at, last_seen_at,
	idle_expires_at, expires_at, revoked_at`

// CreateLoginSession stores s.
func (db *DB) CreateLoginSession(ctx context.Context, s LoginSession) error {
	_, err := db.exec(ctx, `INSERT INTO login_sessions (`+loginSessionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.UserID, s.AuthTime, s.AMR, s.CreatedAt, s.LastSeenAt, s.IdleExpiresAt, s.ExpiresAt, s.RevokedAt)
	if err != nil {
		return fmt.Errorf("create login session: %w", classify(err))
	}
	return nil
}

// LoginSession returns the session with id, live or not; ErrNotFound when
// there is none.
func (db *DB) LoginSession(ctx context.Context, id string) (LoginSession, error) {
	var s LoginSession
	err := db.get(ctx, &s, `SELECT `+loginSessionColumns+` FROM login_sessions WHERE id = ?`, id)
	if err != nil {
		return s, fmt.Errorf("get login session: %w", notFound(err))
	}
	return s, nil
}

// LoginSessions lists the user's live sessions at now, newest first.
func (db *DB) LoginSessions(ctx context.Context, userID string, now time.Time) ([]LoginSession, error) {
	ss := []LoginSession{}
	n := At(now)
	if err := db.selOnce(ctx, &ss, `SELECT `+loginSessionColumns+` FROM login_sessions
		WHERE user_id = ? AND revoked_at = 0 AND idle_expires_at > ? AND expires_at > ?
		ORDER BY created_at DESC, id`, userID, n, n); err != nil {
		return nil, fmt.Errorf("list login sessions: %w", err)
	}
	return ss, nil
}

// TouchLoginSession records that the live session id was used at now and
// moves its idle expiry to idleExpires (never past its absolute expiry).
func (db *DB) TouchLoginSession(ctx context.Context, id string, now, idleExpires time.Time) error {
	_, err := db.exec(ctx, `UPDATE login_sessions SET last_seen_at = ?,
		idle_expires_at = CASE WHEN ? < expires_at THEN ? ELSE expires_at END
		WHERE id = ? AND revoked_at = 0`, At(now), At(idleExpires), At(idleExpires), id)
	if err != nil {
		return fmt.Errorf("touch login session: %w", err)
	}
	return nil
}

// RevokeLoginSession revokes the session id; revoking a revoked or unknown
// session is not an error. It reports whether a live row was revoked.
func (db *DB) RevokeLoginSession(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := db.exec(ctx, `UPDATE login_sessions SET revoked_at = ?
		WHERE id = ? AND revoked_at = 0`, At(now), id)
	if err != nil {
		return false, fmt.Errorf("revoke login session: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// RevokeUserLoginSessions revokes every session of the user and returns
// how many were not revoked yet.
func (db *DB) RevokeUserLoginSessions(ctx context.Context, userID string, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `UPDATE login_sessions SET revoked_at = ?
		WHERE user_id = ? AND revoked_at = 0`, At(now), userID)
	if err != nil {
		return 0, fmt.Errorf("revoke login sessions of user: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteExpiredLoginSessions deletes the sessions that ended before t.
func (db *DB) DeleteExpiredLoginSessions(ctx context.Context, t time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM login_sessions
		WHERE expires_at < ? OR idle_expires_at < ? OR (revoked_at <> 0 AND revoked_at < ?)`, At(t), At(t), At(t))
	if err != nil {
		return 0, fmt.Errorf("delete expired login sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Consent is the scopes a user has granted a client, remembered.
type Consent struct {
	UserID    string `db:"user_id"`
	ClientID  string `db:"client_id"`
	Scope     List   `db:"scope"`
	GrantedAt Time   `db:"granted_at"`
}

// Consent returns the user's consent for the client; ErrNotFound when none.
func (db *DB) Consent(ctx context.Context, userID, clientID string) (Consent, error) {
	var c Consent
	err := db.get(ctx, &c, `SELECT user_id, client_id, scope, granted_at FROM consents
		WHERE user_id = ? AND client_id = ?`, userID, clientID)
	if err != nil {
		return c, fmt.Errorf("get consent: %w", notFound(err))
	}
	return c, nil
}

// Consents lists the user's consents by client id.
func (db *DB) Consents(ctx context.Context, userID string) ([]Consent, error) {
	cs := []Consent{}
	if err := db.selOnce(ctx, &cs, `SELECT user_id, client_id, scope, granted_at FROM consents
		WHERE user_id = ? ORDER BY client_id`, userID); err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return cs, nil
}

// GrantConsent adds scope to the user's consent for the client (the union
// of what was granted before and scope) and returns it.
func (db *DB) GrantConsent(ctx context.Context, userID, clientID string, scope []string, now time.Time) (Consent, error) {
	c := Consent{UserID: userID, ClientID: clientID, GrantedAt: At(now)}
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var old List
		err := tx.GetContext(ctx, &old, db.q(`SELECT scope FROM consents WHERE user_id = ? AND client_id = ?`+db.forUpdate()),
			userID, clientID)
		switch err := notFound(err); err {
		case nil:
		case ErrNotFound:
			old = nil
		default:
			return err
		}
		merged := slices.Clone(old)
		for _, s := range scope {
			if s != "" && !merged.Has(s) {
				merged = append(merged, s)
			}
		}
		c.Scope = merged
		if err == nil && old != nil {
			_, err = tx.ExecContext(ctx, db.q(`UPDATE consents SET scope = ?, granted_at = ?
				WHERE user_id = ? AND client_id = ?`), c.Scope, c.GrantedAt, userID, clientID)
			return err
		}
		_, err = tx.ExecContext(ctx, db.q(`INSERT INTO consents (user_id, client_id, scope, granted_at)
			VALUES (?, ?, ?, ?)`), userID, clientID, c.Scope, c.GrantedAt)
		return classify(err)
	})
	if err != nil {
		return Consent{}, fmt.Errorf("grant consent: %w", err)
	}
	return c, nil
}

// RevokeConsent forgets the user's consent for the client; ErrNotFound
// when there was none.
func (db *DB) RevokeConsent(ctx context.Context, userID, clientID string) error {
	res, err := db.exec(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	if err != nil {
		return fmt.Errorf("revoke consent: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke consent: %w", ErrNotFound)
	}
	return nil
}

// TOTPCredential is a user's TOTP secret, sealed by idp/login.
type TOTPCredential struct {
	UserID      string `db:"user_id"`
	Secret      string `db:"secret"` // sealed; never logged
	CreatedAt   Time   `db:"created_at"`
	ConfirmedAt Time   `db:"confirmed_at"` // zero while enrolment waits for its first code
	LastStep    int64  `db:"last_step"`    // time step of the last accepted code
}

// TOTPCredential returns the user's credential; ErrNotFound when none.
func (db *DB) TOTPCredential(ctx context.Context, userID string) (TOTPCredential, error) {
	var c TOTPCredential
	err := db.get(ctx, &c, `SELECT user_id, secret, created_at, confirmed_at, last_step
		FROM totp_credentials WHERE user_id = ?`, userID)
	if err != nil {
		return c, fmt.Errorf("get totp credential: %w", notFound(err))
	}
	return c, nil
}

// StartTOTPEnrolment stores an unconfirmed credential for the user,
// replacing an unconfirmed one; a confirmed one is ErrConflict.
func (db *DB) StartTOTPEnrolment(ctx context.Context, c TOTPCredential) error {
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var confirmed Time
		err := notFound(tx.GetContext(ctx, &confirmed, db.q(`SELECT confirmed_at FROM totp_credentials WHERE user_id = ?`+db.forUpdate()), c.UserID))
		switch {
		case err == ErrNotFound:
		case err != nil:
			return err
		case !confirmed.IsZero():
			return ErrConflict
		default:
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM totp_credentials WHERE user_id = ?`), c.UserID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, db.q(`INSERT INTO totp_credentials (user_id, secret, created_at, confirmed_at, last_step)
			VALUES (?, ?, ?, 0, 0)`), c.UserID, c.Secret, c.CreatedAt)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("start totp enrolment: %w", err)
	}
	return nil
}

// ConfirmTOTP marks the user's credential confirmed at now with step used,
// and replaces the recovery codes with codeHashes. ErrNotFound when there
// is no unconfirmed credential.
func (db *DB) ConfirmTOTP(ctx context.Context, userID string, step int64, codeHashes []string, now time.Time) error {
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`UPDATE totp_credentials SET confirmed_at = ?, last_step = ?
			WHERE user_id = ? AND confirmed_at = 0 AND last_step < ?`), At(now), step, userID, step)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM totp_recovery_codes WHERE user_id = ?`), userID); err != nil {
			return err
		}
		for _, h := range codeHashes {
			if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES (?, ?)`),
				userID, h); err != nil {
				return classify(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("confirm totp: %w", err)
	}
	return nil
}

// UseTOTPStep records step as the last accepted time step of the user's
// confirmed credential. It reports false, changing nothing, when step is
// not after the last one: the code was used already (a replay).
func (db *DB) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	res, err := db.exec(ctx, `UPDATE totp_credentials SET last_step = ?
		WHERE user_id = ? AND confirmed_at <> 0 AND last_step < ?`, step, userID, step)
	if err != nil {
		return false, fmt.Errorf("use totp step: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// UseRecoveryCode deletes the user's recovery code with codeHash and
// reports whether there was one: each code works once.
func (db *DB) UseRecoveryCode(ctx context.Context, userID, codeHash string) (bool, error) {
	res, err := db.exec(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = ? AND code_hash = ?`,
		userID, codeHash)
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// DeleteTOTP removes the user's credential and recovery codes and reports
// whether there was a credential.
func (db *DB) DeleteTOTP(ctx context.Context, userID string) (bool, error) {
	var n int64
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`DELETE FROM totp_credentials WHERE user_id = ?`), userID)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, db.q(`DELETE FROM totp_recovery_codes WHERE user_id = ?`), userID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete totp: %w", err)
	}
	return n > 0, nil
}
