package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Headers the in-test Interaction reads: the browser's session is whatever
// user the test names, authenticated AuthTimeHeader (Unix seconds) ago.
const (
	userHeader     = "X-Test-User"
	authTimeHeader = "X-Test-Auth-Time"
	sessionHeader  = "X-Test-Session"
)

// testInteraction is idp/login's side, reduced to what the authorization
// endpoint asks: a session from a test header, a consent switch, a plain
// error page and a record of ended sessions.
type testInteraction struct {
	env     atomic.Pointer[idptest.Env]
	consent atomic.Bool
	mu      sync.Mutex
	ended   []string
}

const errorPageMarker = "AUTHORIZATION ERROR PAGE"

func (ti *testInteraction) Session(r *http.Request) (storage.LoginSession, bool, error) {
	name := r.Header.Get(userHeader)
	e := ti.env.Load()
	if name == "" || e == nil {
		return storage.LoginSession{}, false, nil
	}
	u, ok := e.Users[name]
	if !ok {
		return storage.LoginSession{}, false, nil
	}
	at := e.Clock.Now().Add(-time.Minute)
	if v := r.Header.Get(authTimeHeader); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64)
		at = time.Unix(n, 0)
	}
	id := "sess-" + name
	if v := r.Header.Get(sessionHeader); v != "" {
		id = v
	}
	return storage.LoginSession{ID: id, UserID: u.ID, AuthTime: storage.At(at), AMR: storage.List{"pwd", "otp", "mfa"}}, true, nil
}

func (ti *testInteraction) ConsentGiven(context.Context, string, string, []string) (bool, error) {
	return ti.consent.Load(), nil
}

func (ti *testInteraction) ErrorPage(w http.ResponseWriter, _ *http.Request, status int, description string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(errorPageMarker + ": " + description))
}

func (ti *testInteraction) EndSession(_ http.ResponseWriter, r *http.Request) (string, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.ended = append(ti.ended, r.Header.Get(userHeader))
	return r.Header.Get(userHeader), nil
}

func (ti *testInteraction) endedSessions() []string {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return append([]string(nil), ti.ended...)
}

// Redirect URIs of the authorization-code clients authzEnv registers.
const (
	webRedirect  = "https://app.test/cb"
	webLogout    = "https://app.test/bye"
	spaRedirect  = "http://127.0.0.1/callback"
	testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
)

// authzEnv starts a server with the in-test Interaction, consent given,
// and the clients web (confidential), web2 (confidential, same redirect
// URI), spa (public, loopback) and fp (first-party).
func authzEnv(t *testing.T, b storagetest.Backend, change ...func(*idp.Config)) (*idptest.Env, *testInteraction) {
	t.Helper()
	ti := &testInteraction{}
	ti.consent.Store(true)
	e := idptest.New(t, b, append([]func(*idp.Config){func(c *idp.Config) { c.Interaction = ti }}, change...)...)
	specs := []manage.ClientSpec{
		{ID: "web", Grants: []string{manage.GrantAuthorizationCode, manage.GrantRefreshToken},
			Scopes: []string{"openid", "profile", "email", "read", "write"}, RedirectURIs: []string{webRedirect},
			PostLogoutRedirectURIs: []string{webLogout}},
		{ID: "web2", Grants: []string{manage.GrantAuthorizationCode}, Scopes: []string{"openid", "read"}, RedirectURIs: []string{webRedirect}},
		{ID: "spa", Public: true, Grants: []string{manage.GrantAuthorizationCode, manage.GrantRefreshToken},
			Scopes: []string{"openid", "read"}, RedirectURIs: []string{spaRedirect}},
		{ID: "fp", FirstParty: true, Grants: []string{manage.GrantAuthorizationCode}, Scopes: []string{"openid"}, RedirectURIs: []string{webRedirect}},
	}
	for _, spec := range specs {
		c, secret, err := manage.NewClient(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.DB.CreateClient(t.Context(), &c); err != nil {
			t.Fatal(err)
		}
		e.Secrets[spec.ID] = secret
	}
	e.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ti.env.Store(e)
	return e, ti
}

// authQuery is a valid authorization request of client to redirect;
// extra are key, value pairs that replace or add ("" value deletes).
func authQuery(client, redirect string, extra ...string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"scope": {"openid profile"}, "state": {"st-123"}, "nonce": {"n-456"},
		"code_challenge": {oauth.S256(testVerifier)}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			q.Del(extra[i])
		} else {
			q.Set(extra[i], extra[i+1])
		}
	}
	return q
}

// authorize sends GET /oauth2/authorize with q as user ("" for no session).
func authorize(e *idptest.Env, q url.Values, user string, header ...string) idptest.Response {
	e.T.Helper()
	h := http.Header{}
	if user != "" {
		h.Set(userHeader, user)
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return e.Do(idptest.Request{Method: http.MethodGet, Path: oauth.AuthorizePath, Query: q.Encode(), ContentType: "-", Header: h})
}

// location parses the Location of a 302.
func location(t testing.TB, r idptest.Response) *url.URL {
	t.Helper()
	if r.Status != http.StatusFound {
		t.Fatalf("status %d, want 302; body %s", r.Status, r.Body)
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// atRedirect checks that r is a 302 to redirect (query ignored) and
// returns its query.
func atRedirect(t testing.TB, r idptest.Response, redirect string) url.Values {
	t.Helper()
	u := location(t, r)
	base := *u
	base.RawQuery = ""
	if base.String() != redirect {
		t.Fatalf("redirected to %s, want %s", u, redirect)
	}
	return u.Query()
}

// getCode runs a whole authorization as alice and returns the code.
func getCode(t testing.TB, e *idptest.Env, q url.Values) string {
	t.Helper()
	got := atRedirect(t, authorize(e, q, "alice"), q.Get("redirect_uri"))
	if got.Get("code") == "" {
		t.Fatalf("no code: %v", got)
	}
	return got.Get("code")
}

// codeForm is the authorization_code token request.
func codeForm(code, redirect, verifier string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// publicToken posts form as the public client id (no authentication).
func publicToken(e *idptest.Env, id string, form url.Values) idptest.Response {
	e.T.Helper()
	form.Set("client_id", id)
	return e.Do(idptest.Request{Body: form.Encode()})
}

// noLocationTo checks that r sends the browser nowhere near target.
func noLocationTo(t testing.TB, r idptest.Response, target string) {
	t.Helper()
	if loc := r.Header.Get("Location"); loc != "" {
		t.Errorf("Location %q on a response that must not redirect", loc)
	}
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), errorPageMarker) {
		t.Errorf("status %d body %q, want the 400 error page", r.Status, r.Body)
	}
	if target != "" && strings.Contains(string(r.Body), target) {
		t.Errorf("error page repeats %q", target)
	}
}
