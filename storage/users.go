package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode"

	"github.com/jmoiron/sqlx"
	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// User is an account that signs in with a password.
type User struct {
	ID                string `db:"id"`       // stable random id; the token's sub
	Username          string `db:"username"` // as entered, NFKC-normalised
	Email             string `db:"email"`
	EmailVerified     bool   `db:"email_verified"`
	EmailPending      string `db:"email_pending"` // a new address awaiting verification; "" for none
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

// ErrLookalike reports a username whose UsernameSkeleton another account's
// username has: it would look like that name. errors.Is(err, ErrConflict) holds
// for it too.
var ErrLookalike = fmt.Errorf("%w: looks like an existing username", ErrConflict)

// UsernameSkeleton is the form in which usernames that look alike are equal
// (UTS #39 §4, confusable detection), so "alice", "аlice" (Cyrillic а),
// "alicė", "a1ice" and "ALICE" share one. It starts from UsernameKey, then
// repeats until nothing changes: drop the combining marks on Latin, Greek and
// Cyrillic letters (after NFD), map each character by Unicode's confusables
// table (UTS #39's skeleton: NFD, map, NFD) and case fold, since the table's
// targets may be capitals (0 → O). UTS #39's skeleton keeps diacritics;
// dropping them catches alicė, at the cost that "rené" cannot sit beside
// "rene". Marks in other scripts (Devanagari vowel signs, Hebrew points) are
// part of the letters and are kept.
func UsernameSkeleton(username string) string {
	s := UsernameKey(username)
	for range 4 {
		next := cases.Fold().String(confusables.Skeleton(stripMarks(s)))
		next = stripMarks(next)
		if next == s {
			break
		}
		s = next
	}
	return s
}

// stripMarks returns s in NFD without the nonspacing and enclosing marks that
// follow a Latin, Greek or Cyrillic letter (or a character common to scripts).
func stripMarks(s string) string {
	d := norm.NFD.String(s)
	out := make([]rune, 0, len(d))
	drop := false // the last base character's marks are dropped
	for _, r := range d {
		if unicode.In(r, unicode.Mn, unicode.Me) {
			if !drop {
				out = append(out, r)
			}
			continue
		}
		drop = unicode.In(r, unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Common)
		out = append(out, r)
	}
	return string(out)
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
	password_changed_at, created_at, updated_at, email_pending`

// insertUser stores one user; insertUserArgs are its arguments. CreateUser
// and ImportUsers share them, so a new column reaches both.
const insertUser = `INSERT INTO users (` + userColumns + `, username_key, username_skeleton)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// fillNewUser gives a user about to be stored its defaults: a new ID,
// CreatedAt now, PasswordChangedAt its creation.
func fillNewUser(u *User, now Time) {
	if u.ID == "" {
		u.ID = NewID()
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.PasswordChangedAt.IsZero() {
		u.PasswordChangedAt = u.CreatedAt
	}
}

func insertUserArgs(u *User) []any {
	return []any{u.ID, u.Username, u.Email, u.EmailVerified, u.PasswordHash, u.Disabled,
		u.PasswordChangedAt, u.CreatedAt, u.UpdatedAt, u.EmailPending, UsernameKey(u.Username), UsernameSkeleton(u.Username)}
}

// CreateUser stores u, filling in ID and timestamps when they are zero.
// A username whose UsernameKey is taken gives ErrConflict; one whose
// UsernameSkeleton is taken (it looks like an existing name) ErrLookalike.
func (db *DB) CreateUser(ctx context.Context, u *User) error {
	fillNewUser(u, At(time.Now()))
	u.UpdatedAt = u.CreatedAt
	_, err := db.exec(ctx, insertUser, insertUserArgs(u)...)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, db.nameConflict(ctx, u.Username, classify(err)))
	}
	return nil
}

// nameConflict turns err, ErrConflict from writing username, into ErrLookalike
// when the name itself (its UsernameKey) is free, so only its skeleton clashed.
func (db *DB) nameConflict(ctx context.Context, username string, err error) error {
	if !errors.Is(err, ErrConflict) {
		return err
	}
	var n int
	if qerr := db.get(ctx, &n, `SELECT COUNT(*) FROM users WHERE username_key = ?`, UsernameKey(username)); qerr == nil && n == 0 {
		return ErrLookalike
	}
	return err
}

// fillSkeletons sets username_skeleton where it is NULL: rows from before
// migration 00009, or written by a replica that does not know the column yet.
// A row whose skeleton another row holds already (two look-alike names made
// before the check existed) keeps NULL: both accounts go on working, and a
// new name that looks like them is refused through the other. Migrate runs it.
func (db *DB) fillSkeletons(ctx context.Context) error {
	var rows []struct {
		ID       string `db:"id"`
		Username string `db:"username"`
	}
	if err := db.selOnce(ctx, &rows, `SELECT id, username FROM users
		WHERE username_skeleton IS NULL ORDER BY created_at, id`); err != nil {
		return fmt.Errorf("fill username skeletons: %w", err)
	}
	for _, r := range rows {
		_, err := db.exec(ctx, `UPDATE users SET username_skeleton = ? WHERE id = ?`,
			UsernameSkeleton(r.Username), r.ID)
		if err = classify(err); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("fill username skeleton of user %q: %w", r.ID, err)
		}
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

// UserByVerifiedEmail returns the oldest user whose verified address is
// email, compared case-insensitively; ErrNotFound when none has it verified.
func (db *DB) UserByVerifiedEmail(ctx context.Context, email string) (User, error) {
	var u User
	err := db.get(ctx, &u, `SELECT `+userColumns+` FROM users
		WHERE lower(email) = lower(?) AND email_verified = ? ORDER BY created_at, id LIMIT 1`, email, true)
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", notFound(err))
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
	err := db.selOnce(ctx, &us, `SELECT `+userColumns+` FROM users
		ORDER BY username_key LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser reads the user, lets update change it, and writes it back in one
// transaction. The id cannot change; a renamed user gets ErrConflict when the
// new name is taken (ErrLookalike when it looks like a taken one). The
// skeleton is written only when the name changes, so a row that kept none
// (fillSkeletons) stays updatable. When update returns an error nothing is written.
func (db *DB) UpdateUser(ctx context.Context, id string, update func(*User) error) (User, error) {
	var u User
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &u, db.q(`SELECT `+userColumns+` FROM users WHERE id = ?`+db.forUpdate()), id); err != nil {
			return notFound(err)
		}
		oldKey := UsernameKey(u.Username)
		if err := update(&u); err != nil {
			return err
		}
		u.ID = id
		u.UpdatedAt = At(time.Now())
		_, err := tx.ExecContext(ctx, db.q(`UPDATE users SET username = ?, username_key = ?, email = ?,
			email_verified = ?, password_hash = ?, disabled = ?, password_changed_at = ?, updated_at = ?,
			email_pending = ? WHERE id = ?`),
			u.Username, UsernameKey(u.Username), u.Email, u.EmailVerified, u.PasswordHash, u.Disabled,
			u.PasswordChangedAt, u.UpdatedAt, u.EmailPending, id)
		if err == nil && UsernameKey(u.Username) != oldKey {
			_, err = tx.ExecContext(ctx, db.q(`UPDATE users SET username_skeleton = ? WHERE id = ?`),
				UsernameSkeleton(u.Username), id)
			if errors.Is(classify(err), ErrConflict) {
				return ErrLookalike
			}
		}
		return classify(err)
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %q: %w", id, err)
	}
	return u, nil
}

// DeleteUser removes the user and, by cascade, their refresh-token families.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	res, err := db.exec(ctx, `DELETE FROM users WHERE id = ?`, id)
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
	if err := db.getOnce(ctx, &n, `SELECT COUNT(*) FROM users`); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}
