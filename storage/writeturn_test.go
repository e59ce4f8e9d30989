package storage_test

import (
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestSQLiteWritersQueueWithoutConnections: on SQLite, write transactions
// that find another one running wait for their turn in the process
// (storage's writeTurn), holding no pooled connection and never polling
// SQLite's lock from its busy handler. Before, each waiting writer held a
// connection inside BEGIN IMMEDIATE, so a few writers used the whole pool
// and the readers and writers behind them waited for connections that
// database/sql hands out in random order: the seconds-long tail of
// concurrent refreshes.
func TestSQLiteWritersQueueWithoutConnections(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	ctx := t.Context()
	for _, id := range []string{"held", "other"} {
		if err := db.CreateClient(ctx, &storage.Client{ID: id, Name: id, AuthMethod: storage.AuthSecretBasic}); err != nil {
			t.Fatal(err)
		}
	}
	inside, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := db.UpdateClient(ctx, "held", func(c *storage.Client) error {
			close(inside)
			<-release
			c.Name = "held longer"
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-inside
	const writers = 20
	for i := range writers {
		wg.Go(func() {
			if _, err := db.RecordFailures(ctx, time.Now(), storage.Failure{Key: "k" + string(rune('a'+i)), Policy: func(storage.Counter) (time.Time, time.Time) {
				return time.Time{}, time.Now().Add(time.Hour)
			}}); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the writers reach their wait

	// Readers are served meanwhile (WAL), and the waiting writers hold
	// no connection: only the running transaction's is in use.
	if _, err := db.Client(ctx, "other"); err != nil {
		t.Fatalf("read during a write: %v", err)
	}
	if st := db.SQL().Stats(); st.InUse > 1 {
		t.Errorf("%d connections in use while one transaction runs and %d writers wait (open %d, max %d)",
			st.InUse, writers, st.OpenConnections, st.MaxOpenConnections)
	}
	close(release)
	wg.Wait()
	cs, err := db.Counters(ctx, "ka", "kt")
	if err != nil || len(cs) != 2 {
		t.Fatalf("after the writers: %v, %v", cs, err)
	}
}

// TestPostgresCounterWritersBounded: on PostgreSQL, failed-login bursts on
// one counter row queue in the process, holding no pooled connection,
// once a few of them wait for the row lock: before, each waiting
// transaction held one, and a burst of failures took the whole pool from
// every other request.
func TestPostgresCounterWritersBounded(t *testing.T) {
	db := storagetest.OpenPostgres(t)
	ctx := t.Context()
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func(storage.Counter) (time.Time, time.Time) {
		once.Do(func() { close(inside); <-release })
		return time.Time{}, time.Now().Add(time.Hour)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := db.RecordFailures(ctx, time.Now(), storage.Failure{Key: "l:hot", Policy: hold}); err != nil {
			t.Error(err)
		}
	})
	<-inside
	const writers = 20
	for range writers {
		wg.Go(func() {
			if _, err := db.RecordFailures(ctx, time.Now(), storage.Failure{Key: "l:hot", Policy: hold}); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the writers reach the row lock or their turn
	if st := db.SQL().Stats(); st.InUse > 5 {
		t.Errorf("%d connections in use while %d failures wait for one counter row (max %d)", st.InUse, writers, st.MaxOpenConnections)
	}
	if _, err := db.Counters(ctx, "l:hot"); err != nil {
		t.Fatalf("read while the row is locked: %v", err)
	}
	close(release)
	wg.Wait()
	cs, err := db.Counters(ctx, "l:hot")
	if err != nil || cs["l:hot"].Failures != writers+1 {
		t.Fatalf("after the burst: %+v, %v", cs, err)
	}
}
