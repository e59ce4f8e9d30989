package storage_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAuditLazyCommit: on PostgreSQL, audit rows nobody waits for are
// written on a connection of their own whose commits do not wait for the
// WAL flush; they are stored like the others, and the pool's connections,
// which every other write uses, keep their durable commits.
func TestAuditLazyCommit(t *testing.T) {
	db := storagetest.Open(t, storagetest.PostgresDSN(t))
	ctx := t.Context()
	lazy := []*storage.AuditEvent{{Type: "token_issued", Actor: "lazy-1"}, {Type: "token_issued", Actor: "lazy-2"}}
	durable := []*storage.AuditEvent{{Type: "login_failed", Actor: "durable"}}
	if err := db.AppendAudits(ctx, lazy, false); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudits(ctx, durable, true); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuditEvents(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]bool{}
	for _, e := range got {
		actors[e.Actor] = true
	}
	if len(got) != 3 || !actors["lazy-1"] || !actors["lazy-2"] || !actors["durable"] {
		t.Fatalf("stored %+v, want the two lazy rows and the durable one", got)
	}
	if v, err := storage.SynchronousCommit(ctx, db, true); err != nil || v != "off" {
		t.Errorf("the lazy audit connection has synchronous_commit %q (%v), want off", v, err)
	}
	for range 4 { // whichever pooled connection answers
		if v, err := storage.SynchronousCommit(ctx, db, false); err != nil || v != "on" {
			t.Fatalf("a pooled connection has synchronous_commit %q (%v), want on", v, err)
		}
	}

	// A lazy write that fails closes its connection: back in the pool it
	// would make the durable writes lazy too.
	if err := storage.AppendLazily(ctx, db, `INSERT INTO no_such_table VALUES (1)`); err == nil {
		t.Fatal("an INSERT into a missing table succeeded")
	}
	n := db.SQL().Stats().OpenConnections
	var held []*sqlx.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range n { // every connection the pool holds, each taken and kept
		c, err := db.SQL().Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var v string
		if err := c.QueryRowxContext(ctx, `SHOW synchronous_commit`).Scan(&v); err != nil || v != "on" {
			t.Fatalf("after a failed lazy write, a pooled connection has synchronous_commit %q (%v), want on", v, err)
		}
	}
}

// TestAppendAuditsColumns: a batch of audit rows, durable or not, is
// stored column for column and in order on both backends (PostgreSQL
// takes it as one array per column).
func TestAppendAuditsColumns(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := storagetest.Open(t, b.DSN(t))
			var want []storage.AuditEvent
			for _, durable := range []bool{true, false} {
				var batch []*storage.AuditEvent
				for i := range 3 {
					// Each value also holds what an array literal must quote.
					f := func(col string) string { return fmt.Sprintf(`%s-%v-%d "q" \b, {NULL} é`, col, durable, i) }
					batch = append(batch, &storage.AuditEvent{
						At:   storage.At(time.UnixMilli(1_700_000_000_000 + int64(len(want)+i))),
						Type: f("type"), Actor: f("actor"), Subject: f("subject"), ClientID: f("client"), IP: f("ip"),
						UserAgent: f("ua"), RequestID: f("req"), Outcome: f("outcome"), Reason: f("reason"),
					})
				}
				if err := db.AppendAudits(t.Context(), batch, durable); err != nil {
					t.Fatal(err)
				}
				for _, e := range batch {
					want = append(want, *e)
				}
			}
			got, err := db.AuditEvents(t.Context(), storage.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("stored %d rows, want %d", len(got), len(want))
			}
			slices.Reverse(got) // newest first
			for i := range got {
				if i > 0 && got[i].ID <= got[i-1].ID {
					t.Errorf("row %d has id %d after %d: not stored in order", i, got[i].ID, got[i-1].ID)
				}
				got[i].ID = 0
				if !got[i].At.Equal(want[i].At.Time) || got[i].Type != want[i].Type || got[i].Actor != want[i].Actor ||
					got[i].Subject != want[i].Subject || got[i].ClientID != want[i].ClientID || got[i].IP != want[i].IP ||
					got[i].UserAgent != want[i].UserAgent || got[i].RequestID != want[i].RequestID ||
					got[i].Outcome != want[i].Outcome || got[i].Reason != want[i].Reason {
					t.Errorf("row %d stored as %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}
