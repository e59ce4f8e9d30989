package storage

import (
	"context"
	"errors"
)

// SynchronousCommit reports PostgreSQL's synchronous_commit on the
// connection of the audit rows nobody waits for (lazy) or on one of the
// pool's (not lazy).
func SynchronousCommit(ctx context.Context, db *DB, lazy bool) (string, error) {
	var v string
	if lazy {
		db.lazyMu.Lock()
		defer db.lazyMu.Unlock()
		if db.lazyAudit == nil {
			return "", errors.New("no lazy audit connection")
		}
		return v, db.lazyAudit.QueryRowxContext(ctx, `SHOW synchronous_commit`).Scan(&v)
	}
	return v, db.x.QueryRowxContext(ctx, `SHOW synchronous_commit`).Scan(&v)
}

// PGTurns is how many pooled connections the turns hand out on PostgreSQL
// without WithPool.
const PGTurns = DefaultPool - 2

// TurnsTaken is how many turns are taken now.
func TurnsTaken(db *DB) int { return len(db.turns) }

// AppendLazily runs query on the lazy audit connection, as a lazy audit
// write does.
func AppendLazily(ctx context.Context, db *DB, query string) error {
	return db.appendLazily(ctx, query, nil)
}
