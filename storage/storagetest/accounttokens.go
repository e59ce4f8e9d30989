package storagetest

import (
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

func runAccountTokens(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("AccountTokenConsumeOnce", func(t *testing.T) { testAccountTokenConsumeOnce(t, open(t)) })
	t.Run("AccountTokenSupersede", func(t *testing.T) { testAccountTokenSupersede(t, open(t)) })
	t.Run("AccountTokenExpiry", func(t *testing.T) { testAccountTokenExpiry(t, open(t)) })
	t.Run("AccountTokenEndAndKinds", func(t *testing.T) { testAccountTokenEndAndKinds(t, open(t)) })
	t.Run("AccountTokenConcurrentConsume", func(t *testing.T) { testAccountTokenConcurrentConsume(t, open(t)) })
	t.Run("AccountTokenCleanupAndCascade", func(t *testing.T) { testAccountTokenCleanupAndCascade(t, open(t)) })
	t.Run("EmailPendingAndVerifiedLookup", func(t *testing.T) { testEmailPendingAndVerifiedLookup(t, open(t)) })
}

func tokHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// issue stores a token of kind for u created at t0 and living ttl.
func issue(t *testing.T, db *storage.DB, u *storage.User, kind, secret string, t0 time.Time, ttl time.Duration) storage.AccountToken {
	t.Helper()
	at := storage.AccountToken{Hash: tokHash(secret), Kind: kind, UserID: u.ID, Email: u.Email,
		CreatedAt: storage.At(t0), ExpiresAt: storage.At(t0.Add(ttl))}
	if err := db.IssueAccountToken(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	return at
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if got := storage.TokenReason(err); got != reason {
		t.Fatalf("error %v: reason %q, want %q", err, got, reason)
	}
}

func testAccountTokenConsumeOnce(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "one", t0, 30*time.Minute)
	if _, err := db.CheckAccountToken(ctx, storage.TokenReset, tokHash("one"), t0.Add(time.Minute)); err != nil {
		t.Fatalf("check: %v", err)
	}
	got, err := db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("one"), t0.Add(time.Minute))
	if err != nil || got.UserID != u.ID || got.EndReason != storage.TokenUsed || got.UsedAt.IsZero() {
		t.Fatalf("consume: %v %+v", err, got)
	}
	_, err = db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("one"), t0.Add(2*time.Minute))
	wantReason(t, err, storage.TokenUsed)
	_, err = db.CheckAccountToken(ctx, storage.TokenReset, tokHash("one"), t0.Add(2*time.Minute))
	wantReason(t, err, storage.TokenUsed)
	_, err = db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("never issued"), t0)
	wantReason(t, err, "unknown")
	// A token of one kind is not one of the other.
	_, err = db.ConsumeAccountToken(ctx, storage.TokenVerify, tokHash("one"), t0)
	wantReason(t, err, "unknown")
	// An unknown user gets no token.
	bad := storage.AccountToken{Hash: tokHash("x"), Kind: storage.TokenReset, UserID: "nobody",
		CreatedAt: storage.At(t0), ExpiresAt: storage.At(t0.Add(time.Hour))}
	if err := db.IssueAccountToken(ctx, bad); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("issue for unknown user: %v", err)
	}
}

func testAccountTokenSupersede(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u, v := newUser("alice"), newUser("bob")
	for _, x := range []*storage.User{u, v} {
		if err := db.CreateUser(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "old", t0, time.Hour)
	issue(t, db, u, storage.TokenVerify, "verify", t0, time.Hour)
	issue(t, db, v, storage.TokenReset, "bobs", t0, time.Hour)
	issue(t, db, u, storage.TokenReset, "new", t0.Add(time.Second), time.Hour)
	_, err := db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("old"), t0.Add(2*time.Second))
	wantReason(t, err, storage.TokenSuperseded)
	// Only the same kind for the same user is superseded.
	for _, c := range []struct{ kind, secret string }{{storage.TokenVerify, "verify"}, {storage.TokenReset, "bobs"}, {storage.TokenReset, "new"}} {
		if _, err := db.ConsumeAccountToken(ctx, c.kind, tokHash(c.secret), t0.Add(2*time.Second)); err != nil {
			t.Fatalf("%s %s: %v", c.kind, c.secret, err)
		}
	}
}

func testAccountTokenExpiry(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "tok", t0, 30*time.Minute)
	_, err := db.CheckAccountToken(ctx, storage.TokenReset, tokHash("tok"), t0.Add(30*time.Minute))
	wantReason(t, err, "expired")
	_, err = db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("tok"), t0.Add(30*time.Minute))
	wantReason(t, err, "expired")
	// Refused, it stays unused: still expired, not used.
	got, err := db.AccountToken(ctx, storage.TokenReset, tokHash("tok"))
	if err != nil || !got.UsedAt.IsZero() {
		t.Fatalf("after an expired use: %v %+v", err, got)
	}
	if _, err := db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("tok"), t0.Add(29*time.Minute)); err != nil {
		t.Fatalf("within its lifetime: %v", err)
	}
}

func testAccountTokenEndAndKinds(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "reset", t0, time.Hour)
	issue(t, db, u, storage.TokenVerify, "verify", t0, time.Hour)
	n, err := db.EndAccountTokens(ctx, u.ID, storage.TokenReset, storage.TokenRevoked, t0.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("end: %d %v", n, err)
	}
	_, err = db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("reset"), t0.Add(2*time.Second))
	wantReason(t, err, storage.TokenRevoked)
	if _, err := db.ConsumeAccountToken(ctx, storage.TokenVerify, tokHash("verify"), t0.Add(2*time.Second)); err != nil {
		t.Fatalf("verify token ended with the reset ones: %v", err)
	}
	if n, err := db.EndAccountTokens(ctx, u.ID, storage.TokenReset, storage.TokenRevoked, t0); err != nil || n != 0 {
		t.Fatalf("end again: %d %v", n, err)
	}
}

func testAccountTokenConcurrentConsume(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "race", t0, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, used := 0, 0
	for range 8 {
		wg.Go(func() {
			_, err := db.ConsumeAccountToken(ctx, storage.TokenReset, tokHash("race"), t0.Add(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch storage.TokenReason(err) {
			case "":
				if err != nil {
					t.Error(err)
				}
				ok++
			case storage.TokenUsed:
				used++
			default:
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || used != 7 {
		t.Fatalf("%d consumed, %d refused as used; want 1 and 7", ok, used)
	}
}

func testAccountTokenCleanupAndCascade(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	issue(t, db, u, storage.TokenReset, "short", t0, time.Minute)
	issue(t, db, u, storage.TokenVerify, "long", t0, 48*time.Hour)
	if _, err := db.DeleteExpiredTokens(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AccountToken(ctx, storage.TokenReset, tokHash("short")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired token kept: %v", err)
	}
	if _, err := db.AccountToken(ctx, storage.TokenVerify, tokHash("long")); err != nil {
		t.Fatalf("live token deleted: %v", err)
	}
	if err := db.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AccountToken(ctx, storage.TokenVerify, tokHash("long")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token outlived its user: %v", err)
	}
}

func testEmailPendingAndVerifiedLookup(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	u := newUser("alice")
	u.EmailPending = "new@example.org"
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := db.User(ctx, u.ID)
	if err != nil || got.EmailPending != "new@example.org" {
		t.Fatalf("pending not stored: %v %+v", err, got)
	}
	if _, err := db.UserByVerifiedEmail(ctx, "alice@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unverified address found a user: %v", err)
	}
	if _, err := db.UpdateUser(ctx, u.ID, func(x *storage.User) error {
		x.EmailVerified = true
		x.EmailPending = ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err = db.UserByVerifiedEmail(ctx, "ALICE@Example.COM")
	if err != nil || got.ID != u.ID || got.EmailPending != "" {
		t.Fatalf("by verified email: %v %+v", err, got)
	}
	if _, err := db.UserByVerifiedEmail(ctx, "new@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a pending address found a user: %v", err)
	}
}
