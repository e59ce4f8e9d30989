package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// User is an account that signs in with a password.
type User struct {
	ID                string `db:"id"`       // stable random id; the token's sub
	Username          string `db:"username"` // as entered, NFKC-normalised
	Email             string `db:"email"`
	EmailVerified     bool   `db:"email_verified"`
	PasswordHash      string `db:"password_hash"` // PHC string (argon2id) or bcrypt
	Disabled          bool   `db:"disabled"`
	PasswordChangedAt Time   `db:"password_changed_at"`
	CreatedAt         Time   `db:"created_at"`
	UpdatedAt         Time   `db:"updated_at"`
}

// UsernameKey is the form usernames are compared in: Unicode NFKC, then case
// folded, then NFKC again (case folding can denormalise). Two usernames with
// the same key are the same account.
func UsernameKey(username string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(username)))
}

// NewID returns a random 128-bit identifier in hex.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

const userColumns = `id, username, email, email_verified, password_hash, disabled,
	password_changed_at, created_at, updated_at`

// CreateUser stores u, filling in ID and timestamps when they are zero.
// A username whose UsernameKey is taken gives ErrConflict.
func (db *DB) CreateUser(ctx context.Context, u *User) error {
	now := At(time.Now())
	if u.ID == "" {
		u.ID = NewID()
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.PasswordChangedAt.IsZero() {
		u.PasswordChangedAt = u.CreatedAt
	}
	u.UpdatedAt = u.CreatedAt
	_, err := db.x.ExecContext(ctx, db.q(`INSERT INTO users (`+userColumns+`, username_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.Username, u.Email, u.EmailVerified, u.PasswordHash, u.Disabled,
		u.PasswordChangedAt, u.CreatedAt, u.UpdatedAt, UsernameKey(u.Username))
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, classify(err))
	}
	return nil
}

// User returns the user with the given id.
func (db *DB) User(ctx context.Context, id string) (User, error) {
	var u User
	err := db.get(ctx, &u, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", id, notFound(err))
	}
	return u, nil
}

// UserByUsername returns the user whose UsernameKey matches username's.
func (db *DB) UserByUsername(ctx context.Context, username string) (User, error) {
	var u User
	err := db.get(ctx, &u, `SELECT `+userColumns+` FROM users WHERE username_key = ?`, UsernameKey(username))
	if err != nil {
		return User{}, fmt.Errorf("get user by name: %w", notFound(err))
	}
	return u, nil
}

// Users lists users ordered by username, at most limit of them (0: all)
// after skipping offset.
func (db *DB) Users(ctx context.Context, offset, limit int) ([]User, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	var us []User
	err := db.x.SelectContext(ctx, &us, db.q(`SELECT `+userColumns+` FROM users
		ORDER BY username_key LIMIT ? OFFSET ?`), limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser reads the user, lets update change it, and writes it back in one
// transaction. The id cannot change; a renamed user gets ErrConflict when the
// new name is taken. When update returns an error nothing is written.
func (db *DB) UpdateUser(ctx context.Context, id string, update func(*User) error) (User, error) {
	var u User
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &u, db.q(`SELECT `+userColumns+` FROM users WHERE id = ?`+db.forUpdate()), id); err != nil {
			return notFound(err)
		}
		if err := update(&u); err != nil {
			return err
		}
		u.ID = id
		u.UpdatedAt = At(time.Now())
		_, err := tx.ExecContext(ctx, db.q(`UPDATE users SET username = ?, username_key = ?, email = ?,
			email_verified = ?, password_hash = ?, disabled = ?, password_changed_at = ?, updated_at = ?
			WHERE id = ?`),
			u.Username, UsernameKey(u.Username), u.Email, u.EmailVerified, u.PasswordHash, u.Disabled,
			u.PasswordChangedAt, u.UpdatedAt, id)
		return classify(err)
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %q: %w", id, err)
	}
	return u, nil
}

// DeleteUser removes the user and, by cascade, their refresh-token families.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	res, err := db.x.ExecContext(ctx, db.q(`DELETE FROM users WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete user %q: %w", id, ErrNotFound)
	}
	return nil
}

// CountUsers returns how many users exist.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.x.GetContext(ctx, &n, `SELECT COUNT(*) FROM users`); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}
