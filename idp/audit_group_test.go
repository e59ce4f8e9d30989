package idp

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// countingAudits counts the writes that reach the database.
type countingAudits struct {
	*storage.DB
	mu     sync.Mutex
	writes int
}

func (c *countingAudits) AppendAudits(ctx context.Context, es []*storage.AuditEvent) error {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.DB.AppendAudits(ctx, es)
}

// TestAuditGroupCommit records many events at once on both backends: every
// row is stored with its own fields by the time Record returns, and
// concurrent records share writes.
func TestAuditGroupCommit(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			store := &countingAudits{DB: storagetest.Open(t, b.DSN(t))}
			a := NewAuditor(store, nil, nil, 0)
			const n = 200
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ctx := requestCtx(t.Context(), fmt.Sprintf("req-%03d", i), "127.0.0.1")
					a.Record(ctx, Event{Type: EventTokenIssued, Subject: fmt.Sprintf("sub-%03d", i), ClientID: "c"})
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
