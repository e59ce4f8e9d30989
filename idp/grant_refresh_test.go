package idp

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

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
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		rt1 := e.login("scope", "openid read").str("refresh_token")
		r := e.token("C1", refreshForm(rt1))
		rt2 := r.str("refresh_token")
		if r.status != 200 || rt2 == "" || rt2 == rt1 || r.str("scope") != "openid read" || r.str("id_token") == "" {
			t.Fatalf("first refresh: %d %s", r.status, r.body)
		}
		// A retry within the window: the same successor, a fresh access token.
		again := e.token("C1", refreshForm(rt1))
		if again.status != 200 || again.str("refresh_token") != rt2 || again.str("access_token") == r.str("access_token") {
			t.Fatalf("retry within the window: %d %s", again.status, again.body)
		}
		// After the window the first token is reuse: the family is revoked.
		e.clock.Advance(oauth.DefaultRefreshReuseWindow + time.Second)
		reuse := e.token("C1", refreshForm(rt1))
		checkE1(t, reuse, 400, web.ErrInvalidGrant)
		checkE1(t, e.token("C1", refreshForm(rt2)), 400, web.ErrInvalidGrant)
		logs := e.logs.String()
		if !strings.Contains(logs, `"msg":"refresh token reuse detected"`) || !strings.Contains(logs, `"msg":"refresh_reuse_detected"`) || strings.Contains(logs, rt1[5:]) || strings.Contains(logs, rt2[5:]) {
			t.Errorf("reuse log missing, or a token in the logs")
		}
		// Access tokens of the family stop at introspection (sid).
		in := e.do(request{path: "/oauth2/introspect", auth: e.basic("C1"), body: "token=" + again.str("access_token")})
		if string(in.body) != "{\"active\":false}\n" {
			t.Errorf("introspection of a revoked family's access token: %s", in.body)
		}
	})
}

// TestRefreshReuseAfterSuccessorUsed: a retry within the window once the
// successor has been used is reuse.
func TestRefreshReuseAfterSuccessorUsed(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	rt1 := e.login().str("refresh_token")
	rt2 := e.token("C1", refreshForm(rt1)).str("refresh_token")
	rt3 := e.token("C1", refreshForm(rt2)).str("refresh_token")
	checkE1(t, e.token("C1", refreshForm(rt1)), 400, web.ErrInvalidGrant)
	checkE1(t, e.token("C1", refreshForm(rt3)), 400, web.ErrInvalidGrant)
}

// TestRefreshWindowOff: with the window off, an immediate retry revokes.
func TestRefreshWindowOff(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0], func(c *Config) { c.RefreshReuseWindow = -1 })
	rt1 := e.login().str("refresh_token")
	rt2 := e.token("C1", refreshForm(rt1)).str("refresh_token")
	checkE1(t, e.token("C1", refreshForm(rt1)), 400, web.ErrInvalidGrant)
	checkE1(t, e.token("C1", refreshForm(rt2)), 400, web.ErrInvalidGrant)
}

// TestRefreshConcurrent is RT-06 over HTTP on both backends: 20 requests
// with one token at once get the same successor or a clean invalid_grant,
// never two live successors and never a 5xx.
func TestRefreshConcurrent(t *testing.T) {
	for _, window := range []time.Duration{0, -1} {
		name := map[time.Duration]string{0: "window", -1: "no window"}[window]
		t.Run(name, func(t *testing.T) {
			backends(t, func(t *testing.T, b storagetest.Backend) {
				e := newEnv(t, b, func(c *Config) { c.RefreshReuseWindow = window })
				rt := e.login().str("refresh_token")
				const n = 20
				res := make([]response, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() { <-start; res[i] = e.token("C1", refreshForm(rt)) })
				}
				close(start)
				wg.Wait()
				successors := map[string]bool{}
				for i, r := range res {
					switch {
					case r.status == 200:
						successors[r.str("refresh_token")] = true
					case r.status == 400 && r.str("error") == web.ErrInvalidGrant:
						if window == 0 {
							t.Errorf("request %d within the window: %s", i, r.body)
						}
					default:
						t.Errorf("request %d: %d %s", i, r.status, r.body)
					}
				}
				if len(successors) != 1 {
					t.Fatalf("%d distinct successors, want 1", len(successors))
				}
				for s := range successors {
					r := e.token("C1", refreshForm(s))
					if window == 0 && r.status != 200 {
						t.Errorf("the successor does not work: %s", r.body)
					}
					if window < 0 && r.status == 200 {
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
		act        func(t *testing.T, e *env) // before the refresh
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
		{"idle expiry", func(t *testing.T, e *env) { e.clock.Advance(7*day + time.Second) }, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"absolute expiry while used", func(t *testing.T, e *env) {
			for range 4 {
				e.clock.Advance(6 * day)
				r := e.token("C1", refreshForm(e.rt))
				if r.status != 200 {
					t.Fatalf("regular refresh: %s", r.body)
				}
				e.rt = r.str("refresh_token")
			}
			e.clock.Advance(6 * day) // 30 days after the login
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"password changed", func(t *testing.T, e *env) {
			e.updateAlice(t, func(u *storage.User) { u.PasswordChangedAt = storage.At(e.clock.Now().Add(time.Second)) })
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"user disabled", func(t *testing.T, e *env) { e.updateAlice(t, func(u *storage.User) { u.Disabled = true }) }, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"user deleted", func(t *testing.T, e *env) {
			if err := e.db.DeleteUser(context.Background(), e.users["alice"].ID); err != nil {
				t.Fatal(err)
			}
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"sign out everywhere", func(t *testing.T, e *env) {
			if _, err := e.db.RevokeUserRefreshFamilies(context.Background(), e.users["alice"].ID, storage.RevokeSignOut, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"client disabled", func(t *testing.T, e *env) { e.setClientDisabled(t, "C1", true) }, "C1", nil, 401, web.ErrInvalidClient, ""},
		{"client re-enabled after its tokens were revoked", func(t *testing.T, e *env) {
			e.setClientDisabled(t, "C1", true)
			if _, err := e.db.RevokeClientRefreshFamilies(context.Background(), "C1", storage.RevokeClient, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			e.setClientDisabled(t, "C1", false)
		}, "C1", nil, 400, web.ErrInvalidGrant, ""},
		{"scope removed from the client", func(t *testing.T, e *env) {
			if _, err := e.db.UpdateClient(context.Background(), "C1", func(c *storage.Client) error {
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
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e.reset(t)
				e.rt = e.login("scope", "openid read write", "audience", "https://rs2.test").str("refresh_token")
				if tt.act != nil {
					tt.act(t, e)
				}
				r := e.token(tt.client, refreshForm(e.rt, tt.extra...))
				if tt.wantStatus != 200 {
					checkE1(t, r, tt.wantStatus, tt.wantCode)
					return
				}
				if r.status != 200 || r.str("scope") != tt.wantScope {
					t.Fatalf("%d %s, want scope %q", r.status, r.body, tt.wantScope)
				}
				_, p := jwtParts(t, r.str("access_token"))
				wantAud := "https://rs2.test"
				if len(tt.extra) > 0 && tt.extra[0] == "audience" {
					wantAud = tt.extra[1]
				}
				if p["aud"] != wantAud {
					t.Errorf("aud %v, want %q", p["aud"], wantAud)
				}
				// RT-04: the successor's scope is the original, even after narrowing.
				r2 := e.token("C1", refreshForm(r.str("refresh_token")))
				if r2.status != 200 || (tt.name == "narrower scope" && r2.str("scope") != "openid read write") {
					t.Errorf("the successor: %d %s", r2.status, r2.body)
				}
			})
		}
	})
}

// reset restores the fixture users and clients that TestRefreshRules cases
// change, so the cases share one database.
func (e *env) reset(t *testing.T) {
	t.Helper()
	e.clock.offset.Store(0)
	ctx := context.Background()
	if _, err := e.db.User(ctx, e.users["alice"].ID); err != nil {
		u := e.addUser("alice", alicePassword, false)
		e.users["alice"] = u
	}
	e.updateAlice(t, func(u *storage.User) {
		u.Disabled = false
		u.PasswordChangedAt = storage.At(e.clock.Now().Add(-time.Hour))
	})
	if _, err := e.db.UpdateClient(ctx, "C1", func(c *storage.Client) error {
		c.Disabled = false
		c.Scopes = storage.List{"openid", "profile", "email", "read", "write", manage.ScopeAdmin}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) updateAlice(t *testing.T, f func(*storage.User)) {
	t.Helper()
	if _, err := e.db.UpdateUser(context.Background(), e.users["alice"].ID, func(u *storage.User) error { f(u); return nil }); err != nil {
		t.Fatal(err)
	}
}

func (e *env) setClientDisabled(t *testing.T, id string, disabled bool) {
	t.Helper()
	if _, err := e.db.UpdateClient(context.Background(), id, func(c *storage.Client) error { c.Disabled = disabled; return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshStoredHashed is RT-01: no refresh token appears in the
// database, only SHA-256 hashes; the successor cannot be derived from it.
func TestRefreshStoredHashed(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		rt1 := e.login().str("refresh_token")
		rt2 := e.token("C1", refreshForm(rt1)).str("refresh_token")
		var rows []struct {
			Hash []byte `db:"hash"`
			Succ []byte `db:"successor_hash"`
			Salt []byte `db:"successor_salt"`
		}
		if err := e.db.SQL().Select(&rows, `SELECT hash, successor_hash, successor_salt FROM refresh_tokens`); err != nil {
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
	e := newEnv(t, storagetest.Backends[0])
	rt := e.login().str("refresh_token")
	r := e.token("C1", refreshForm(rt, "scope", "read"))
	r2 := e.token("C1", refreshForm(rt, "scope", "profile"))
	if r.status != http.StatusOK || r2.status != http.StatusOK || r.str("refresh_token") != r2.str("refresh_token") || r2.str("scope") != "profile" {
		t.Fatalf("%s / %s", r.body, r2.body)
	}
}

// TestTokenCleanup: revoked families and their tokens go once no access
// token that names them can still be valid; live ones stay.
func TestTokenCleanup(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		revoked := e.login().str("refresh_token")
		live := e.login().str("refresh_token")
		if r := e.do(request{path: "/oauth2/revoke", auth: e.basic("C1"), body: "token=" + revoked}); r.status != 200 {
			t.Fatal(r.status)
		}
		if n, err := e.srv.OAuth().CleanupTokens(context.Background()); err != nil || n != 0 {
			t.Fatalf("early cleanup: %d %v", n, err)
		}
		e.clock.Advance(oauth.DefaultAccessTokenTTL + oauth.TokenCleanupMargin + time.Second)
		n, err := e.srv.OAuth().CleanupTokens(context.Background())
		if err != nil || n != 2 { // the revoked family and its token
			t.Fatalf("cleanup: %d %v", n, err)
		}
		if r := e.token("C1", refreshForm(live)); r.status != 200 {
			t.Fatalf("live family after cleanup: %s", r.body)
		}
	})
}

// TestTokenMetrics: the token endpoint counts requests by grant and
// outcome, login failures by reason and refresh reuse by result.
func TestTokenMetrics(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	rt := e.login().str("refresh_token")
	e.token("C1", refreshForm(rt))
	e.token("C1", refreshForm(rt)) // within the window
	e.clock.Advance(time.Minute)
	e.token("C1", refreshForm(rt)) // reuse
	e.token("C1", passwordForm("ghost", "x"))
	e.token("C1", url.Values{"grant_type": {"magic"}})
	r := e.do(request{method: "GET", path: "/metrics", contentType: "-"})
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
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
