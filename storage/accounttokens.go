package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Kinds of account token.
const (
	TokenReset  = "reset"  // sets a new password (kwpr_)
	TokenVerify = "verify" // confirms an e-mail address (kwev_)
)

// Why an account token stopped being usable (AccountToken.EndReason).
const (
	TokenUsed       = "used"       // consumed
	TokenSuperseded = "superseded" // a newer token of the same kind was issued for the user
	TokenRevoked    = "revoked"    // the password changed (reset tokens)
)

// AccountToken is one single-use link mailed to a user, stored only as the
// SHA-256 of the token.
type AccountToken struct {
	Hash      []byte `db:"hash"`
	Kind      string `db:"kind"` // TokenReset or TokenVerify
	UserID    string `db:"user_id"`
	Email     string `db:"email"` // the address a verify token was mailed to
	CreatedAt Time   `db:"created_at"`
	ExpiresAt Time   `db:"expires_at"`
	UsedAt    Time   `db:"used_at"`    // when it stopped being usable; zero while live
	EndReason string `db:"end_reason"` // TokenUsed, TokenSuperseded or TokenRevoked; "" while live
}

const accountTokenColumns = `hash, kind, user_id, email, created_at, expires_at, used_at, end_reason`

// TokenError is ConsumeAccountToken's refusal, with the reason for the
// audit trail: "unknown", "expired", or the EndReason of a token that was
// used, superseded or revoked. Callers answer every reason alike.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "account token " + e.Reason }

// ErrTokenUnknown is the TokenError of a hash that matches no token of the kind.
var ErrTokenUnknown = &TokenError{Reason: "unknown"}

// TokenReason returns the reason of a *TokenError in err's chain, "" if none.
func TokenReason(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

// IssueAccountToken stores t and, in the same transaction, ends every live
// token of t's kind for t's user as superseded, so only the newest link
// works. An unknown user is ErrNotFound.
func (db *DB) IssueAccountToken(ctx context.Context, t AccountToken) error {
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var id string
		if err := tx.GetContext(ctx, &id, db.q(`SELECT id FROM users WHERE id = ?`+db.forShare()), t.UserID); err != nil {
			return notFound(err)
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE account_tokens SET used_at = ?, end_reason = ?
			WHERE user_id = ? AND kind = ? AND used_at = 0`),
			t.CreatedAt, TokenSuperseded, t.UserID, t.Kind); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO account_tokens (`+accountTokenColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, 0, '')`),
			t.Hash, t.Kind, t.UserID, t.Email, t.CreatedAt, t.ExpiresAt)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("issue %s token: %w", t.Kind, err)
	}
	return nil
}

// AccountToken returns the token of kind whose hash is hash, live or not;
// ErrNotFound if none.
func (db *DB) AccountToken(ctx context.Context, kind string, hash []byte) (AccountToken, error) {
	var t AccountToken
	err := db.get(ctx, &t, `SELECT `+accountTokenColumns+` FROM account_tokens WHERE hash = ? AND kind = ?`, hash, kind)
	if err != nil {
		return AccountToken{}, fmt.Errorf("get %s token: %w", kind, notFound(err))
	}
	return t, nil
}

// CheckAccountToken returns the token of kind whose hash is hash if it is
// usable at now, without consuming it; otherwise a *TokenError.
func (db *DB) CheckAccountToken(ctx context.Context, kind string, hash []byte, now time.Time) (AccountToken, error) {
	t, err := db.AccountToken(ctx, kind, hash)
	switch {
	case errors.Is(err, ErrNotFound):
		return AccountToken{}, ErrTokenUnknown
	case err != nil:
		return AccountToken{}, err
	}
	if err := t.usable(now); err != nil {
		return t, err
	}
	return t, nil
}

// usable is nil for a live token at now, else its *TokenError.
func (t AccountToken) usable(now time.Time) error {
	switch {
	case !t.UsedAt.IsZero():
		return &TokenError{Reason: t.EndReason}
	case !now.Before(t.ExpiresAt.Time):
		return &TokenError{Reason: "expired"}
	}
	return nil
}

// ConsumeAccountToken marks the token of kind whose hash is hash used, if it
// is live at now, and returns it. The mark is one conditional UPDATE, so of
// two concurrent uses exactly one succeeds. A token that is unknown, used,
// superseded, revoked or expired is a *TokenError naming which.
func (db *DB) ConsumeAccountToken(ctx context.Context, kind string, hash []byte, now time.Time) (AccountToken, error) {
	at := At(now)
	res, err := db.exec(ctx, `UPDATE account_tokens SET used_at = ?, end_reason = ?
		WHERE hash = ? AND kind = ? AND used_at = 0 AND expires_at > ?`, at, TokenUsed, hash, kind, at)
	if err != nil {
		return AccountToken{}, fmt.Errorf("consume %s token: %w", kind, err)
	}
	n, _ := res.RowsAffected()
	t, err := db.AccountToken(ctx, kind, hash)
	switch {
	case errors.Is(err, ErrNotFound):
		return AccountToken{}, ErrTokenUnknown
	case err != nil:
		return AccountToken{}, err
	}
	if n == 0 {
		if err := t.usable(now); err != nil {
			return t, err
		}
		// Live now but not when the UPDATE ran: it cannot be, as nothing
		// brings a token back; treat it as used by another request.
		return t, &TokenError{Reason: TokenUsed}
	}
	return t, nil
}

// EndAccountTokens ends every live token of kind for the user with reason
// (TokenRevoked when the password changes) and returns how many it ended.
func (db *DB) EndAccountTokens(ctx context.Context, userID, kind, reason string, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `UPDATE account_tokens SET used_at = ?, end_reason = ?
		WHERE user_id = ? AND kind = ? AND used_at = 0`, At(now), reason, userID, kind)
	if err != nil {
		return 0, fmt.Errorf("end %s tokens: %w", kind, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
