package oauth_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// userinfo calls /userinfo with at and returns the status.
func userinfo(e *idptest.Env, at string) int {
	e.T.Helper()
	return e.Do(idptest.Request{Method: http.MethodGet, Path: "/userinfo", ContentType: "-", Auth: "Bearer " + at}).Status
}

// TestCodeBindings: the code is refused (invalid_grant) with a wrong
// verifier, a missing one, another redirect URI, by another client, and
// after its 60 s; any such presentation uses it up.
func TestCodeBindings(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		otherVerifier := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
		tests := []struct {
			name     string
			client   string
			form     func(code string) url.Values
			wantCode string
		}{
			{"wrong verifier", "web", func(c string) url.Values { return codeForm(c, webRedirect, otherVerifier) }, web.ErrInvalidGrant},
			{"verifier is the challenge (plain)", "web", func(c string) url.Values {
				return codeForm(c, webRedirect, oauth.S256(testVerifier))
			}, web.ErrInvalidGrant},
			{"other redirect URI", "web", func(c string) url.Values { return codeForm(c, "https://app.test/cb2", testVerifier) }, web.ErrInvalidGrant},
			{"another client", "web2", func(c string) url.Values { return codeForm(c, webRedirect, testVerifier) }, web.ErrInvalidGrant},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code := getCode(t, e, authQuery("web", webRedirect))
				idptest.CheckE1(t, e.Token(tt.client, tt.form(code)), 400, tt.wantCode)
				// Used up: the right request fails now too.
				idptest.CheckE1(t, e.Token("web", codeForm(code, webRedirect, testVerifier)), 400, web.ErrInvalidGrant)
			})
		}
		t.Run("missing verifier", func(t *testing.T) {
			code := getCode(t, e, authQuery("web", webRedirect))
			f := codeForm(code, webRedirect, testVerifier)
			f.Del("code_verifier")
			idptest.CheckE1(t, e.Token("web", f), 400, web.ErrInvalidRequest)
		})
		t.Run("unknown code", func(t *testing.T) {
			idptest.CheckE1(t, e.Token("web", codeForm("not-a-code", webRedirect, testVerifier)), 400, web.ErrInvalidGrant)
		})
		t.Run("expired", func(t *testing.T) {
			code := getCode(t, e, authQuery("web", webRedirect))
			e.Clock.Advance(oauth.AuthCodeTTL + time.Second)
			defer e.Clock.Reset()
			idptest.CheckE1(t, e.Token("web", codeForm(code, webRedirect, testVerifier)), 400, web.ErrInvalidGrant)
		})
		t.Run("just in time", func(t *testing.T) {
			code := getCode(t, e, authQuery("web", webRedirect))
			e.Clock.Advance(oauth.AuthCodeTTL - 2*time.Second)
			defer e.Clock.Reset()
			if r := e.Token("web", codeForm(code, webRedirect, testVerifier)); r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
		t.Run("client not registered for the grant", func(t *testing.T) {
			code := getCode(t, e, authQuery("web", webRedirect))
			idptest.CheckE1(t, e.Token("C1", codeForm(code, webRedirect, testVerifier)), 400, web.ErrUnauthorizedClient)
		})
	})
}

// TestCodeReplayRevokes: a second use of a code is invalid_grant and
// revokes the refresh family and the access token the first use got
// (RFC 6749 §4.1.2).
func TestCodeReplayRevokes(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		code := getCode(t, e, authQuery("web", webRedirect))
		first := e.Token("web", codeForm(code, webRedirect, testVerifier))
		if first.Status != 200 {
			t.Fatalf("first use: %d %s", first.Status, first.Body)
		}
		if s := userinfo(e, first.Str("access_token")); s != 200 {
			t.Fatalf("userinfo before the replay: %d", s)
		}
		idptest.CheckE1(t, e.Token("web", codeForm(code, webRedirect, testVerifier)), 400, web.ErrInvalidGrant)
		if s := userinfo(e, first.Str("access_token")); s != http.StatusUnauthorized {
			t.Errorf("userinfo with the first access token after the replay: %d, want 401", s)
		}
		idptest.CheckE1(t, e.Token("web", idptest.RefreshForm(first.Str("refresh_token"))), 400, web.ErrInvalidGrant)
		_, at := idptest.JWTParts(t, first.Str("access_token"))
		f, err := e.DB.RefreshFamily(t.Context(), at["sid"].(string))
		if err != nil || f.RevokedAt.IsZero() {
			t.Errorf("family after the replay: %+v %v", f, err)
		}
	})
}

// TestCodeUserChanged: a password change or a disable between the code and
// its exchange makes the code useless.
func TestCodeUserChanged(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		code := getCode(t, e, authQuery("web", webRedirect))
		if _, err := e.DB.UpdateUser(t.Context(), e.Users["alice"].ID, func(u *storage.User) error {
			u.Disabled = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		idptest.CheckE1(t, e.Token("web", codeForm(code, webRedirect, testVerifier)), 400, web.ErrInvalidGrant)
	})
}

// TestPasswordLimitsOnlyOnPasswordFamilies: TE-16's forbidden scopes and
// shorter family lifetime bind the password grant's families, not those
// the authorization code starts.
func TestPasswordLimitsOnlyOnPasswordFamilies(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b, func(c *idp.Config) {
			c.PasswordForbiddenScopes = []string{"write"}
			c.PasswordRefreshTokenTTL = time.Hour
		})
		code := getCode(t, e, authQuery("web", webRedirect, "scope", "openid write"))
		tr := e.Token("web", codeForm(code, webRedirect, testVerifier))
		if tr.Status != 200 || tr.Str("scope") != "openid write" {
			t.Fatalf("code grant with a password-forbidden scope: %d %s", tr.Status, tr.Body)
		}
		pw := e.Login("scope", "openid read")
		e.Clock.Advance(2 * time.Hour)
		defer e.Clock.Reset()
		if r := e.Token("web", idptest.RefreshForm(tr.Str("refresh_token"))); r.Status != 200 || r.Str("scope") != "openid write" {
			t.Errorf("refresh of the code family after 2h: %d %s", r.Status, r.Body)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(pw.Str("refresh_token"))), 400, web.ErrInvalidGrant)
		// The admin scope stays out of any user's grant.
		q := atRedirect(t, authorize(e, authQuery("web", webRedirect, "scope", manage.ScopeAdmin), "alice"), webRedirect)
		if q.Get("error") != web.ErrInvalidScope {
			t.Errorf("admin scope by authorization: %v", q)
		}
	})
}

// TestPublicClientRegistration: a public client may be registered for the
// authorization code (and refresh), never for password or
// client_credentials; a client with the authorization code needs a
// redirect URI, and redirect URIs follow the rules.
func TestPublicClientRegistration(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec manage.ClientSpec
		ok   bool
	}{
		{"public code client", manage.ClientSpec{ID: "p", Public: true, Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{spaRedirect}}, true},
		{"public password", manage.ClientSpec{ID: "p", Public: true, Grants: []string{manage.GrantPassword}}, false},
		{"public client_credentials", manage.ClientSpec{ID: "p", Public: true, Grants: []string{manage.GrantClientCredentials}}, false},
		{"code without redirect", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}}, false},
		{"fragment", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"https://a.test/cb#f"}}, false},
		{"wildcard", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"https://*.a.test/cb"}}, false},
		{"plain http", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"http://a.test/cb"}}, false},
		{"localhost", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"http://localhost/cb"}}, false},
		{"ipv6 loopback", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"http://[::1]/cb"}}, true},
		{"private-use scheme", manage.ClientSpec{ID: "p", Grants: []string{manage.GrantAuthorizationCode}, RedirectURIs: []string{"com.example.app:/cb"}}, true},
		{"bad post-logout", manage.ClientSpec{ID: "p", PostLogoutRedirectURIs: []string{"javascript:alert(1)"}}, false},
	} {
		_, _, err := manage.NewClient(tc.spec)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if !manage.MatchRedirectURI([]string{"http://[::1]/cb"}, "http://[::1]:6000/cb") {
		t.Error("[::1] on another port does not match")
	}
}

// TestAuthenticatePassword: the login page's check answers as the password
// grant does.
func TestAuthenticatePassword(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		p := e.Srv.OAuth()
		u, err := p.AuthenticatePassword(t.Context(), "web", "alice", idptest.AlicePassword)
		if err != nil || u.ID != e.Users["alice"].ID {
			t.Fatalf("right password: %v %v", u.ID, err)
		}
		for _, tc := range [][2]string{{"alice", "wrong"}, {"nobody", idptest.AlicePassword}, {"dave-disabled", idptest.AlicePassword}, {"alice", ""}} {
			_, err := p.AuthenticatePassword(t.Context(), "web", tc[0], tc[1])
			var we *web.Error
			if !idptest.ErrorsAs(err, &we) || we.Code != web.ErrInvalidGrant || we.Description != "the username or password is incorrect" {
				t.Errorf("%v: %v, want the one invalid_grant answer", tc, err)
			}
		}
	})
}
