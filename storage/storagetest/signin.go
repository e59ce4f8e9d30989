package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// runSignIn runs the cases of CreateRefreshFamily's re-check of the account
// (RT-08): a login that read the account before a password change, a
// disable or a delete gets no family.
func runSignIn(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("RefreshFamilyStaleSignIn", func(t *testing.T) { testRefreshFamilyStaleSignIn(t, open) })
	t.Run("RefreshFamilyWaitsForAccountChange", func(t *testing.T) { testRefreshFamilyWaitsForAccountChange(t, open(t)) })
}

func testRefreshFamilyStaleSignIn(t *testing.T, open func(t *testing.T) *storage.DB) {
	tests := []struct {
		name string
		// act changes the account after the login read it; it may change
		// the sign-in the login then presents.
		act       func(t *testing.T, fx *tokenFixture, in *storage.SignIn)
		wantStale bool
	}{
		{"account unchanged", nil, false},
		{"password rehashed, not changed", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			fx.updateUser(t, func(u *storage.User) { u.PasswordHash = "$argon2id$rehashed" })
		}, false},
		{"password changed", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			fx.updateUser(t, func(u *storage.User) {
				u.PasswordHash = "$argon2id$new"
				u.PasswordChangedAt = storage.At(fx.t0.Add(time.Second))
			})
		}, true},
		// A replica whose clock is behind stamps an earlier time: what
		// counts is that the stamp is not the one the login read.
		{"password changed by a replica with a slow clock", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			fx.updateUser(t, func(u *storage.User) {
				u.PasswordHash = "$argon2id$new"
				u.PasswordChangedAt = storage.At(u.PasswordChangedAt.Add(-time.Minute))
			})
		}, true},
		{"disabled", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			fx.updateUser(t, func(u *storage.User) { u.Disabled = true })
		}, true},
		// The disable's revocation has run; the password the login
		// checked is still the account's, and a login starting now would
		// succeed with it: nothing to refuse.
		{"disabled and enabled again", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			fx.updateUser(t, func(u *storage.User) { u.Disabled = true })
			fx.updateUser(t, func(u *storage.User) { u.Disabled = false })
		}, false},
		{"deleted", func(t *testing.T, fx *tokenFixture, _ *storage.SignIn) {
			if err := fx.db.DeleteUser(t.Context(), fx.user.ID); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"deleted and a namesake created", func(t *testing.T, fx *tokenFixture, in *storage.SignIn) {
			if err := fx.db.DeleteUser(t.Context(), fx.user.ID); err != nil {
				t.Fatal(err)
			}
			again := newUser(fx.user.Username)
			again.PasswordChangedAt = in.PasswordChangedAt
			if err := fx.db.CreateUser(t.Context(), again); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"zero sign-in", func(t *testing.T, _ *tokenFixture, in *storage.SignIn) { *in = storage.SignIn{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newTokenFixture(t, open(t))
			ctx := t.Context()
			u, err := fx.db.User(ctx, fx.user.ID) // the login's lookup
			if err != nil {
				t.Fatal(err)
			}
			in := storage.SignInOf(u)
			if tt.act != nil {
				tt.act(t, fx, &in)
			}
			f, first, tok := fx.buildFamily()
			err = fx.db.CreateRefreshFamily(ctx, f, first, in)
			if !tt.wantStale {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				out, _ := fx.rotate(t, tok, fx.t0.Add(time.Minute), 0)
				wantOutcome(t, "the new family", out, storage.Rotated)
				return
			}
			if !errors.Is(err, storage.ErrSignInStale) {
				t.Fatalf("create after the account changed: %v, want ErrSignInStale", err)
			}
			if _, err := fx.db.RefreshFamily(ctx, f.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("refused family stored anyway: %v", err)
			}
			if _, _, err := fx.db.RefreshToken(ctx, first.Hash); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("refused family's token stored anyway: %v", err)
			}
		})
	}
}

// testRefreshFamilyWaitsForAccountChange: a family created while a password
// change is inside its transaction (the user's row locked, the new stamp
// not yet committed) waits for it and then sees the change. A plain read
// of the row would see the old stamp and store a family that the change's
// revocation, already past, never ends.
func testRefreshFamilyWaitsForAccountChange(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	ctx := t.Context()
	u, err := db.User(ctx, fx.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	in := storage.SignInOf(u) // the login's lookup, before the change
	locked, release := make(chan struct{}), make(chan struct{})
	changed := make(chan error, 1)
	go func() {
		_, err := db.UpdateUser(ctx, u.ID, func(cur *storage.User) error {
			close(locked)
			<-release
			cur.PasswordHash = "$argon2id$new"
			cur.PasswordChangedAt = storage.At(cur.PasswordChangedAt.Add(time.Second))
			return nil
		})
		changed <- err
	}()
	<-locked
	created := make(chan error, 1)
	f, first, _ := fx.buildFamily()
	go func() { created <- db.CreateRefreshFamily(ctx, f, first, in) }()
	select {
	case err := <-created:
		t.Fatalf("family created (%v) while the user's row was being changed", err)
	case <-time.After(300 * time.Millisecond): // waiting, as it should
	}
	close(release)
	if err := <-changed; err != nil {
		t.Fatalf("password change: %v", err)
	}
	if err := <-created; !errors.Is(err, storage.ErrSignInStale) {
		t.Fatalf("create across a concurrent password change: %v, want ErrSignInStale", err)
	}
}
