package storagetest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// runTokens runs the refresh-token and revocation cases.
func runTokens(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("RefreshCreateAndRotate", func(t *testing.T) { testRefreshCreateAndRotate(t, open(t)) })
	t.Run("RefreshReplayWithinWindow", func(t *testing.T) { testRefreshReplayWithinWindow(t, open(t)) })
	t.Run("RefreshReuseAfterWindowRevokesFamily", func(t *testing.T) { testRefreshReuseAfterWindow(t, open(t)) })
	t.Run("RefreshReuseWindowOff", func(t *testing.T) { testRefreshReuseWindowOff(t, open(t)) })
	t.Run("RefreshRules", func(t *testing.T) { testRefreshRules(t, open) })
	t.Run("RefreshCheckErrorWritesNothing", func(t *testing.T) { testRefreshCheckError(t, open(t)) })
	t.Run("RefreshRotationIsAtomic", func(t *testing.T) { testRefreshRotationIsAtomic(t, open(t), time.Minute) })
	t.Run("RefreshRotationIsAtomicWithoutWindow", func(t *testing.T) { testRefreshRotationIsAtomic(t, open(t), 0) })
	t.Run("RefreshRevocation", func(t *testing.T) { testRefreshRevocation(t, open(t)) })
	t.Run("AccessTokenRevocation", func(t *testing.T) { testAccessTokenRevocation(t, open(t)) })
	t.Run("DeleteExpiredTokens", func(t *testing.T) { testDeleteExpiredTokens(t, open(t)) })
	runSignIn(t, open)
}

// tokenFixture is a user, a client and one family with its first token.
type tokenFixture struct {
	db     *storage.DB
	user   *storage.User
	client string
	family storage.RefreshFamily
	first  []byte // the first token's "clear" form
	t0     time.Time
}

var fixtureT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newTokenFixture(t *testing.T, db *storage.DB) *tokenFixture {
	t.Helper()
	ctx := t.Context()
	fx := &tokenFixture{db: db, user: newUser("alice"), client: "app", t0: fixtureT0}
	fx.user.PasswordChangedAt = storage.At(fx.t0.Add(-time.Hour))
	if err := db.CreateUser(ctx, fx.user); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"app", "other"} {
		if err := db.CreateClient(ctx, &storage.Client{ID: id, AuthMethod: storage.AuthSecretBasic}); err != nil {
			t.Fatal(err)
		}
	}
	fx.family, fx.first = fx.newFamily(t)
	return fx
}

func (fx *tokenFixture) newFamily(t *testing.T) (storage.RefreshFamily, []byte) {
	t.Helper()
	// As a login does: read the account, then store the family with what
	// was read.
	u, err := fx.db.User(t.Context(), fx.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	f, first, tok := fx.buildFamily()
	if err := fx.db.CreateRefreshFamily(t.Context(), f, first, storage.SignInOf(u)); err != nil {
		t.Fatal(err)
	}
	return f, tok
}

// buildFamily makes a family of the fixture's user and client, with its
// first token, without storing them.
func (fx *tokenFixture) buildFamily() (storage.RefreshFamily, storage.RefreshToken, []byte) {
	f := storage.RefreshFamily{
		ID: storage.NewID(), ClientID: fx.client, UserID: fx.user.ID, Scope: storage.List{"openid", "read"},
		Audience: "api", AuthTime: storage.At(fx.t0), CreatedAt: storage.At(fx.t0),
		ExpiresAt: storage.At(fx.t0.Add(30 * 24 * time.Hour)),
	}
	tok := randomToken()
	first := storage.RefreshToken{Hash: hashOf(tok), Scope: f.Scope, CreatedAt: f.CreatedAt,
		IdleExpiresAt: storage.RefreshIdleExpiry(fx.t0, 7*24*time.Hour, f.ExpiresAt.Time)}
	return f, first, tok
}

func randomToken() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func hashOf(tok []byte) []byte { h := sha256.Sum256(tok); return h[:] }

// successorOf derives a successor the way the server does: from the
// presented token and the stored salt, so the store holds only its hash.
func successorOf(tok, salt []byte) []byte {
	h := sha256.Sum256(append(append([]byte("successor"), tok...), salt...))
	return h[:]
}

func (fx *tokenFixture) rotation(tok []byte, at time.Time, window time.Duration) storage.Rotation {
	return storage.Rotation{
		Hash: hashOf(tok), ClientID: fx.client, Now: at, IdleTTL: 7 * 24 * time.Hour, ReuseWindow: window,
		Successor: func(salt []byte) []byte { return hashOf(successorOf(tok, salt)) },
	}
}

// rotate uses tok and returns the outcome and, when one was issued, the successor.
func (fx *tokenFixture) rotate(t *testing.T, tok []byte, at time.Time, window time.Duration) (storage.RotateOutcome, []byte) {
	t.Helper()
	res, err := fx.db.RotateRefreshToken(t.Context(), fx.rotation(tok, at, window))
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.Outcome == storage.Rotated || res.Outcome == storage.Replayed {
		if len(res.Salt) != 32 {
			t.Fatalf("%v with a %d-byte salt", res.Outcome, len(res.Salt))
		}
		return res.Outcome, successorOf(tok, res.Salt)
	}
	return res.Outcome, nil
}

func wantOutcome(t *testing.T, name string, got, want storage.RotateOutcome) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: outcome %v, want %v", name, got, want)
	}
}

func testRefreshCreateAndRotate(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	ctx := t.Context()
	tok, f, err := db.RefreshToken(ctx, hashOf(fx.first))
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != fx.family.ID || f.UserID != fx.user.ID || !f.Scope.Has("read") || f.Audience != "api" ||
		!f.AuthTime.Equal(fx.t0) || !tok.UsedAt.IsZero() || !tok.IdleExpiresAt.Equal(fx.t0.Add(7*24*time.Hour)) {
		t.Fatalf("read back %+v %+v", tok, f)
	}
	at := fx.t0.Add(time.Minute)
	out, s1 := fx.rotate(t, fx.first, at, 10*time.Second)
	wantOutcome(t, "first use", out, storage.Rotated)
	used, _, err := db.RefreshToken(ctx, hashOf(fx.first))
	if err != nil || !used.UsedAt.Equal(at) || !bytes.Equal(used.SuccessorHash, hashOf(s1)) || len(used.SuccessorSalt) != 32 {
		t.Fatalf("used token %+v %v", used, err)
	}
	succ, _, err := db.RefreshToken(ctx, hashOf(s1))
	if err != nil || succ.FamilyID != fx.family.ID || !succ.Scope.Has("openid") || !succ.IdleExpiresAt.Equal(at.Add(7*24*time.Hour)) {
		t.Fatalf("successor %+v %v", succ, err)
	}
	out, s2 := fx.rotate(t, s1, at.Add(time.Minute), 10*time.Second)
	wantOutcome(t, "successor", out, storage.Rotated)
	if bytes.Equal(s1, s2) {
		t.Fatal("rotation returned the same token")
	}
	if out, _ := fx.rotate(t, randomToken(), at, 10*time.Second); out != storage.RefreshUnknown {
		t.Fatalf("unknown token: %v", out)
	}
}

func testRefreshReplayWithinWindow(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	at := fx.t0.Add(time.Minute)
	const w = 10 * time.Second
	_, s1 := fx.rotate(t, fx.first, at, w)
	out, again := fx.rotate(t, fx.first, at.Add(w), w)
	wantOutcome(t, "retry within the window", out, storage.Replayed)
	if !bytes.Equal(again, s1) {
		t.Fatal("a retry within the window got a different successor")
	}
	// Once the successor is used, a retry of the first token is reuse.
	out, s2 := fx.rotate(t, s1, at.Add(2*time.Second), w)
	wantOutcome(t, "successor", out, storage.Rotated)
	out, _ = fx.rotate(t, fx.first, at.Add(3*time.Second), w)
	wantOutcome(t, "retry after the successor was used", out, storage.RefreshReuse)
	f, err := db.RefreshFamily(t.Context(), fx.family.ID)
	if err != nil || f.RevokedAt.IsZero() || f.RevokeReason != storage.RevokeReuse {
		t.Fatalf("family after reuse: %+v %v", f, err)
	}
	out, _ = fx.rotate(t, s2, at.Add(4*time.Second), w)
	wantOutcome(t, "newest token after reuse", out, storage.RefreshRevoked)
}

func testRefreshReuseAfterWindow(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	at := fx.t0.Add(time.Minute)
	const w = 10 * time.Second
	_, s1 := fx.rotate(t, fx.first, at, w)
	out, _ := fx.rotate(t, fx.first, at.Add(w+time.Millisecond), w)
	wantOutcome(t, "retry after the window", out, storage.RefreshReuse)
	out, _ = fx.rotate(t, s1, at.Add(w+time.Second), w)
	wantOutcome(t, "successor after reuse", out, storage.RefreshRevoked)
	// Other families of the user are untouched.
	_, other := fx.newFamily(t)
	out, _ = fx.rotate(t, other, at.Add(w+time.Second), w)
	wantOutcome(t, "another family", out, storage.Rotated)
}

func testRefreshReuseWindowOff(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	at := fx.t0.Add(time.Minute)
	fx.rotate(t, fx.first, at, 0)
	out, _ := fx.rotate(t, fx.first, at, 0)
	wantOutcome(t, "immediate retry without a window", out, storage.RefreshReuse)
}

func testRefreshRules(t *testing.T, open func(t *testing.T) *storage.DB) {
	day := 24 * time.Hour
	tests := []struct {
		name  string
		setup func(t *testing.T, fx *tokenFixture) // may change state before the use
		at    time.Duration                        // after t0
		want  storage.RotateOutcome
	}{
		{"fresh", nil, time.Minute, storage.Rotated},
		{"just before idle expiry", nil, 7*day - time.Millisecond, storage.Rotated},
		{"idle expired", nil, 7 * day, storage.RefreshExpired},
		{"absolute expiry while used regularly", func(t *testing.T, fx *tokenFixture) {
			tok := fx.first
			for at := 6 * day; at < 30*day; at += 6 * day {
				out, next := fx.rotate(t, tok, fx.t0.Add(at), time.Second)
				wantOutcome(t, "regular use", out, storage.Rotated)
				tok = next
			}
			fx.first = tok
		}, 30 * day, storage.RefreshExpired},
		{"other client", func(t *testing.T, fx *tokenFixture) { fx.client = "other" }, time.Minute, storage.RefreshWrongClient},
		{"user disabled", func(t *testing.T, fx *tokenFixture) {
			fx.updateUser(t, func(u *storage.User) { u.Disabled = true })
		}, time.Minute, storage.RefreshUserInactive},
		{"password changed after login", func(t *testing.T, fx *tokenFixture) {
			fx.updateUser(t, func(u *storage.User) { u.PasswordChangedAt = storage.At(fx.t0.Add(time.Second)) })
		}, time.Minute, storage.RefreshUserInactive},
		{"password rehashed, not changed", func(t *testing.T, fx *tokenFixture) {
			fx.updateUser(t, func(u *storage.User) { u.PasswordHash = "$argon2id$new" })
		}, time.Minute, storage.Rotated},
		{"user deleted", func(t *testing.T, fx *tokenFixture) {
			if err := fx.db.DeleteUser(t.Context(), fx.user.ID); err != nil {
				t.Fatal(err)
			}
		}, time.Minute, storage.RefreshUnknown},
		{"family revoked", func(t *testing.T, fx *tokenFixture) {
			if err := fx.db.RevokeRefreshFamily(t.Context(), fx.family.ID, storage.RevokeByClient, fx.t0); err != nil {
				t.Fatal(err)
			}
		}, time.Minute, storage.RefreshRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newTokenFixture(t, open(t))
			if tt.setup != nil {
				tt.setup(t, fx)
			}
			out, _ := fx.rotate(t, fx.first, fx.t0.Add(tt.at), 10*time.Second)
			wantOutcome(t, tt.name, out, tt.want)
			if tt.want == storage.RefreshWrongClient {
				fx.client = "app"
				out, _ := fx.rotate(t, fx.first, fx.t0.Add(tt.at), 10*time.Second)
				wantOutcome(t, "the right client afterwards", out, storage.Rotated)
			}
		})
	}
}

func (fx *tokenFixture) updateUser(t *testing.T, f func(*storage.User)) {
	t.Helper()
	if _, err := fx.db.UpdateUser(t.Context(), fx.user.ID, func(u *storage.User) error { f(u); return nil }); err != nil {
		t.Fatal(err)
	}
}

func testRefreshCheckError(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	boom := errors.New("scope widened")
	rot := fx.rotation(fx.first, fx.t0.Add(time.Minute), 10*time.Second)
	var seen storage.RefreshFamily
	rot.Check = func(f storage.RefreshFamily) error { seen = f; return boom }
	if _, err := db.RotateRefreshToken(t.Context(), rot); !errors.Is(err, boom) {
		t.Fatalf("check error: %v", err)
	}
	if seen.ID != fx.family.ID {
		t.Fatalf("check saw %+v", seen)
	}
	out, _ := fx.rotate(t, fx.first, fx.t0.Add(time.Minute), 10*time.Second)
	wantOutcome(t, "after a failed check", out, storage.Rotated)
}

// testRefreshRotationIsAtomic uses one token from 20 goroutines at once: at
// most one successor is created, and every other use gets either that same
// successor (within the window) or a clean rejection — never an error.
func testRefreshRotationIsAtomic(t *testing.T, db *storage.DB, window time.Duration) {
	fx := newTokenFixture(t, db)
	const n = 20
	at := fx.t0.Add(time.Minute)
	outs := make([]storage.RotateOutcome, n)
	succs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := db.RotateRefreshToken(t.Context(), fx.rotation(fx.first, at, window))
			outs[i], errs[i] = res.Outcome, err
			if err == nil && res.Salt != nil {
				succs[i] = successorOf(fx.first, res.Salt)
			}
		})
	}
	close(start)
	wg.Wait()
	rotated := 0
	var live []byte
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("use %d: storage error %v", i, errs[i])
		}
		switch outs[i] {
		case storage.Rotated:
			rotated++
			fallthrough
		case storage.Replayed:
			if live != nil && !bytes.Equal(live, succs[i]) {
				t.Fatal("two different successors were issued")
			}
			live = succs[i]
		case storage.RefreshReuse, storage.RefreshRevoked:
			if window > 0 {
				t.Errorf("use %d within the window: %v", i, outs[i])
			}
		default:
			t.Errorf("use %d: unexpected outcome %v", i, outs[i])
		}
	}
	if rotated != 1 {
		t.Fatalf("%d rotations, want exactly 1", rotated)
	}
	var count int
	if err := db.SQL().GetContext(t.Context(), &count, `SELECT COUNT(*) FROM refresh_tokens`); err != nil || count != 2 {
		t.Fatalf("%d token rows (%v), want the first and one successor", count, err)
	}
	out, _ := fx.rotate(t, live, at.Add(time.Second), window)
	if window > 0 {
		wantOutcome(t, "the one successor", out, storage.Rotated)
	} else {
		wantOutcome(t, "the successor after reuse without a window", out, storage.RefreshRevoked)
	}
}

func testRefreshRevocation(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	ctx := t.Context()
	at := fx.t0.Add(time.Minute)
	if err := db.RevokeRefreshFamily(ctx, "nope", storage.RevokeByClient, at); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("revoke unknown family: %v", err)
	}
	if err := db.RevokeRefreshFamily(ctx, fx.family.ID, storage.RevokeByClient, at); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeRefreshFamily(ctx, fx.family.ID, storage.RevokeReuse, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f, _ := db.RefreshFamily(ctx, fx.family.ID)
	if !f.RevokedAt.Equal(at) || f.RevokeReason != storage.RevokeByClient {
		t.Fatalf("second revocation changed the first: %+v", f)
	}
	_, t1 := fx.newFamily(t)
	_, t2 := fx.newFamily(t)
	if fs, err := db.RefreshFamilies(ctx, fx.user.ID); err != nil || len(fs) != 3 {
		t.Fatalf("families: %d %v", len(fs), err)
	}
	n, err := db.RevokeUserRefreshFamilies(ctx, fx.user.ID, storage.RevokePassword, at)
	if err != nil || n != 2 {
		t.Fatalf("revoke user's families: %d %v, want 2", n, err)
	}
	for _, tok := range [][]byte{t1, t2} {
		out, _ := fx.rotate(t, tok, at, time.Second)
		wantOutcome(t, "after sign-out", out, storage.RefreshRevoked)
	}
	_, t3 := fx.newFamily(t)
	if n, err := db.RevokeClientRefreshFamilies(ctx, fx.client, storage.RevokeClient, at); err != nil || n != 1 {
		t.Fatalf("revoke client's families: %d %v, want 1", n, err)
	}
	out, _ := fx.rotate(t, t3, at, time.Second)
	wantOutcome(t, "after client revocation", out, storage.RefreshRevoked)
}

func testAccessTokenRevocation(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	exp := fixtureT0.Add(15 * time.Minute)
	if ok, err := db.AccessTokenRevoked(ctx, "j1"); err != nil || ok {
		t.Fatalf("before: %v %v", ok, err)
	}
	for range 2 {
		if err := db.RevokeAccessToken(ctx, "j1", exp); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	if ok, err := db.AccessTokenRevoked(ctx, "j1"); err != nil || !ok {
		t.Fatalf("after: %v %v", ok, err)
	}
	if ok, _ := db.AccessTokenRevoked(ctx, "j2"); ok {
		t.Fatal("another jti is revoked")
	}
}

func testDeleteExpiredTokens(t *testing.T, db *storage.DB) {
	fx := newTokenFixture(t, db)
	ctx := t.Context()
	revoked, _ := fx.newFamily(t)
	if err := db.RevokeRefreshFamily(ctx, revoked.ID, storage.RevokeByClient, fx.t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAccessToken(ctx, "old", fx.t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAccessToken(ctx, "new", fx.t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Nothing is old enough yet.
	if n, err := db.DeleteExpiredTokens(ctx, fx.t0); err != nil || n != 0 {
		t.Fatalf("early cleanup removed %d (%v)", n, err)
	}
	n, err := db.DeleteExpiredTokens(ctx, fx.t0.Add(2*time.Hour))
	if err != nil || n != 3 { // the revoked family, its token, the old jti
		t.Fatalf("cleanup removed %d (%v), want 3", n, err)
	}
	if _, err := db.RefreshFamily(ctx, revoked.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("revoked family after cleanup: %v", err)
	}
	if _, err := db.RefreshFamily(ctx, fx.family.ID); err != nil {
		t.Fatalf("live family after cleanup: %v", err)
	}
	if ok, _ := db.AccessTokenRevoked(ctx, "new"); !ok {
		t.Fatal("a live revoked jti was removed")
	}
	n, err = db.DeleteExpiredTokens(ctx, fx.t0.Add(31*24*time.Hour))
	if err != nil || n != 3 { // the expired family, its token, the new jti
		t.Fatalf("second cleanup removed %d (%v), want 3", n, err)
	}
}
