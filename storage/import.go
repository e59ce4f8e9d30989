package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ImportError is the error of ImportUsers about one of the users it was given: Index
// is its position in the slice, Err ErrConflict (the id or username exists),
// ErrLookalike or the database's error. Nothing of the batch was written.
type ImportError struct {
	Index int
	Err   error
}

func (e *ImportError) Error() string { return fmt.Sprintf("user %d: %v", e.Index, e.Err) }

func (e *ImportError) Unwrap() error { return e.Err }

// ImportUsers stores us in one transaction: all of them or, on any error, none. Each
// keeps its ID when set (a fresh one otherwise), CreatedAt when set (now otherwise) and
// PasswordChangedAt (CreatedAt when zero); UpdatedAt is now. A user whose id or
// username (UsernameKey) exists is skipped when skipExisting, and otherwise fails the
// batch with an *ImportError wrapping ErrConflict; a username that looks like another
// account's fails it with ErrLookalike. It returns the indexes of the skipped users.
func (db *DB) ImportUsers(ctx context.Context, us []User, skipExisting bool) (skipped []int, err error) {
	now := At(time.Now())
	err = db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		exists, err := tx.PreparexContext(ctx, db.q(`SELECT COUNT(*) FROM users WHERE id = ? OR username_key = ?`))
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
		defer exists.Close()
		insert, err := tx.PreparexContext(ctx, db.q(insertUser))
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
		defer insert.Close()
		for i := range us {
			u := &us[i]
			fillNewUser(u, now)
			u.UpdatedAt = now
			key := UsernameKey(u.Username)
			var n int
			if err := exists.GetContext(ctx, &n, u.ID, key); err != nil {
				return &ImportError{i, err}
			}
			if n > 0 {
				if skipExisting {
					skipped = append(skipped, i)
					continue
				}
				return &ImportError{i, fmt.Errorf("%w: the id or username exists", ErrConflict)}
			}
			_, err := insert.ExecContext(ctx, insertUserArgs(u)...)
			if err = classify(err); err != nil {
				if errors.Is(err, ErrConflict) {
					err = ErrLookalike // id and key were free: the skeleton clashed
				}
				return &ImportError{i, err}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return skipped, nil
}
