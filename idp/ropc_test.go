package idp

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestPasswordForbiddenScopes is TE-16's scope half: a scope on
// Config.PasswordForbiddenScopes, and keyward:admin, is invalid_scope by
// password whether or not the client is registered for it, left out of the
// password grant's default scope, and still granted to client_credentials.
func TestPasswordForbiddenScopes(t *testing.T) {
	tests := []struct {
		name, client string
		form         url.Values
		wantCode     string // "" means 200
		wantScope    string
	}{
		{"forbidden scope by password", "C1", passwordForm("alice", alicePassword, "scope", "read write"), web.ErrInvalidScope, ""},
		{"forbidden scope alone", "C1", passwordForm("alice", alicePassword, "scope", "write"), web.ErrInvalidScope, ""},
		{"forbidden scope, client not registered for it", "C2", passwordForm("alice", alicePassword, "scope", "write"), web.ErrInvalidScope, ""},
		{"forbidden OIDC scope", "C1", passwordForm("alice", alicePassword, "scope", "openid email"), web.ErrInvalidScope, ""},
		{"admin scope by password", "C1", passwordForm("alice", alicePassword, "scope", manage.ScopeAdmin), web.ErrInvalidScope, ""},
		{"allowed scope by password", "C1", passwordForm("alice", alicePassword, "scope", "openid read"), "", "openid read"},
		{"default scope by password leaves them out", "C1", passwordForm("alice", alicePassword), "", "profile read"},
		{"forbidden scope by client_credentials", "CC", ccForm("scope", "write"), "", "write"},
		{"default scope by client_credentials", "CC", ccForm(), "", "read write"},
	}
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.PasswordForbiddenScopes = []string{"write", oauth.ScopeEmail} })
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.token(tt.client, tt.form)
				if tt.wantCode != "" {
					checkE1(t, r, 400, tt.wantCode)
					return
				}
				if r.status != 200 || r.str("scope") != tt.wantScope {
					t.Fatalf("%d %s, want scope %q", r.status, r.body, tt.wantScope)
				}
			})
		}
	})
}

// TestPasswordForbiddenScopeOnRefresh: a refresh of a password-grant family
// never gains a scope, and a scope the operator forbids after the login
// leaves the session at its next refresh (dropped by default, invalid_scope
// when asked for).
func TestPasswordForbiddenScopeOnRefresh(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		rt := e.login("scope", "openid read write").str("refresh_token")
		// Narrowing only: a scope the login did not get is refused.
		checkE1(t, e.token("C1", refreshForm(rt, "scope", "read email")), 400, web.ErrInvalidScope)

		e.restart(func(c *Config) { c.PasswordForbiddenScopes = []string{"write"} })
		checkE1(t, e.token("C1", refreshForm(rt, "scope", "read write")), 400, web.ErrInvalidScope)
		r := e.token("C1", refreshForm(rt))
		if r.status != 200 || r.str("scope") != "openid read" {
			t.Fatalf("default refresh after write was forbidden: %d %s, want scope %q", r.status, r.body, "openid read")
		}
		_, p := jwtParts(t, r.str("access_token"))
		if p["scope"] != "openid read" {
			t.Errorf("access token scope %v", p["scope"])
		}
	})
}

// TestPasswordRefreshLifetime is TE-16's lifetime half: a password-grant
// family ends at Config.PasswordRefreshTokenTTL however regularly it is
// refreshed, while one under the general RefreshTokenTTL lives on; a
// maximum above RefreshTokenTTL counts as RefreshTokenTTL; the idle
// lifetime applies as before.
func TestPasswordRefreshLifetime(t *testing.T) {
	day := 24 * time.Hour
	type step struct {
		advance  time.Duration
		wantCode string // "" means 200
	}
	tests := []struct {
		name       string
		change     func(*Config)
		wantExpiry time.Duration // the family's stored absolute expiry, after the login
		steps      []step
	}{
		{"password-grant maximum", func(c *Config) { c.PasswordRefreshTokenTTL = 3 * day }, 3 * day,
			[]step{{2 * day, ""}, {day - time.Second, ""}, {time.Second, web.ErrInvalidGrant}}},
		{"unset: the general lifetime", nil, oauth.DefaultRefreshTokenTTL,
			[]step{{2 * day, ""}, {day, ""}, {6 * day, ""}, {6 * day, ""}}},
		{"above the general lifetime counts as it", func(c *Config) {
			c.RefreshTokenTTL, c.PasswordRefreshTokenTTL = 4*day, 10*day
		}, 4 * day, []step{{2 * day, ""}, {2 * day, web.ErrInvalidGrant}}},
		{"idle lifetime as before", func(c *Config) { c.PasswordRefreshTokenTTL = 20 * day }, 20 * day,
			[]step{{6 * day, ""}, {7*day + time.Second, web.ErrInvalidGrant}}},
		{"maximum shorter than the idle lifetime", func(c *Config) { c.PasswordRefreshTokenTTL = day }, day,
			[]step{{day, web.ErrInvalidGrant}}},
	}
	backends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var change []func(*Config)
				if tt.change != nil {
					change = append(change, tt.change)
				}
				e := newEnv(t, b, change...)
				start := e.clock.Now()
				rt := e.login().str("refresh_token")
				fams, err := e.db.RefreshFamilies(t.Context(), e.users["alice"].ID)
				if err != nil || len(fams) != 1 {
					t.Fatalf("families %v, %v", fams, err)
				}
				if d := fams[0].ExpiresAt.Time.Sub(start.Add(tt.wantExpiry)).Abs(); d > time.Second {
					t.Errorf("family expires at %v, want %v after the login", fams[0].ExpiresAt.Time, tt.wantExpiry)
				}
				for i, s := range tt.steps {
					e.clock.Advance(s.advance)
					r := e.token("C1", refreshForm(rt))
					if s.wantCode != "" {
						checkE1(t, r, 400, s.wantCode)
						return
					}
					if r.status != 200 {
						t.Fatalf("refresh %d, %v after the login: %d %s", i+1, e.clock.Now().Sub(start).Round(time.Second), r.status, r.body)
					}
					rt = r.str("refresh_token")
				}
			})
		}
	})
}

// restart replaces e's server with a new one over the same database, keys
// and clock, its Config changed by change, as an operator restarting with
// other flags would. Requests then go to the new server; the issuer stays.
func (e *env) restart(change func(*Config)) {
	e.t.Helper()
	cfg := e.srv.cfg
	change(&cfg)
	srv, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	e.t.Cleanup(func() {
		ts.Close()
		srv.Auditor().Flush()
	})
	e.srv, e.url = srv, ts.URL
}
