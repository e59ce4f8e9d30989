package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// runAuthz runs the authorization endpoint's cases (issue 15).
func runAuthz(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("AuthRequestLifecycle", func(t *testing.T) { testAuthRequestLifecycle(t, open(t)) })
	t.Run("AuthCodeSingleUse", func(t *testing.T) { testAuthCodeSingleUse(t, open(t)) })
	t.Run("ClientRedirectsAndFamilyGrant", func(t *testing.T) { testClientRedirectsAndFamilyGrant(t, open(t)) })
}

func testAuthRequestLifecycle(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	fx := newTokenFixture(t, db)
	now := time.Now()
	r := storage.AuthRequest{ID: "req1", ClientID: fx.client, RedirectURI: "https://app.test/cb", Scope: storage.List{"openid"},
		State: "s", Nonce: "n", CodeChallenge: "c", ResponseMode: "query", Prompt: "login", MaxAge: -1,
		CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(10 * time.Minute))}
	if err := db.CreateAuthRequest(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAuthRequest(ctx, &r); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("second create: %v, want ErrConflict", err)
	}
	if err := db.MarkAuthRequestLogin(ctx, "req1", "sess", now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkAuthRequestConsent(ctx, "req1", now, true); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuthRequest(ctx, "req1")
	if err != nil || got.SessionID != "sess" || !got.LoginAt.Equal(storage.At(now).Time) || !got.Denied ||
		got.ConsentAt.IsZero() || got.MaxAge != -1 || got.Prompt != "login" || !slices.Equal(got.Scope, r.Scope) {
		t.Fatalf("read back %+v %v", got, err)
	}
	for _, err := range []error{
		db.MarkAuthRequestLogin(ctx, "nope", "s", now),
		db.MarkAuthRequestConsent(ctx, "nope", now, false),
	} {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("mark unknown: %v, want ErrNotFound", err)
		}
	}
	if err := db.DeleteAuthRequest(ctx, "req1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AuthRequest(ctx, "req1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
	old := r
	old.ID, old.ExpiresAt = "req2", storage.At(now.Add(-time.Second))
	if err := db.CreateAuthRequest(ctx, &old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AuthRequest(ctx, "req2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired: %v, want ErrNotFound", err)
	}
	if n, err := db.DeleteExpiredTokens(ctx, now); err != nil || n < 1 {
		t.Errorf("cleanup deleted %d, %v", n, err)
	}
}

func testAuthCodeSingleUse(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	fx := newTokenFixture(t, db)
	now := fx.t0
	c := storage.AuthCode{Hash: hashOf([]byte("code")), ClientID: fx.client, UserID: fx.user.ID, RedirectURI: "https://app.test/cb",
		CodeChallenge: "ch", Scope: storage.List{"openid"}, AMR: storage.List{"pwd", "otp"}, AuthTime: storage.At(now),
		CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(time.Minute))}
	if err := db.CreateAuthCode(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseAuthCode(ctx, hashOf([]byte("other")), now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown code: %v", err)
	}
	got, err := db.UseAuthCode(ctx, c.Hash, now)
	if err != nil || got.UsedAt.IsZero() || !slices.Equal(got.AMR, c.AMR) {
		t.Fatalf("first use: %+v %v", got, err)
	}
	if err := db.RecordAuthCodeTokens(ctx, c.Hash, fx.family.ID, "jti-1", now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseAuthCode(ctx, c.Hash, now); !errors.Is(err, storage.ErrCodeReplayed) {
		t.Fatalf("replay: %v, want ErrCodeReplayed", err)
	}
	if f, _ := db.RefreshFamily(ctx, fx.family.ID); f.RevokedAt.IsZero() {
		t.Error("family not revoked by the replay")
	}
	if revoked, _ := db.AccessTokenRevoked(ctx, "jti-1"); !revoked {
		t.Error("access token not revoked by the replay")
	}
	// A replay that wins the race against the first use's record: the
	// record revokes what it records.
	c2 := c
	c2.Hash = hashOf([]byte("code2"))
	if err := db.CreateAuthCode(ctx, c2); err != nil {
		t.Fatal(err)
	}
	db.UseAuthCode(ctx, c2.Hash, now)
	if _, err := db.UseAuthCode(ctx, c2.Hash, now); !errors.Is(err, storage.ErrCodeReplayed) {
		t.Fatalf("replay 2: %v", err)
	}
	f2, _ := fx.newFamily(t)
	if err := db.RecordAuthCodeTokens(ctx, c2.Hash, f2.ID, "jti-2", now.Add(time.Hour), now); !errors.Is(err, storage.ErrCodeReplayed) {
		t.Errorf("record after replay: %v, want ErrCodeReplayed", err)
	}
	if f, _ := db.RefreshFamily(ctx, f2.ID); f.RevokedAt.IsZero() {
		t.Error("family recorded after the replay is live")
	}
	if revoked, _ := db.AccessTokenRevoked(ctx, "jti-2"); !revoked {
		t.Error("access token recorded after the replay is live")
	}
}

func testClientRedirectsAndFamilyGrant(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	c := storage.Client{ID: "web", AuthMethod: storage.AuthSecretBasic, RedirectURIs: storage.List{"https://a.test/cb", "http://127.0.0.1/cb"},
		PostLogoutRedirectURIs: storage.List{"https://a.test/bye"}, FirstParty: true}
	if err := db.CreateClient(ctx, &c); err != nil {
		t.Fatal(err)
	}
	got, err := db.Client(ctx, "web")
	if err != nil || !slices.Equal(got.RedirectURIs, c.RedirectURIs) || !slices.Equal(got.PostLogoutRedirectURIs, c.PostLogoutRedirectURIs) || !got.FirstParty {
		t.Fatalf("read back %+v %v", got, err)
	}
	got, err = db.UpdateClient(ctx, "web", func(c *storage.Client) error {
		c.RedirectURIs, c.FirstParty = storage.List{"https://b.test/cb"}, false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ = db.Client(ctx, "web"); !slices.Equal(got.RedirectURIs, storage.List{"https://b.test/cb"}) || got.FirstParty {
		t.Errorf("after update %+v", got)
	}
	fx := newTokenFixture(t, db)
	f, first, _ := fx.buildFamily()
	f.Grant = "authorization_code"
	u, _ := db.User(ctx, fx.user.ID)
	if err := db.CreateRefreshFamily(ctx, f, first, storage.SignInOf(u)); err != nil {
		t.Fatal(err)
	}
	if got, err := db.RefreshFamily(ctx, f.ID); err != nil || got.Grant != "authorization_code" {
		t.Errorf("family grant %q %v", got.Grant, err)
	}
}
