package manage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// events is a Recorder that keeps what it is given.
type events struct {
	mu sync.Mutex
	es []audit.Event
}

func (r *events) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.es = append(r.es, e)
}

// unlocks is an Unlocker that remembers the accounts it unlocked.
type unlocks []string

func (u *unlocks) Unlock(_ context.Context, account string) error {
	*u = append(*u, account)
	return nil
}

// TestOps runs the operations on a real SQLite store and checks each
// change, its audit event (type, subject, actor, client id, reason) and
// the rules they share with the admin API and the CLI.
func TestOps(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	rec := &events{}
	var unlocked unlocks
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := New(db, rec, &unlocked, func() time.Time { return now })
	ctx := t.Context()
	by := audit.Event{Actor: "client:OPS", UserAgent: "ops/1"}
	last := func() audit.Event { t.Helper(); return rec.es[len(rec.es)-1] }

	u := storage.User{Username: "alice", PasswordHash: "h1"}
	if err := o.CreateUser(ctx, by, &u); err != nil {
		t.Fatal(err)
	}
	if e := last(); e.Type != audit.UserCreated || e.Subject != u.ID || e.Actor != "client:OPS" {
		t.Errorf("create: %+v", e)
	}
	if err := o.CreateUser(ctx, by, &storage.User{Username: "ALICE"}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("a taken username: %v", err)
	}

	by.Reason = "set_by_operator"
	got, n, err := o.SetPassword(ctx, by, u.ID, "h2", nil)
	if err != nil || got.PasswordHash != "h2" || !got.PasswordChangedAt.Equal(now) || n != 0 {
		t.Fatalf("set password: %+v %d %v", got, n, err)
	}
	if e := last(); e.Type != audit.PasswordChanged || e.Reason != "set_by_operator" {
		t.Errorf("set password: %+v", e)
	}
	by.Reason = ""
	refused := errors.New("changed meanwhile")
	if _, _, err := o.SetPassword(ctx, by, u.ID, "h3", func(*storage.User) error { return refused }); !errors.Is(err, refused) {
		t.Errorf("a refusing check: %v", err)
	}

	got, _, err = o.SetUserDisabled(ctx, by, u.ID, true)
	if err != nil || !got.Disabled {
		t.Fatalf("disable: %+v %v", got, err)
	}
	if e := last(); e.Type != audit.UserUpdated || e.Reason != "disabled" {
		t.Errorf("disable: %+v", e)
	}
	got, _, err = o.UpdateUser(ctx, by, u.ID, func(*storage.User) ([]string, error) { return nil, nil })
	if err != nil || last().Reason != "unchanged" || !got.Disabled {
		t.Errorf("an update that changes nothing: %v %+v", err, last())
	}

	if err := o.Unlock(ctx, by, got); err != nil || len(unlocked) != 1 || unlocked[0] != "alice" || last().Type != audit.UserUnlocked {
		t.Errorf("unlock: %v %v %+v", err, unlocked, last())
	}

	c, secret, err := NewClient(ClientSpec{ID: "app", Grants: []string{GrantClientCredentials}})
	if err != nil {
		t.Fatal(err)
	}
	byAdmin := by
	byAdmin.ClientID = "app" // the admin API names the client; the CLI does not
	if err := o.CreateClient(ctx, byAdmin, &c, "why"); err != nil {
		t.Fatal(err)
	}
	if e := last(); e.Type != audit.ClientCreated || e.Subject != "app" || e.ClientID != "app" || e.Reason != "why" {
		t.Errorf("create client: %+v", e)
	}
	c2, secret2, err := o.RotateSecret(ctx, by, "app")
	if err != nil || secret2 == secret || !ClientSecretMatches(c2, secret2) || ClientSecretMatches(c2, secret) {
		t.Fatalf("rotate: %v", err)
	}
	if e := last(); e.Type != audit.ClientUpdated || e.Reason != "secret_rotated" {
		t.Errorf("rotate: %+v", e)
	}
	_, _, err = o.UpdateClient(ctx, by, "app", func(c *storage.Client) ([]string, error) {
		c.GrantTypes = storage.List{"magic"}
		return []string{"grant_types"}, nil
	})
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Errorf("an invalid change: %v, want an *InvalidError", err)
	}
	if c, _ := db.Client(ctx, "app"); !c.GrantTypes.Has(GrantClientCredentials) {
		t.Errorf("an invalid change was stored: %+v", c)
	}

	pub, _, _ := NewClient(ClientSpec{ID: "spa", Public: true, Grants: []string{GrantRefreshToken}})
	if err := o.CreateClient(ctx, by, &pub, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.RotateSecret(ctx, by, "spa"); err == nil {
		t.Error("a public client got a secret")
	}

	if err := o.DeleteClient(ctx, by, "spa"); err != nil || last().Type != audit.ClientDeleted || last().Subject != "spa" || last().ClientID != "" {
		t.Errorf("delete client: %v %+v", err, last())
	}
	if err := o.DeleteUser(ctx, by, u.ID); err != nil || last().Type != audit.UserDeleted || last().Subject != u.ID {
		t.Errorf("delete user: %v %+v", err, last())
	}
	if err := o.DeleteUser(ctx, by, u.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete a deleted user: %v", err)
	}
}
