package storagetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

func testMigrations(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	cur, latest, err := db.MigrationVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur != latest || cur == 0 {
		t.Fatalf("migration version %d, latest %d", cur, latest)
	}
	// Migrating again is a no-op.
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
}

func newUser(name string) *storage.User {
	return &storage.User{Username: name, Email: name + "@example.com", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"}
}

func testUserCRUD(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("Alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.CreatedAt.IsZero() || !u.PasswordChangedAt.Equal(u.CreatedAt.Time) {
		t.Fatalf("create did not fill id and times: %+v", u)
	}
	got, err := db.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "Alice" || got.Email != "Alice@example.com" || got.PasswordHash != u.PasswordHash || got.Disabled || got.EmailVerified {
		t.Fatalf("read back %+v", got)
	}
	if !got.CreatedAt.Equal(u.CreatedAt.Time) {
		t.Fatalf("created_at %v, want %v", got.CreatedAt, u.CreatedAt)
	}
	byName, err := db.UserByUsername(ctx, "ALICE")
	if err != nil || byName.ID != u.ID {
		t.Fatalf("by name: %v %+v", err, byName)
	}
	changed := storage.At(time.Now().Add(time.Hour))
	upd, err := db.UpdateUser(ctx, u.ID, func(u *storage.User) error {
		u.Disabled = true
		u.EmailVerified = true
		u.PasswordHash = "$2a$10$new"
		u.PasswordChangedAt = changed
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = db.User(ctx, u.ID)
	if !got.Disabled || !got.EmailVerified || got.PasswordHash != "$2a$10$new" || !got.PasswordChangedAt.Equal(changed.Time) || got != upd {
		t.Fatalf("after update %+v (returned %+v)", got, upd)
	}
	list, err := db.Users(ctx, 0, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %d", err, len(list))
	}
	if n, err := db.CountUsers(ctx); err != nil || n != 1 {
		t.Fatalf("count: %v %d", err, n)
	}
	if err := db.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":     second(db.User(ctx, u.ID)),
		"by name": second(db.UserByUsername(ctx, "alice")),
		"update":  second(db.UpdateUser(ctx, u.ID, func(*storage.User) error { return nil })),
		"delete":  db.DeleteUser(ctx, u.ID),
	} {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s after delete: %v, want ErrNotFound", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func testUsernameUnique(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	if err := db.CreateUser(ctx, newUser("alice")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "ALICE", "Alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"} {
		if err := db.CreateUser(ctx, newUser(name)); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("create %q: %v, want ErrConflict", name, err)
		}
	}
	if err := db.CreateUser(ctx, newUser("alice2")); err != nil {
		t.Errorf("a different name: %v", err)
	}
}

func testUserRenameConflict(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	a, b := newUser("alice"), newUser("bob")
	if err := db.CreateUser(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(ctx, b); err != nil {
		t.Fatal(err)
	}
	_, err := db.UpdateUser(ctx, b.ID, func(u *storage.User) error { u.Username = "Alice"; return nil })
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("rename onto a taken name: %v, want ErrConflict", err)
	}
	got, _ := db.User(ctx, b.ID)
	if got.Username != "bob" {
		t.Fatalf("failed rename wrote %q", got.Username)
	}
}

func testUserUpdateErrorWritesNothing(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("carol")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := db.UpdateUser(ctx, u.ID, func(u *storage.User) error { u.Disabled = true; return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("update error: %v", err)
	}
	if got, _ := db.User(ctx, u.ID); got.Disabled {
		t.Fatal("a failed update was written")
	}
}

func testConcurrentCreateSameUsername(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = db.CreateUser(ctx, newUser("Dave")) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("loser got %v, want ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creations won, want exactly 1", won)
	}
	if n, _ := db.CountUsers(ctx); n != 1 {
		t.Fatalf("%d users stored", n)
	}
}

func testClientCRUD(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	c := &storage.Client{
		ID: "my-app", Name: "My App", SecretHash: []byte{1, 2, 3}, AuthMethod: storage.AuthSecretBasic,
		GrantTypes: storage.List{"password", "refresh_token"},
		Scopes:     storage.List{"openid", "api:read"}, Audiences: storage.List{"api"},
	}
	if err := db.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := db.Client(ctx, "my-app")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "My App" || string(got.SecretHash) != "\x01\x02\x03" || got.Public ||
		!got.GrantTypes.Has("refresh_token") || len(got.Scopes) != 2 || got.Audiences[0] != "api" {
		t.Fatalf("read back %+v", got)
	}
	pub := &storage.Client{ID: "spa", Public: true, AuthMethod: storage.AuthNone, GrantTypes: storage.List{"refresh_token"}}
	if err := db.CreateClient(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Client(ctx, "spa"); got.SecretHash != nil || !got.Public || len(got.Scopes) != 0 {
		t.Fatalf("public client read back %+v", got)
	}
	if _, err := db.UpdateClient(ctx, "my-app", func(c *storage.Client) error {
		c.Disabled = true
		c.SecretHash = []byte{9}
		c.Scopes = append(c.Scopes, "api:write")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Client(ctx, "my-app")
	if !got.Disabled || string(got.SecretHash) != "\x09" || !got.Scopes.Has("api:write") {
		t.Fatalf("after update %+v", got)
	}
	list, err := db.Clients(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "my-app" {
		t.Fatalf("list: %v %+v", err, list)
	}
	if err := db.DeleteClient(ctx, "my-app"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Client(ctx, "my-app"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := db.DeleteClient(ctx, "my-app"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testClientIDConflict(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	c := storage.Client{ID: "dup", AuthMethod: storage.AuthSecretBasic}
	if err := db.CreateClient(ctx, &c); err != nil {
		t.Fatal(err)
	}
	c2 := c
	if err := db.CreateClient(ctx, &c2); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}
}

// testUsernameLookalike: a name whose UsernameSkeleton is taken is refused with
// ErrLookalike (which is also ErrConflict), at creation and at a rename; the
// same name is still ErrConflict alone.
func testUsernameLookalike(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	alice, bob := newUser("alice"), newUser("bob")
	for _, u := range []*storage.User{alice, bob} {
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, username string
	}{
		{"Cyrillic a", "\u0430lice"},
		{"precomposed e with dot", "alic\u0117"},
		{"combining dot", "alice\u0307"},
		{"digit one for l", "a1ice"},
		{"Cyrillic capitals", "\u0410LICE"},
		{"rn for m", "rnallory"},
		{"whole-script Cyrillic", "\u0455\u0441\u043e\u0440\u0435"}, // ѕсоре beside scope
	}
	for _, name := range []string{"mallory", "scope"} {
		if err := db.CreateUser(ctx, newUser(name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.CreateUser(ctx, newUser(tt.username))
			if !errors.Is(err, storage.ErrLookalike) || !errors.Is(err, storage.ErrConflict) {
				t.Errorf("create %q: %v, want ErrLookalike", tt.username, err)
			}
			_, err = db.UpdateUser(ctx, bob.ID, func(u *storage.User) error { u.Username = tt.username; return nil })
			if !errors.Is(err, storage.ErrLookalike) {
				t.Errorf("rename to %q: %v, want ErrLookalike", tt.username, err)
			}
		})
	}
	if err := db.CreateUser(ctx, newUser("Alice")); err == nil || errors.Is(err, storage.ErrLookalike) {
		t.Errorf("create the same name: %v, want ErrConflict alone", err)
	}
	if got, _ := db.User(ctx, bob.ID); got.Username != "bob" {
		t.Errorf("a refused rename wrote %q", got.Username)
	}
	for _, name := range []string{"alicia", "bobby", "ali"} {
		if err := db.CreateUser(ctx, newUser(name)); err != nil {
			t.Errorf("create %q: %v", name, err)
		}
	}
}

// testSkeletonBackfill: Migrate fills username_skeleton for rows that have none
// (made before migration 00009); of two look-alike rows the older gets it and
// the other keeps none and stays usable; a new look-alike is refused.
func testSkeletonBackfill(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	var users []*storage.User
	for i, name := range []string{"alice", "\u0430lice", "bob"} {
		u := newUser(name)
		u.CreatedAt = storage.At(base.Add(time.Duration(i) * time.Minute))
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		// As before migration 00009: no skeleton.
		if _, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`UPDATE users SET username_skeleton = NULL WHERE id = ?`), u.ID); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	skeleton := func(id string) *string {
		var s *string
		if err := db.SQL().GetContext(ctx, &s, db.SQL().Rebind(`SELECT username_skeleton FROM users WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := skeleton(users[0].ID); s == nil || *s != "alice" {
		t.Errorf("alice's skeleton %v, want alice", s)
	}
	if s := skeleton(users[1].ID); s != nil {
		t.Errorf("the younger look-alike got skeleton %q, want none", *s)
	}
	if s := skeleton(users[2].ID); s == nil || *s != "bob" {
		t.Errorf("bob's skeleton %v, want bob", s)
	}
	// The row without a skeleton still updates and is found by name.
	if _, err := db.UpdateUser(ctx, users[1].ID, func(u *storage.User) error { u.Email = "new@example.com"; return nil }); err != nil {
		t.Errorf("update the row without a skeleton: %v", err)
	}
	if u, err := db.UserByUsername(ctx, "\u0430lice"); err != nil || u.ID != users[1].ID {
		t.Errorf("find the row without a skeleton: %v", err)
	}
	if err := db.CreateUser(ctx, newUser("alic\u0117")); !errors.Is(err, storage.ErrLookalike) {
		t.Errorf("create a new look-alike: %v, want ErrLookalike", err)
	}
}
