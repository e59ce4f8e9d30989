package oauth_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestPasswordForbiddenScopes is TE-16's scope half: a scope on
// idp.Config.PasswordForbiddenScopes, and keyward:admin, is invalid_scope by
// password whether or not the client is registered for it, left out of the
// password grant's default scope, and still granted to client_credentials.
func TestPasswordForbiddenScopes(t *testing.T) {
	tests := []struct {
		name, client string
		form         url.Values
		wantCode     string // "" means 200
		wantScope    string
	}{
		{"forbidden scope by password", "C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "read write"), web.ErrInvalidScope, ""},
		{"forbidden scope alone", "C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "write"), web.ErrInvalidScope, ""},
		{"forbidden scope, client not registered for it", "C2", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "write"), web.ErrInvalidScope, ""},
		{"forbidden OIDC scope", "C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "openid email"), web.ErrInvalidScope, ""},
		{"admin scope by password", "C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", manage.ScopeAdmin), web.ErrInvalidScope, ""},
		{"allowed scope by password", "C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "openid read"), "", "openid read"},
		{"default scope by password leaves them out", "C1", idptest.PasswordForm("alice", idptest.AlicePassword), "", "profile read"},
		{"forbidden scope by client_credentials", "CC", idptest.CCForm("scope", "write"), "", "write"},
		{"default scope by client_credentials", "CC", idptest.CCForm(), "", "read write"},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.PasswordForbiddenScopes = []string{"write", oauth.ScopeEmail} })
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.Token(tt.client, tt.form)
				if tt.wantCode != "" {
					idptest.CheckE1(t, r, 400, tt.wantCode)
					return
				}
				if r.Status != 200 || r.Str("scope") != tt.wantScope {
					t.Fatalf("%d %s, want scope %q", r.Status, r.Body, tt.wantScope)
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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		rt := e.Login("scope", "openid read write").Str("refresh_token")
		// Narrowing only: a scope the login did not get is refused.
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt, "scope", "read email")), 400, web.ErrInvalidScope)

		e.Restart(func(c *idp.Config) { c.PasswordForbiddenScopes = []string{"write"} })
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt, "scope", "read write")), 400, web.ErrInvalidScope)
		r := e.Token("C1", idptest.RefreshForm(rt))
		if r.Status != 200 || r.Str("scope") != "openid read" {
			t.Fatalf("default refresh after write was forbidden: %d %s, want scope %q", r.Status, r.Body, "openid read")
		}
		_, p := idptest.JWTParts(t, r.Str("access_token"))
		if p["scope"] != "openid read" {
			t.Errorf("access token scope %v", p["scope"])
		}
	})
}

// TestPasswordRefreshLifetime is TE-16's lifetime half: a password-grant
// family ends at idp.Config.PasswordRefreshTokenTTL however regularly it is
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
		change     func(*idp.Config)
		wantExpiry time.Duration // the family's stored absolute expiry, after the login
		steps      []step
	}{
		{"password-grant maximum", func(c *idp.Config) { c.PasswordRefreshTokenTTL = 3 * day }, 3 * day,
			[]step{{2 * day, ""}, {day - time.Second, ""}, {time.Second, web.ErrInvalidGrant}}},
		{"unset: the general lifetime", nil, oauth.DefaultRefreshTokenTTL,
			[]step{{2 * day, ""}, {day, ""}, {6 * day, ""}, {6 * day, ""}}},
		{"above the general lifetime counts as it", func(c *idp.Config) {
			c.RefreshTokenTTL, c.PasswordRefreshTokenTTL = 4*day, 10*day
		}, 4 * day, []step{{2 * day, ""}, {2 * day, web.ErrInvalidGrant}}},
		{"idle lifetime as before", func(c *idp.Config) { c.PasswordRefreshTokenTTL = 20 * day }, 20 * day,
			[]step{{6 * day, ""}, {7*day + time.Second, web.ErrInvalidGrant}}},
		{"maximum shorter than the idle lifetime", func(c *idp.Config) { c.PasswordRefreshTokenTTL = day }, day,
			[]step{{day, web.ErrInvalidGrant}}},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var change []func(*idp.Config)
				if tt.change != nil {
					change = append(change, tt.change)
				}
				e := idptest.New(t, b, change...)
				start := e.Clock.Now()
				rt := e.Login().Str("refresh_token")
				fams, err := e.DB.RefreshFamilies(t.Context(), e.Users["alice"].ID)
				if err != nil || len(fams) != 1 {
					t.Fatalf("families %v, %v", fams, err)
				}
				if d := fams[0].ExpiresAt.Time.Sub(start.Add(tt.wantExpiry)).Abs(); d > time.Second {
					t.Errorf("family expires at %v, want %v after the login", fams[0].ExpiresAt.Time, tt.wantExpiry)
				}
				for i, s := range tt.steps {
					e.Clock.Advance(s.advance)
					r := e.Token("C1", idptest.RefreshForm(rt))
					if s.wantCode != "" {
						idptest.CheckE1(t, r, 400, s.wantCode)
						return
					}
					if r.Status != 200 {
						t.Fatalf("refresh %d, %v after the login: %d %s", i+1, e.Clock.Now().Sub(start).Round(time.Second), r.Status, r.Body)
					}
					rt = r.Str("refresh_token")
				}
			})
		}
	})
}
