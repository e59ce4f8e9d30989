package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// countingAudits counts the writes that reach the database.
type countingAudits struct {
	*storage.DB
	mu     sync.Mutex
	writes int
}

func (c *countingAudits) AppendAudits(ctx context.Context, es []*storage.AuditEvent, durable bool) error {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.DB.AppendAudits(ctx, es, durable)
}

// TestAuditGroupCommit records many events at once on both backends: every
// row is stored with its own fields by the time Record returns, and
// concurrent records share writes.
func TestAuditGroupCommit(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			store := &countingAudits{DB: storagetest.Open(t, b.DSN(t))}
			a := New(store, nil, nil, 0)
			const n = 200
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ctx := requestCtx(t.Context(), fmt.Sprintf("req-%03d", i), "127.0.0.1")
					a.Record(ctx, Event{Type: TokenIssued, Subject: fmt.Sprintf("sub-%03d", i), ClientID: "c"})
					// Stored by the time Record returns.
					evs, err := store.AuditEvents(t.Context(), storage.AuditFilter{Subject: fmt.Sprintf("sub-%03d", i)})
					if err != nil || len(evs) != 1 || evs[0].RequestID != fmt.Sprintf("req-%03d", i) {
						t.Errorf("event %d after Record: %v %+v", i, err, evs)
					}
				})
			}
			wg.Wait()
			evs, err := store.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit})
			if err != nil || len(evs) != n {
				t.Fatalf("%d rows stored, want %d (%v)", len(evs), n, err)
			}
			if store.writes >= n {
				t.Errorf("%d writes for %d concurrent events: no group commit", store.writes, n)
			}
			t.Logf("%d events in %d writes", n, store.writes)
		})
	}
}

// gatedAudits holds every write until open is closed; a value sent on
// open lets one write through.
type gatedAudits struct {
	*storage.DB
	open chan struct{}
}

func (g *gatedAudits) AppendAudits(ctx context.Context, es []*storage.AuditEvent, durable bool) error {
	<-g.open
	return g.DB.AppendAudits(ctx, es, durable)
}

// TestAuditRecordAsync: RecordAsync answers before the row is written,
// Flush waits for it, concurrent rows share writes, and a queue at its
// bound makes RecordAsync wait for room instead of growing.
func TestAuditRecordAsync(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := storagetest.Open(t, b.DSN(t))
			gate := &gatedAudits{DB: db, open: make(chan struct{})}
			a := New(gate, nil, nil, 0)
			ctx := requestCtx(t.Context(), "req-async", "127.0.0.1")

			// With every write held, RecordAsync still returns.
			returned := make(chan struct{})
			go func() {
				a.RecordAsync(ctx, Event{Type: TokenIssued, Subject: "first", ClientID: "c"})
				close(returned)
			}()
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("RecordAsync waited for the write")
			}

			// Up to the bound, rows queue; past it, the caller waits.
			var recorded atomic.Int64
			const total = maxAuditQueue + 2*maxAuditBatch
			finished := make(chan struct{})
			go func() {
				for i := range total {
					a.RecordAsync(ctx, Event{Type: TokenIssued, Subject: fmt.Sprintf("q-%05d", i), ClientID: "c"})
					recorded.Add(1)
				}
				close(finished)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for recorded.Load() < maxAuditQueue-maxAuditBatch && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // ample time to queue the rest, were it unbounded
			select {
			case <-finished:
				t.Fatalf("%d rows queued behind a held write: the queue is unbounded", total)
			default:
			}
			// The held write may have taken a batch of them first.
			before := recorded.Load()
			if before < maxAuditQueue-maxAuditBatch || before > maxAuditQueue+maxAuditBatch {
				t.Errorf("%d rows recorded before waiting, want %d to %d", before, maxAuditQueue, maxAuditQueue+maxAuditBatch)
			}

			// The caller past the bound waits for room, not for the rows
			// ahead of it: one write ends, the writer takes the next batch
			// off the queue, and the caller's row goes in while the queue
			// is still all but full and its rows unwritten.
			gate.open <- struct{}{}
			for recorded.Load() == before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if after := recorded.Load(); after == before {
				t.Fatalf("after one write, RecordAsync still waits (%d rows recorded): it waits for its own row, behind the whole queue", after)
			}
			select {
			case <-finished:
				t.Fatal("every row queued after one write: the queue is unbounded")
			default:
			}

			close(gate.open)
			<-finished
			a.Flush()
			evs, err := db.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit})
			if err != nil {
				t.Fatal(err)
			}
			n, err := countAuditRows(t, db)
			if err != nil || n != total+1 {
				t.Fatalf("%d rows after Flush, want %d (%v)", n, total+1, err)
			}
			if evs[0].RequestID != "req-async" || evs[0].IP != "127.0.0.1" {
				t.Errorf("row lost its request: %+v", evs[0])
			}
		})
	}
}

// TestAuditRecordAsyncFailure: a row whose write fails is logged as such,
// with its request id, and Flush still returns.
func TestAuditRecordAsyncFailure(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLiteDSN(t))
	logs := &bytes.Buffer{}
	a := New(db, jsonLogger(logs), nil, 0)
	db.Close() // a database that is gone
	a.RecordAsync(requestCtx(t.Context(), "req-lost", "127.0.0.1"), Event{Type: TokenIssued, Subject: "s"})
	a.Flush()
	if out := logs.String(); !strings.Contains(out, `"msg":"audit write failed"`) || !strings.Contains(out, `"request_id":"req-lost"`) {
		t.Errorf("failed write not logged with its request:\n%s", out)
	}
}

// countAuditRows counts every audit row, past the listing's limit.
func countAuditRows(t *testing.T, db *storage.DB) (int, error) {
	t.Helper()
	n := 0
	var before int64
	for {
		evs, err := db.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit, BeforeID: before})
		if err != nil || len(evs) == 0 {
			return n, err
		}
		n += len(evs)
		before = evs[len(evs)-1].ID
	}
}
