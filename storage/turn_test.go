package storage_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestPoolTurnsFirstComeFirstServed: on PostgreSQL, what waits for a
// pooled connection is served in the order it came (database/sql alone
// hands a freed connection to a random waiter), and a waiter whose context
// ends leaves the queue without taking a turn.
//
// All turns but one are held by reads blocked on a locked table, the last
// by a read blocked on another; eight audit writes then queue, each
// parked before the next starts. Unlocking the second table frees one
// turn, which passes through the writers one at a time: the ids
// PostgreSQL gives their rows must rise in the order they queued.
func TestPoolTurnsFirstComeFirstServed(t *testing.T) {
	db, raw := openBeside(t)
	ctx := t.Context()
	counters, clients := raw.lock("throttle_counters"), raw.lock("clients")
	defer counters.Rollback()
	defer clients.Rollback()

	var held sync.WaitGroup
	for i := range storage.PGTurns - 1 {
		held.Go(func() {
			if _, err := db.Counter(ctx, fmt.Sprint("held-", i)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("blocked read %d: %v", i, err)
			}
		})
	}
	held.Go(func() {
		if _, err := db.Clients(ctx); err != nil {
			t.Errorf("blocked clients read: %v", err)
		}
	})
	testsupport.Eventually(t, "every turn's read to wait for its lock", 30*time.Second, func() bool {
		return raw.lockWaiters() == storage.PGTurns
	})

	const writers, cancelled = 8, 3
	ids := make([]int64, writers)
	errs := make([]error, writers)
	var queued sync.WaitGroup
	cancel := func() {}
	for i := range writers {
		wctx := ctx
		if i == cancelled {
			wctx, cancel = context.WithCancel(ctx)
		}
		queued.Go(func() {
			e := &storage.AuditEvent{Type: "login", Actor: fmt.Sprint("writer-", i)}
			errs[i] = db.AppendAudit(wctx, e)
			ids[i] = e.ID
		})
		testsupport.Eventually(t, fmt.Sprintf("writer %d to queue for a turn", i), 30*time.Second, func() bool { return parkedInTurn() == i+1 })
	}
	cancel()
	testsupport.Eventually(t, "the cancelled writer to leave the queue", 30*time.Second, func() bool { return parkedInTurn() == writers-1 })
	if err := clients.Commit(); err != nil {
		t.Fatal(err)
	}
	queued.Wait()
	if !errors.Is(errs[cancelled], context.Canceled) {
		t.Errorf("the writer whose context ended: %v, want context.Canceled", errs[cancelled])
	}
	var last int64
	for i := range writers {
		if i == cancelled {
			continue
		}
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if ids[i] <= last {
			t.Errorf("writer %d stored row %d after row %d: served out of order (ids %v)", i, ids[i], last, ids)
		}
		last = ids[i]
	}
	if err := counters.Commit(); err != nil {
		t.Fatal(err)
	}
	held.Wait()
	if n := storage.TurnsTaken(db); n != 0 {
		t.Errorf("%d turns still taken after every use ended", n)
	}
}

// parkedInTurn counts the goroutines asleep in turn's select on the turns channel: parked,
// so queued in the order they came.
func parkedInTurn() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	parked := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, "storage.(*DB).turn(") {
			parked++
		}
	}
	return parked
}

// TestHangUpKeepsConnection: on PostgreSQL, a statement or transaction
// that has begun runs to its end when its caller's context is cancelled (a
// client that hung up), and its pooled connection stays open; only the
// caller's deadline cuts it off. lib/pq answers a cancelled context by
// discarding the connection and dialling a cancel request, and opening
// connections again under load stalled requests for seconds.
func TestHangUpKeepsConnection(t *testing.T) {
	db, raw := openBeside(t)
	ctx := t.Context()
	waiting := raw.lockWaiters
	lock := raw.lock("throttle_counters")
	defer lock.Rollback()

	// A read and a transaction, each under a request's deadline, block on
	// the lock; then their callers hang up.
	rctx, hangUp := context.WithTimeout(ctx, time.Minute)
	done := make(chan error, 2)
	go func() {
		_, err := db.Counter(rctx, "hang-up-read")
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		done <- err
	}()
	go func() {
		_, err := db.RecordFailures(rctx, time.Now(), storage.Failure{Key: "hang-up-tx", Policy: func(storage.Counter) (time.Time, time.Time) {
			return time.Time{}, time.Now().Add(time.Hour)
		}})
		done <- err
	}()
	testsupport.Eventually(t, "both statements to wait for the lock", 30*time.Second, func() bool { return waiting() == 2 })
	open := db.SQL().Stats().OpenConnections
	hangUp()
	select {
	case err := <-done:
		t.Fatalf("a statement returned when its caller hung up (%v): it was cancelled", err)
	case <-time.After(500 * time.Millisecond):
	}
	if n := waiting(); n != 2 {
		t.Fatalf("%d statements still waiting in PostgreSQL after the hang-up, want 2: a cancel request reached it", n)
	}
	if err := lock.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("statement begun before the hang-up: %v", err)
		}
	}
	if n := db.SQL().Stats().OpenConnections; n != open {
		t.Errorf("%d connections open after the hang-ups, want %d: a connection was discarded", n, open)
	}
	if _, err := db.Counter(ctx, "hang-up-tx"); err != nil {
		t.Errorf("the hung-up transaction's counter: %v", err)
	}

	// The deadline still ends a statement.
	lock = raw.lock("throttle_counters")
	defer lock.Rollback()
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := db.Counter(dctx, "hang-up-read"); !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(fmt.Sprint(err), "canceling statement") {
		t.Errorf("a read past its deadline: %v, want it cut off", err)
	}
}

// TestFixedPool: WithPool opens its connections in Open, and the same
// server processes serve a burst of concurrent statements, some of whose
// callers hang up: none is closed and none opened after Open.
func TestFixedPool(t *testing.T) {
	const size = 5
	db, raw := openBeside(t, storage.WithPool(size))
	raw.SetMaxOpenConns(1) // its own connection is the one it leaves out
	ctx := t.Context()
	backends := func() []int {
		var pids []int
		if err := raw.SelectContext(ctx, &pids, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid`); err != nil {
			t.Fatal(err)
		}
		return pids
	}
	if n := db.SQL().Stats().OpenConnections; n != size {
		t.Fatalf("%d connections open after Open, want %d", n, size)
	}
	before := backends()
	if len(before) != size {
		t.Fatalf("PostgreSQL serves %d connections of the pool after Open, want %d", len(before), size)
	}

	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if i%4 == 0 {
				cancel() // hung up before its turn or during its statement
			}
			if _, err := db.Counter(rctx, fmt.Sprint("burst-", i)); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, context.Canceled) {
				t.Errorf("read %d: %v", i, err)
			}
			if err := db.AppendAudits(rctx, []*storage.AuditEvent{{Type: "login", Actor: fmt.Sprint("burst-", i)}}, false); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("lazy audit write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if after := backends(); !slices.Equal(after, before) {
		t.Errorf("PostgreSQL backends %v after the burst, want the same as after Open, %v", after, before)
	}
	if n := db.SQL().Stats().OpenConnections; n != size {
		t.Errorf("%d connections open after the burst, want %d", n, size)
	}

	for _, n := range []int{storage.MinPool - 1, 1, -1} {
		if _, err := storage.Open(ctx, raw.dsn, storage.WithPool(n)); err == nil {
			t.Errorf("a pool of %d opened", n)
		}
	}
}

// beside is a second handle on a test's PostgreSQL database, outside the
// DB's pool and turns, one connection at a time: it locks tables and
// watches PostgreSQL.
type beside struct {
	*sqlx.DB
	t   *testing.T
	dsn string
}

// openBeside opens a fresh migrated PostgreSQL database with opts and a
// handle beside it.
func openBeside(t *testing.T, opts ...storage.Option) (*storage.DB, beside) {
	dsn := storagetest.PostgresDSN(t)
	db := storagetest.Open(t, dsn, opts...)
	raw, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, beside{DB: raw, t: t, dsn: dsn}
}

// lock begins a transaction holding table in ACCESS EXCLUSIVE mode.
func (b beside) lock(table string) *sqlx.Tx {
	tx, err := b.BeginTxx(b.t.Context(), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := tx.ExecContext(b.t.Context(), `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		b.t.Fatal(err)
	}
	return tx
}

// lockWaiters is how many of the database's connections wait for a lock.
func (b beside) lockWaiters() int {
	var n int
	if err := b.GetContext(b.t.Context(), &n, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`); err != nil {
		b.t.Fatal(err)
	}
	return n
}
