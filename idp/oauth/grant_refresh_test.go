package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRefreshRotation is RT-04 and RT-05: every refresh returns a new
// token with the same scope; a retry inside the window returns the same
// successor; reuse after it revokes the family, newest token included.
func TestRefreshRotation(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		rt1 := e.Login("scope", "openid read").Str("refresh_token")
		r := e.Token("C1", idptest.RefreshForm(rt1))
		rt2 := r.Str("refresh_token")
		if r.Status != 200 || rt2 == "" || rt2 == rt1 || r.Str("scope") != "openid read" || r.Str("id_token") == "" {
			t.Fatalf("first refresh: %d %s", r.Status, r.Body)
		}
		// A retry within the window: the same successor, a fresh access token.
		again := e.Token("C1", idptest.RefreshForm(rt1))
		if again.Status != 200 || again.Str("refresh_token") != rt2 || again.Str("access_token") == r.Str("access_token") {
			t.Fatalf("retry within the window: %d %s", again.Status, again.Body)
		}
		// After the window the first token is reuse: the family is revoked.
		e.Clock.Advance(oauth.DefaultRefreshReuseWindow + time.Second)
		reuse := e.Token("C1", idptest.RefreshForm(rt1))
		idptest.CheckE1(t, reuse, 400, web.ErrInvalidGrant)
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt2)), 400, web.ErrInvalidGrant)
		logs := e.Logs.String()
		if !strings.Contains(logs, `"msg":"refresh token reuse detected"`) || !strings.Contains(logs, `"msg":"refresh_reuse_detected"`) || strings.Contains(logs, rt1[5:]) || strings.Contains(logs, rt2[5:]) {
			t.Errorf("reuse log missing, or a token in the logs")
		}
		// Access tokens of the family stop at introspection (sid).
		in := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("C1"), Body: "token=" + again.Str("access_token")})
		if string(in.Body) != "{\"active\":false}\n" {
			t.Errorf("introspection of a revoked family's access token: %s", in.Body)
		}
	})
}

// TestRefreshReuseAfterSuccessorUsed: a retry within the window once the
// successor has been used is reuse.
func TestRefreshReuseAfterSuccessorUsed(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	rt1 := e.Login().Str("refresh_token")
	rt2 := e.Token("C1", idptest.RefreshForm(rt1)).Str("refresh_token")
	rt3 := e.Token("C1", idptest.RefreshForm(rt2)).Str("refresh_token")
	idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt1)), 400, web.ErrInvalidGrant)
	idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt3)), 400, web.ErrInvalidGrant)
}

// TestRefreshWindowOff: with the window off, an immediate retry revokes.
func TestRefreshWindowOff(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.RefreshReuseWindow = -1 })
	rt1 := e.Login().Str("refresh_token")
	rt2 := e.Token("C1", idptest.RefreshForm(rt1)).Str("refresh_token")
	idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt1)), 400, web.ErrInvalidGrant)
	idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt2)), 400, web.ErrInvalidGrant)
}

// TestRefreshConcurrent is RT-06 over HTTP on both backends: 20 requests
// with one token at once get the same successor or a clean invalid_grant,
// never two live successors and never a 5xx.
func TestRefreshConcurrent(t *testing.T) {
	for _, window := range []time.Duration{0, -1} {
		name := map[time.Duration]string{0: "window", -1: "no window"}[window]
		t.Run(name, func(t *testing.T) {
			idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
				e := idptest.New(t, b, func(c *idp.Config) { c.RefreshReuseWindow = window })
				rt := e.Login().Str("refresh_token")
				const n = 20
				res := make([]idptest.Response, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() { <-start; res[i] = e.Token("C1", idptest.RefreshForm(rt)) })
				}
				close(start)
				wg.Wait()
				successors := map[string]bool{}
				for i, r := range res {
					switch {
					case r.Status == 200:
						successors[r.Str("refresh_token")] = true
					case r.Status == 400 && r.Str("error") == web.ErrInvalidGrant:
						if window == 0 {
							t.Errorf("request %d within the window: %s", i, r.Body)
						}
					default:
						t.Errorf("request %d: %d %s", i, r.Status, r.Body)
					}
				}
				if len(successors) != 1 {
					t.Fatalf("%d distinct successors, want 1", len(successors))
				}
				for s := range successors {
					r := e.Token("C1", idptest.RefreshForm(s))
					if window == 0 && r.Status != 200 {
						t.Errorf("the successor does not work: %s", r.Body)
					}
					if window < 0 && r.Status == 200 {
						t.Error("without a window, the concurrent reuse left a live successor")
					}
				}
			})
		})
	}
}

// TestRefreshRules covers RT-02, RT-03, RT-07, RT-08 and CA-09: each case
// changes something and then refreshes.
func TestRefreshRules(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name       string
		act        func(t *testing.T, e *idptest.Env) // before the refresh
		client     string
		extra      []string
		wantStatus int
		wantCode   string
		wantScope  string
	}{
		{"same scope by default", nil, "C1", nil, 200, "", "openid read write"},
		{"narrower scope", nil, "C1", []string{"scope", "read"}, 200, "", "read"},
		{"wider scope", nil, "C1", []string{"scope", "read email"}, 400, web.ErrInvalidScope, ""},
		{"another client's token", nil, "C2", nil, 400, web.ErrInvalidGrant, ""},
		{"no client authentication", nil, "", nil, 401, web.ErrInvalidClient, ""},
		{"idle expiry", func(t *testing.T, e *idptest.Env) { e.Clock.Advance(7*day + time.Second) }, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"absolute expiry while used", func(t *testing.T, e *idptest.Env) {
			for range 4 {
				e.Clock.Advance(6 * day)
				r := e.Token("C1", idptest.RefreshForm(e.RT))
				if r.Status != 200 {
					t.Fatalf("regular refresh: %s", r.Body)
				}
				e.RT = r.Str("refresh_token")
			}
			e.Clock.Advance(6 * day) // 30 days after the login
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"password changed", func(t *testing.T, e *idptest.Env) {
			updateAlice(e, t, func(u *storage.User) { u.PasswordChangedAt = storage.At(e.Clock.Now().Add(time.Second)) })
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"user disabled", func(t *testing.T, e *idptest.Env) { updateAlice(e, t, func(u *storage.User) { u.Disabled = true }) }, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"user deleted", func(t *testing.T, e *idptest.Env) {
			if err := e.DB.DeleteUser(context.Background(), e.Users["alice"].ID); err != nil {
				t.Fatal(err)
			}
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"sign out everywhere", func(t *testing.T, e *idptest.Env) {
			if _, err := e.DB.RevokeUserRefreshFamilies(context.Background(), e.Users["alice"].ID, storage.RevokeSignOut, e.Clock.Now()); err != nil {
				t.Fatal(err)
			}
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"client disabled", func(t *testing.T, e *idptest.Env) { setClientDisabled(e, t, "C1", true) }, "C1", nil, 401, web.ErrInvalidClient, ""},
		{"client re-enabled after its tokens were revoked", func(t *testing.T, e *idptest.Env) {
			setClientDisabled(e, t, "C1", true)
			if _, err := e.DB.RevokeClientRefreshFamilies(context.Background(), "C1", storage.RevokeClient, e.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			setClientDisabled(e, t, "C1", false)
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"scope removed from the client", func(t *testing.T, e *idptest.Env) {
			if _, err := e.DB.UpdateClient(context.Background(), "C1", func(c *storage.Client) error {
				c.Scopes = storage.List{"openid", "read"}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, "C1", nil, 200, "", "openid read"},
		{"same audience", nil, "C1", []string{"audience", "https://rs2.test"}, 200, "", "openid read write"},
		{"another registered audience", nil, "C1", []string{"audience", "https://rs1.test"}, 400, web.ErrInvalidTarget, ""},
		{"audience not registered", nil, "C1", []string{"audience", "https://evil.test"}, 400, web.ErrInvalidTarget, ""},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				reset(e, t)
				e.RT = e.Login("scope", "openid read write", "audience", "https://rs2.test").Str("refresh_token")
				if tt.act != nil {
					tt.act(t, e)
				}
				r := e.Token(tt.client, idptest.RefreshForm(e.RT, tt.extra...))
				if tt.wantStatus != 200 {
					idptest.CheckE1(t, r, tt.wantStatus, tt.wantCode)
					return
				}
				if r.Status != 200 || r.Str("scope") != tt.wantScope {
					t.Fatalf("%d %s, want scope %q", r.Status, r.Body, tt.wantScope)
				}
				_, p := idptest.JWTParts(t, r.Str("access_token"))
				wantAud := "https://rs2.test"
				if len(tt.extra) > 0 && tt.extra[0] == "audience" {
					wantAud = tt.extra[1]
				}
				if p["aud"] != wantAud {
					t.Errorf("aud %v, want %q", p["aud"], wantAud)
				}
				// RT-04: the successor's scope is the original, even after narrowing.
				r2 := e.Token("C1", idptest.RefreshForm(r.Str("refresh_token")))
				if r2.Status != 200 || (tt.name == "narrower scope" && r2.Str("scope") != "openid read write") {
					t.Errorf("the successor: %d %s", r2.Status, r2.Body)
				}
			})
		}
	})
}

// reset restores the fixture users and clients that TestRefreshRules cases
// change, so the cases share one database.
func reset(e *idptest.Env, t *testing.T) {
	t.Helper()
	e.Clock.Reset()
	ctx := context.Background()
	if _, err := e.DB.User(ctx, e.Users["alice"].ID); err != nil {
		u := e.AddUser("alice", idptest.AlicePassword, false)
		e.Users["alice"] = u
	}
	updateAlice(e, t, func(u *storage.User) {
		u.Disabled = false
		u.PasswordChangedAt = storage.At(e.Clock.Now().Add(-time.Hour))
	})
	if _, err := e.DB.UpdateClient(ctx, "C1", func(c *storage.Client) error {
		c.Disabled = false
		c.Scopes = storage.List{"openid", "profile", "email", "read", "write", manage.ScopeAdmin}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func updateAlice(e *idptest.Env, t *testing.T, f func(*storage.User)) {
	t.Helper()
	if _, err := e.DB.UpdateUser(context.Background(), e.Users["alice"].ID, func(u *storage.User) error { f(u); return nil }); err != nil {
		t.Fatal(err)
	}
}

func setClientDisabled(e *idptest.Env, t *testing.T, id string, disabled bool) {
	t.Helper()
	if _, err := e.DB.UpdateClient(context.Background(), id, func(c *storage.Client) error { c.Disabled = disabled; return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshStoredHashed is RT-01: no refresh token appears in the
// database, only SHA-256 hashes; the successor cannot be derived from it.
func TestRefreshStoredHashed(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		rt1 := e.Login().Str("refresh_token")
		rt2 := e.Token("C1", idptest.RefreshForm(rt1)).Str("refresh_token")
		var rows []struct {
			Hash []byte `db:"hash"`
			Succ []byte `db:"successor_hash"`
			Salt []byte `db:"successor_salt"`
		}
		if err := e.DB.SQL().Select(&rows, `SELECT hash, successor_hash, successor_salt FROM refresh_tokens`); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("%d rows", len(rows))
		}
		for _, rt := range []string{rt1, rt2} {
			for _, r := range rows {
				for _, col := range [][]byte{r.Hash, r.Succ, r.Salt} {
					if strings.Contains(string(col), rt) || strings.Contains(string(col), rt[5:]) {
						t.Fatal("a refresh token is stored in clear")
					}
				}
			}
			found := false
			for _, r := range rows {
				found = found || string(r.Hash) == string(oauth.RefreshHash(rt))
			}
			if !found {
				t.Error("no row holds the token's SHA-256")
			}
		}
	})
}

// TestRefreshRetryNarrowScope: a retry within the window may narrow the
// access token's scope differently but gets the same refresh token.
func TestRefreshRetryNarrowScope(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	rt := e.Login().Str("refresh_token")
	r := e.Token("C1", idptest.RefreshForm(rt, "scope", "read"))
	r2 := e.Token("C1", idptest.RefreshForm(rt, "scope", "profile"))
	if r.Status != http.StatusOK || r2.Status != http.StatusOK || r.Str("refresh_token") != r2.Str("refresh_token") || r2.Str("scope") != "profile" {
		t.Fatalf("%s / %s", r.Body, r2.Body)
	}
}

// TestTokenCleanup: revoked families and their tokens go once no access
// token that names them can still be valid; live ones stay.
func TestTokenCleanup(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		revoked := e.Login().Str("refresh_token")
		live := e.Login().Str("refresh_token")
		if r := e.Do(idptest.Request{Path: "/oauth2/revoke", Auth: e.Basic("C1"), Body: "token=" + revoked}); r.Status != 200 {
			t.Fatal(r.Status)
		}
		if n, err := e.Srv.OAuth().CleanupTokens(context.Background()); err != nil || n != 0 {
			t.Fatalf("early cleanup: %d %v", n, err)
		}
		e.Clock.Advance(oauth.DefaultAccessTokenTTL + oauth.TokenCleanupMargin + time.Second)
		n, err := e.Srv.OAuth().CleanupTokens(context.Background())
		if err != nil || n != 2 { // the revoked family and its token
			t.Fatalf("cleanup: %d %v", n, err)
		}
		if r := e.Token("C1", idptest.RefreshForm(live)); r.Status != 200 {
			t.Fatalf("live family after cleanup: %s", r.Body)
		}
	})
}

// TestTokenMetrics: the token endpoint counts requests by grant and
// outcome, login failures by reason and refresh reuse by result.
func TestTokenMetrics(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	rt := e.Login().Str("refresh_token")
	e.Token("C1", idptest.RefreshForm(rt))
	e.Token("C1", idptest.RefreshForm(rt)) // within the window
	e.Clock.Advance(time.Minute)
	e.Token("C1", idptest.RefreshForm(rt)) // reuse
	e.Token("C1", idptest.PasswordForm("ghost", "x"))
	e.Token("C1", url.Values{"grant_type": {"magic"}})
	r := e.Do(idptest.Request{Method: "GET", Path: "/metrics", ContentType: "-"})
	for _, want := range []string{
		`keyward_token_requests_total{grant_type="password",outcome="success"} 1`,
		`keyward_token_requests_total{grant_type="password",outcome="invalid_grant"} 1`,
		`keyward_token_requests_total{grant_type="refresh_token",outcome="success"} 2`,
		`keyward_token_requests_total{grant_type="refresh_token",outcome="invalid_grant"} 1`,
		`keyward_token_requests_total{grant_type="other",outcome="unsupported_grant_type"} 1`,
		`keyward_login_failures_total{reason="invalid_credentials"} 1`, // unknown_user, collapsed on the router's /metrics
		`keyward_refresh_reuse_total{result="replayed_in_window"} 1`,
		`keyward_refresh_reuse_total{result="family_revoked"} 1`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
