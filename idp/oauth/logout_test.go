package oauth_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// logout sends GET /oauth2/logout with q as user ("" for no session).
func logout(e *idptest.Env, q url.Values, user string) idptest.Response {
	e.T.Helper()
	h := http.Header{}
	if user != "" {
		h.Set(userHeader, user)
	}
	return e.Do(idptest.Request{Method: http.MethodGet, Path: oauth.LogoutPath, Query: q.Encode(), ContentType: "-", Header: h})
}

// TestLogout is OIDC RP-Initiated Logout: a valid hint (even expired) of
// the session's user ends the session and returns to the registered
// post_logout_redirect_uri with state; an unregistered one goes to the
// signed-out page; no hint, a forged one, an access token, or another
// user's hint goes to the confirmation page and ends nothing.
func TestLogout(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, ti := authzEnv(t, b)
		code := getCode(t, e, authQuery("web", webRedirect))
		tr := e.Token("web", codeForm(code, webRedirect, testVerifier))
		if tr.Status != 200 {
			t.Fatalf("token: %d %s", tr.Status, tr.Body)
		}
		hint := tr.Str("id_token")
		e.AddUser("bob", idptest.AlicePassword, false)

		confirm := []struct {
			name string
			q    url.Values
			user string
		}{
			{"no hint", url.Values{"post_logout_redirect_uri": {webLogout}}, "alice"},
			{"access token as hint", url.Values{"id_token_hint": {tr.Str("access_token")}}, "alice"},
			{"forged hint", url.Values{"id_token_hint": {hint[:len(hint)-4] + "AAAA"}}, "alice"},
			{"another user's session", url.Values{"id_token_hint": {hint}}, "bob"},
			{"client_id not the hint's", url.Values{"id_token_hint": {hint}, "client_id": {"web2"}}, "alice"},
		}
		for _, tc := range confirm {
			if u := location(t, logout(e, tc.q, tc.user)); u.String() != oauth.LogoutPagePath {
				t.Errorf("%s: redirected to %s, want %s", tc.name, u, oauth.LogoutPagePath)
			}
		}
		if ended := ti.endedSessions(); len(ended) != 0 {
			t.Fatalf("sessions ended without a valid hint: %v", ended)
		}

		// An unregistered post-logout URI: signed out, but not sent there.
		if u := location(t, logout(e, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.test/"}}, "alice")); u.String() != oauth.LogoutDonePath {
			t.Errorf("unregistered post-logout URI: %s", u)
		}
		// The registered one, with state, after the hint expired.
		e.Clock.Advance(24 * time.Hour)
		defer e.Clock.Reset()
		u := location(t, logout(e, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webLogout}, "state": {"s1"}}, "alice"))
		if u.Query().Get("state") != "s1" || u.Scheme+"://"+u.Host+u.Path != webLogout {
			t.Errorf("registered post-logout URI: %s", u)
		}
		if ended := ti.endedSessions(); !slices.Equal(ended, []string{"alice", "alice"}) {
			t.Errorf("ended sessions %v, want alice twice", ended)
		}
		// POST works too.
		r := e.Do(idptest.Request{Path: oauth.LogoutPath, Body: url.Values{"id_token_hint": {hint}}.Encode(), Header: http.Header{userHeader: {"alice"}}})
		if u := location(t, r); u.String() != oauth.LogoutDonePath {
			t.Errorf("POST logout: %s", u)
		}
	})
}
