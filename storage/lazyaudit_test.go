package storage_test

import (
	"testing"

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
