//go:build faultinject

package storage

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
)

// AckBeforeCommitDelay is how long a transaction of a faultinject build
// stays open after inTx has already reported it committed, unless
// KEYWARD_FAULT_COMMIT_DELAY (a duration) says otherwise.
const AckBeforeCommitDelay = 500 * time.Millisecond

// FaultArmDelay is how long after the process starts the switch below
// takes effect: startup (migrations, the first signing keys) commits
// normally, so the server starts at all.
const FaultArmDelay = 3 * time.Second

// In a build with the faultinject tag, KEYWARD_FAULT_ACK_BEFORE_COMMIT=1
// makes every transaction begun from FaultArmDelay after start report
// success before it commits: inTx returns nil as soon as fn has, and the
// commit follows AckBeforeCommitDelay (or KEYWARD_FAULT_COMMIT_DELAY)
// later in the background. A fault in
// that window (the database stopped, the connection killed, the process
// ended) loses what the caller was told was stored. It is the broken server
// the tests of internal/faults must catch; no normal build contains this
// file.
func init() {
	if os.Getenv("KEYWARD_FAULT_ACK_BEFORE_COMMIT") != "1" {
		return
	}
	delay := AckBeforeCommitDelay
	if d, err := time.ParseDuration(os.Getenv("KEYWARD_FAULT_COMMIT_DELAY")); err == nil {
		delay = d
	}
	armed := time.Now().Add(FaultArmDelay)
	time.AfterFunc(FaultArmDelay, func() {
		fmt.Fprintln(os.Stderr, "keyward: faultinject: transactions now acknowledge before they commit (test only)")
	})
	faultTx = func(ctx context.Context, db *DB, fn func(ctx context.Context, tx *sqlx.Tx) error) error {
		if time.Now().Before(armed) {
			return db.commitTx(ctx, fn)
		}
		return ackBeforeCommit(ctx, db, fn, delay)
	}
}

func ackBeforeCommit(ctx context.Context, db *DB, fn func(ctx context.Context, tx *sqlx.Tx) error, delay time.Duration) error {
	// The transaction must outlive the request that began it: database/sql
	// rolls back a transaction whose context ends.
	tx, err := db.x.BeginTxx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	go func() {
		time.Sleep(delay)
		tx.Commit()
	}()
	return nil
}
