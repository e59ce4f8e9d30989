package oauth_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAuthorizationCodeFlow: a signed-in, consenting browser gets a code at
// the registered redirect URI with state and iss (RFC 9207); the code and
// the PKCE verifier give an access token, a refresh token of an
// authorization_code family, and an ID token with nonce, auth_time and amr.
func TestAuthorizationCodeFlow(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		authTime := e.Clock.Now().Add(-5 * time.Minute).Unix()
		r := authorize(e, authQuery("web", webRedirect), "alice", authTimeHeader, strconv.FormatInt(authTime, 10))
		q := atRedirect(t, r, webRedirect)
		if q.Get("state") != "st-123" || q.Get("iss") != e.URL || q.Get("code") == "" {
			t.Fatalf("authorization response %v: want code, state st-123, iss %s", q, e.URL)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
		}
		tr := e.Token("web", codeForm(q.Get("code"), webRedirect, testVerifier))
		if tr.Status != 200 || tr.Str("access_token") == "" || tr.Str("refresh_token") == "" || tr.Str("id_token") == "" {
			t.Fatalf("token: %d %s", tr.Status, tr.Body)
		}
		_, idt := idptest.JWTParts(t, tr.Str("id_token"))
		if idt["nonce"] != "n-456" || idptest.Num(t, idt["auth_time"]) != authTime || idt["aud"] != "web" ||
			idt["sub"] != e.Users["alice"].ID || idt["preferred_username"] != "alice" {
			t.Errorf("ID token claims %v", idt)
		}
		if amr, _ := idt["amr"].([]any); len(amr) != 3 || amr[0] != "pwd" || amr[2] != "mfa" {
			t.Errorf("amr %v, want the session's [pwd otp mfa]", idt["amr"])
		}
		_, at := idptest.JWTParts(t, tr.Str("access_token"))
		f, err := e.DB.RefreshFamily(t.Context(), at["sid"].(string))
		if err != nil || f.Grant != "authorization_code" {
			t.Fatalf("family %+v %v: want grant authorization_code", f, err)
		}
		// Refresh tokens rotate as for any family; the refreshed ID token
		// keeps auth_time and drops nonce.
		rr := e.Token("web", idptest.RefreshForm(tr.Str("refresh_token")))
		if rr.Status != 200 {
			t.Fatalf("refresh: %d %s", rr.Status, rr.Body)
		}
		if _, idt2 := idptest.JWTParts(t, rr.Str("id_token")); idptest.Num(t, idt2["auth_time"]) != authTime || idt2["nonce"] != nil {
			t.Errorf("refreshed ID token %v", idt2)
		}
	})
}

// TestAuthorizePublicClientLoopback: a public client (RFC 8252) whose
// registered redirect URI is http://127.0.0.1/callback gets its code at
// any port of it, and exchanges it with PKCE and no secret.
func TestAuthorizePublicClientLoopback(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		redirect := "http://127.0.0.1:49152/callback"
		code := getCode(t, e, authQuery("spa", redirect))
		tr := publicToken(e, "spa", codeForm(code, redirect, testVerifier))
		if tr.Status != 200 || tr.Str("id_token") == "" {
			t.Fatalf("token: %d %s", tr.Status, tr.Body)
		}
		// The public client is refused the grants that are for confidential
		// clients only.
		idptest.CheckE1(t, publicToken(e, "spa", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrUnauthorizedClient)
		idptest.CheckE1(t, publicToken(e, "spa", idptest.CCForm()), 400, web.ErrUnauthorizedClient)
	})
}

// TestAuthorizeBadClientOrRedirect: an unknown client, a redirect URI that
// is not registered, differs in any part, or is missing, is the error page:
// never a redirect anywhere.
func TestAuthorizeBadClientOrRedirect(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		tests := []struct{ name, client, redirect string }{
			{"unregistered", "web", "https://evil.test/cb"},
			{"other path", "web", "https://app.test/cb/x"},
			{"extra query", "web", "https://app.test/cb?x=1"},
			{"other scheme", "web", "http://app.test/cb"},
			{"trailing slash", "web", "https://app.test/cb/"},
			{"fragment", "web", "https://app.test/cb#x"},
			{"other port on a non-loopback host", "web", "https://app.test:8443/cb"},
			{"localhost is not loopback", "spa", "http://localhost/callback"},
			{"loopback, other path", "spa", "http://127.0.0.1:5000/other"},
			{"another client's", "spa", webRedirect},
			{"unknown client", "nope", webRedirect},
			{"client without the grant", "C1", webRedirect},
			{"missing", "web", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := authorize(e, authQuery(tt.client, tt.redirect), "alice")
				noLocationTo(t, r, tt.redirect)
			})
		}
		// Even an invalid rest of the request is not redirected when the
		// redirect URI is bad.
		noLocationTo(t, authorize(e, authQuery("web", "https://evil.test/cb", "response_type", "token"), "alice"), "evil")
	})
}

// TestAuthorizeErrorsToClient: once client and redirect URI are good,
// errors go back to the client with state and iss: missing PKCE, plain,
// an unknown response type, a bad scope, prompt none mixed.
func TestAuthorizeErrorsToClient(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		tests := []struct {
			name  string
			extra []string
			want  string
		}{
			{"missing code_challenge", []string{"code_challenge", "", "code_challenge_method", ""}, "invalid_request"},
			{"missing method means plain", []string{"code_challenge_method", ""}, "invalid_request"},
			{"plain", []string{"code_challenge_method", "plain", "code_challenge", testVerifier}, "invalid_request"},
			{"short challenge", []string{"code_challenge", "abc"}, "invalid_request"},
			{"token response type", []string{"response_type", "token"}, "unsupported_response_type"},
			{"no response type", []string{"response_type", ""}, "invalid_request"},
			{"scope not registered", []string{"scope", "openid admin"}, "invalid_scope"},
			{"prompt none with login", []string{"prompt", "none login"}, "invalid_request"},
			{"negative max_age", []string{"max_age", "-1"}, "invalid_request"},
			{"request object", []string{"request", "eyJ.x.y"}, "request_not_supported"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := atRedirect(t, authorize(e, authQuery("web", webRedirect, tt.extra...), "alice"), webRedirect)
				if q.Get("error") != tt.want || q.Get("state") != "st-123" || q.Get("iss") != e.URL || q.Get("code") != "" {
					t.Errorf("response %v, want error %s with state and iss", q, tt.want)
				}
			})
		}
	})
}

// TestAuthorizeLoginAndConsentPages: without a session, with prompt=login,
// or past max_age the browser goes to /login?req=ID; a missing consent
// sends it to /consent?req=ID, a first-party client skips consent; resume
// after the pages marked the request issues the code, and a refusal is
// access_denied at the client.
func TestAuthorizeLoginAndConsentPages(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, ti := authzEnv(t, b)
		ctx := t.Context()
		for _, tc := range []struct {
			name, user string
			extra      []string
		}{
			{"no session", "", nil},
			{"prompt login", "alice", []string{"prompt", "login"}},
			{"max_age passed", "alice", []string{"max_age", "30"}},
		} {
			u := location(t, authorize(e, authQuery("web", webRedirect, tc.extra...), tc.user))
			if u.Path != oauth.LoginPath || u.Query().Get("req") == "" {
				t.Fatalf("%s: redirected to %s, want %s?req=", tc.name, u, oauth.LoginPath)
			}
		}
		// The login page's work done: resume issues the code.
		u := location(t, authorize(e, authQuery("web", webRedirect, "prompt", "login"), "alice"))
		id := u.Query().Get("req")
		resume := func(user string, header ...string) idptest.Response {
			h := http.Header{userHeader: {user}}
			for i := 0; i+1 < len(header); i += 2 {
				h.Set(header[i], header[i+1])
			}
			return e.Do(idptest.Request{Method: http.MethodGet, Path: oauth.ResumePath, Query: "req=" + id, ContentType: "-", Header: h})
		}
		if u := location(t, resume("alice")); u.Path != oauth.LoginPath {
			t.Fatalf("resume before the login: %s", u)
		}
		if err := e.DB.MarkAuthRequestLogin(ctx, id, "sess-alice", e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		// A different session than the one that logged in is sent back.
		if u := location(t, resume("alice", sessionHeader, "sess-other")); u.Path != oauth.LoginPath {
			t.Fatalf("resume under another session: %s", u)
		}
		q := atRedirect(t, resume("alice"), webRedirect)
		if q.Get("code") == "" || q.Get("state") != "st-123" {
			t.Fatalf("resume: %v", q)
		}
		// The request is used up.
		noLocationTo(t, resume("alice"), webRedirect)

		// Consent.
		ti.consent.Store(false)
		u = location(t, authorize(e, authQuery("web", webRedirect), "alice"))
		if u.Path != oauth.ConsentPath || u.Query().Get("req") == "" {
			t.Fatalf("without consent: %s, want %s?req=", u, oauth.ConsentPath)
		}
		id = u.Query().Get("req")
		if err := e.DB.MarkAuthRequestConsent(ctx, id, e.Clock.Now(), false); err != nil {
			t.Fatal(err)
		}
		if q := atRedirect(t, resume("alice"), webRedirect); q.Get("code") == "" {
			t.Fatalf("after consent: %v", q)
		}
		id = location(t, authorize(e, authQuery("web", webRedirect), "alice")).Query().Get("req")
		if err := e.DB.MarkAuthRequestConsent(ctx, id, e.Clock.Now(), true); err != nil {
			t.Fatal(err)
		}
		if q := atRedirect(t, resume("alice"), webRedirect); q.Get("error") != "access_denied" || q.Get("iss") != e.URL {
			t.Fatalf("after refusal: %v", q)
		}
		// prompt=consent asks even with a remembered consent.
		ti.consent.Store(true)
		if u := location(t, authorize(e, authQuery("web", webRedirect, "prompt", "consent"), "alice")); u.Path != oauth.ConsentPath {
			t.Fatalf("prompt=consent: %s", u)
		}
		// First-party: no consent page.
		ti.consent.Store(false)
		if q := atRedirect(t, authorize(e, authQuery("fp", webRedirect), "alice"), webRedirect); q.Get("code") == "" {
			t.Fatalf("first-party: %v", q)
		}
	})
}

// TestAuthorizePromptNone: prompt=none never shows a page: no session is
// login_required, a missing consent consent_required, at the client with
// state and iss.
func TestAuthorizePromptNone(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, ti := authzEnv(t, b)
		q := atRedirect(t, authorize(e, authQuery("web", webRedirect, "prompt", "none"), ""), webRedirect)
		if q.Get("error") != "login_required" || q.Get("state") != "st-123" || q.Get("iss") != e.URL {
			t.Fatalf("no session: %v", q)
		}
		q = atRedirect(t, authorize(e, authQuery("web", webRedirect, "prompt", "none", "max_age", "0"), "alice"), webRedirect)
		if q.Get("error") != "login_required" {
			t.Fatalf("max_age passed: %v", q)
		}
		ti.consent.Store(false)
		q = atRedirect(t, authorize(e, authQuery("web", webRedirect, "prompt", "none"), "alice"), webRedirect)
		if q.Get("error") != "consent_required" {
			t.Fatalf("no consent: %v", q)
		}
		ti.consent.Store(true)
		if q = atRedirect(t, authorize(e, authQuery("web", webRedirect, "prompt", "none"), "alice"), webRedirect); q.Get("code") == "" {
			t.Fatalf("session and consent: %v", q)
		}
	})
}

// TestAuthorizeFormPost: response_mode=form_post answers a page whose form
// posts code, state and iss to the redirect URI, under a CSP that allows
// only its own nonce-tagged script and a form to that origin.
func TestAuthorizeFormPost(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		r := authorize(e, authQuery("web", webRedirect, "response_mode", "form_post"), "alice")
		body := string(r.Body)
		if r.Status != 200 || r.Header.Get("Location") != "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("form_post: %d %v", r.Status, r.Header)
		}
		for _, want := range []string{`action="` + webRedirect + `"`, `name="code"`, `name="state" value="st-123"`, `name="iss" value="` + e.URL + `"`, "<noscript>"} {
			if !strings.Contains(body, want) {
				t.Errorf("form_post page lacks %q:\n%s", want, body)
			}
		}
		csp := r.Header.Get("Content-Security-Policy")
		i := strings.Index(body, `<script nonce="`)
		if i < 0 {
			t.Fatalf("no nonce-tagged script: %s", body)
		}
		nonce := body[i+len(`<script nonce="`):]
		nonce = nonce[:strings.IndexByte(nonce, '"')]
		for _, want := range []string{"default-src 'none'", "script-src 'nonce-" + nonce + "'", "form-action https://app.test", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		// An error goes the same way.
		r = authorize(e, authQuery("web", webRedirect, "response_mode", "form_post", "code_challenge_method", "plain"), "alice")
		if r.Status != 200 || !strings.Contains(string(r.Body), `name="error" value="invalid_request"`) {
			t.Errorf("form_post error: %d %s", r.Status, r.Body)
		}
	})
}

// TestAuthorizePost: the request may come as a form POST (OIDC Core
// §3.1.2.1).
func TestAuthorizePost(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		r := e.Do(idptest.Request{Path: oauth.AuthorizePath, Body: authQuery("web", webRedirect).Encode(), Header: http.Header{userHeader: {"alice"}}})
		if q := atRedirect(t, r, webRedirect); q.Get("code") == "" {
			t.Fatalf("POST: %v", q)
		}
	})
}

// TestDiscoveryAuthorization: with the authorization endpoint on, the
// metadata names it and the end_session_endpoint, code and S256 only, and
// iss in the authorization response.
func TestDiscoveryAuthorization(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e, _ := authzEnv(t, b)
		r := e.Do(idptest.Request{Method: http.MethodGet, Path: "/.well-known/openid-configuration", ContentType: "-"})
		strs := func(k string) []string {
			var out []string
			for _, v := range r.JSON[k].([]any) {
				out = append(out, v.(string))
			}
			return out
		}
		if r.Str("authorization_endpoint") != e.URL+"/oauth2/authorize" || r.Str("end_session_endpoint") != e.URL+"/oauth2/logout" {
			t.Errorf("endpoints %v %v", r.JSON["authorization_endpoint"], r.JSON["end_session_endpoint"])
		}
		if !slices.Equal(strs("response_types_supported"), []string{"code"}) ||
			!slices.Equal(strs("code_challenge_methods_supported"), []string{"S256"}) ||
			r.JSON["authorization_response_iss_parameter_supported"] != true ||
			!slices.Contains(strs("grant_types_supported"), "authorization_code") ||
			!slices.Contains(strs("response_modes_supported"), "form_post") ||
			!slices.Contains(strs("claims_supported"), "nonce") {
			t.Errorf("metadata %s", r.Body)
		}
	})
}
