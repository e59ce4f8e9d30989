package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Counter is a throttle counter: the failures recorded under one key (an
// account, an account and IP, an IP, a client), shared by every replica.
// Keys are chosen by the caller; keep them short (hash what a client sent).
type Counter struct {
	Key          string `db:"key"`
	Failures     int    `db:"failures"`
	BlockedUntil Time   `db:"blocked_until"` // zero when not blocked
	UpdatedAt    Time   `db:"updated_at"`    // the last failure
	ExpiresAt    Time   `db:"expires_at"`    // after this the counter counts as absent
}

// Live reports whether the counter still counts at now.
func (c Counter) Live(now time.Time) bool { return now.Before(c.ExpiresAt.Time) }

// Backoff decides, for a counter that has just been incremented, until when
// its key is blocked and when the counter may be forgotten. It receives the
// new Failures and the counter's previous BlockedUntil and ExpiresAt (both
// zero when this failure starts a new count), and UpdatedAt set to now.
// It runs inside the recording transaction, so it must not do I/O.
type Backoff func(c Counter) (blockedUntil, expiresAt time.Time)

// Failure is one counter to increment and the Backoff that decides its block.
type Failure struct {
	Key    string
	Policy Backoff
}

const counterColumns = `key, failures, blocked_until, updated_at, expires_at`

// RecordFailure increments the counter at key and sets its block and expiry
// by policy, in one transaction, and returns the counter as stored. A
// counter that had expired starts again at 1.
func (db *DB) RecordFailure(ctx context.Context, key string, now time.Time, policy Backoff) (Counter, error) {
	cs, err := db.RecordFailures(ctx, now, Failure{Key: key, Policy: policy})
	if err != nil {
		return Counter{}, err
	}
	return cs[0], nil
}

// RecordFailures increments several counters in one transaction (see
// RecordFailure) and returns them in the order given. Rows are locked in key
// order so concurrent callers cannot deadlock.
func (db *DB) RecordFailures(ctx context.Context, now time.Time, fs ...Failure) ([]Counter, error) {
	at := At(now)
	order := make([]int, len(fs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case fs[a].Key < fs[b].Key:
			return -1
		case fs[a].Key > fs[b].Key:
			return 1
		}
		return 0
	})
	out := make([]Counter, len(fs))
	release, err := db.counterTurn(ctx)
	if err != nil {
		return nil, fmt.Errorf("record throttle failure: %w", err)
	}
	defer release()
	err = db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		for _, i := range order {
			f := fs[i]
			// The upsert takes the row lock (PostgreSQL) or runs under the
			// write lock of the IMMEDIATE transaction (SQLite), so the update
			// below sees no other writer in between. SET reads the old row.
			var c Counter
			err := tx.GetContext(ctx, &c, db.q(`INSERT INTO throttle_counters AS c (`+counterColumns+`)
				VALUES (?, 1, 0, ?, 0)
				ON CONFLICT (key) DO UPDATE SET
					failures      = CASE WHEN c.expires_at <= excluded.updated_at THEN 1 ELSE c.failures + 1 END,
					blocked_until = CASE WHEN c.expires_at <= excluded.updated_at THEN 0 ELSE c.blocked_until END,
					expires_at    = CASE WHEN c.expires_at <= excluded.updated_at THEN 0 ELSE c.expires_at END,
					updated_at    = excluded.updated_at
				RETURNING `+counterColumns), f.Key, at)
			if err != nil {
				return fmt.Errorf("increment: %w", err)
			}
			blocked, expires := f.Policy(c)
			if b := At(blocked); b.After(c.BlockedUntil.Time) {
				c.BlockedUntil = b // a new failure never shortens a block
			}
			c.ExpiresAt = At(expires)
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE throttle_counters SET blocked_until = ?, expires_at = ? WHERE key = ?`),
				c.BlockedUntil, c.ExpiresAt, f.Key); err != nil {
				return fmt.Errorf("set block: %w", err)
			}
			out[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record throttle failure: %w", err)
	}
	return out, nil
}

// maxCounterWriters is how many RecordFailures transactions one process
// runs at once on PostgreSQL (counterTurn), and never more than half its
// turns: 3 with the default pool of 8.
const maxCounterWriters = 4

// counterTurn waits, on PostgreSQL, until fewer than maxCounterWriters
// RecordFailures transactions of this process run. A burst of failed logins
// for one account all update that account's counter row, and each
// transaction waiting for the row lock held a pooled connection: a burst of
// a thousand wrong passwords took all 32, and every other request of the
// process, whatever it was, then waited for a connection (database/sql
// hands a freed one to a random waiter), seconds at a time. Waiting here
// holds none; the row lock still orders the writers of every replica. On
// SQLite the write turn already does this.
func (db *DB) counterTurn(ctx context.Context) (func(), error) {
	if db.counterWriters == nil {
		return func() {}, nil
	}
	select {
	case db.counterWriters <- struct{}{}:
		return func() { <-db.counterWriters }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SetCounter stores c as given, replacing any counter at c.Key. Throttling
// uses it for markers (an IP an account recently signed in from).
func (db *DB) SetCounter(ctx context.Context, c Counter) error {
	_, err := db.exec(ctx, `INSERT INTO throttle_counters (`+counterColumns+`)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, blocked_until = excluded.blocked_until,
			updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
		c.Key, c.Failures, c.BlockedUntil, c.UpdatedAt, c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("set throttle counter: %w", err)
	}
	return nil
}

// Counter returns the counter at key, expired or not, or ErrNotFound.
func (db *DB) Counter(ctx context.Context, key string) (Counter, error) {
	var c Counter
	err := db.getOnce(ctx, &c, `SELECT `+counterColumns+` FROM throttle_counters WHERE key = ?`, key)
	if err != nil {
		return Counter{}, fmt.Errorf("get throttle counter: %w", notFound(err))
	}
	return c, nil
}

// Counters returns, in one query, the counters that exist among keys, by key.
// Expired counters are included; Counter.Live tells them apart.
func (db *DB) Counters(ctx context.Context, keys ...string) (map[string]Counter, error) {
	out := make(map[string]Counter, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	var cs []Counter
	if err := db.sel(ctx, &cs, countersQuery(len(keys)), args...); err != nil {
		return nil, fmt.Errorf("get throttle counters: %w", err)
	}
	for _, c := range cs {
		out[c.Key] = c
	}
	return out, nil
}

// countersQueries are Counters' queries by number of keys, built once
// (the throttle asks for 2 or 4 keys on every request).
var countersQueries sync.Map // int → string

func countersQuery(n int) string {
	if q, ok := countersQueries.Load(n); ok {
		return q.(string)
	}
	q := `SELECT ` + counterColumns + ` FROM throttle_counters WHERE key IN (?` + strings.Repeat(", ?", n-1) + `)`
	countersQueries.Store(n, q)
	return q
}

// ResetCounters deletes the counters at keys (a successful login).
func (db *DB) ResetCounters(ctx context.Context, keys ...string) error {
	// One statement per key: a statement that deleted several rows would
	// lock them in the index's collation order, which need not be the byte
	// order RecordFailures locks in, and two such writers can deadlock
	// (PostgreSQL 40P01). One row lock at a time cannot.
	for _, key := range keys {
		if _, err := db.exec(ctx, `DELETE FROM throttle_counters WHERE key = ?`, key); err != nil {
			return fmt.Errorf("reset throttle counters: %w", err)
		}
	}
	return nil
}

// ResetCountersWithPrefix deletes every counter whose key starts with prefix
// (an operator unlocking an account) and returns how many it deleted. The
// prefix is compared byte for byte, never as a LIKE pattern.
func (db *DB) ResetCountersWithPrefix(ctx context.Context, prefix string) (int64, error) {
	if prefix == "" {
		return 0, fmt.Errorf("reset throttle counters: empty prefix")
	}
	res, err := db.exec(ctx, `DELETE FROM throttle_counters WHERE substr(key, 1, ?) = ?`, utf8.RuneCountInString(prefix), prefix)
	if err != nil {
		return 0, fmt.Errorf("reset throttle counters with prefix: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteExpiredCounters deletes counters that expired by now and returns how
// many it deleted.
func (db *DB) DeleteExpiredCounters(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM throttle_counters WHERE expires_at <= ?`, At(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired throttle counters: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
