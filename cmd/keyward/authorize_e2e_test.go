package main

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
)

const e2ePassword = "correct horse battery staple"

// e2eKeyward is a keyward serve process whose issuer is its
// own loopback address (so discovery, the ID tokens' iss and the RFC 9207
// iss parameter are what a relying party sees), with the user alice and an
// admin client "ops".
type e2eKeyward struct {
	*process
	dsn         string
	aliceID     string
	opsSecret   string
	adminBearer string
}

// startE2EKeyward registers the public clients (id → its RP) with their
// exact redirect and post-logout redirect URIs, the user alice and an admin
// client, then starts the server.
func startE2EKeyward(t *testing.T, dsn string, rps map[string][2]string) *e2eKeyward {
	t.Helper()
	dir := t.TempDir()
	k := &e2eKeyward{dsn: dsn}
	for id, uris := range rps {
		mustRun(t, k.dsn, "", "clients", "create", "--id", id, "--name", "E2E app "+id, "--public",
			"--grant", "authorization_code", "--grant", "refresh_token", "--scope", "openid profile email",
			"--redirect-uri", uris[0], "--post-logout-redirect-uri", uris[1])
	}
	ops := decode[map[string]any](t, mustRun(t, k.dsn, "", "clients", "create", "--id", "ops", "--grant", "client_credentials",
		"--scope", "keyward:admin", "--output", "json"))
	k.opsSecret = ops["client_secret"].(string)
	alice := decode[map[string]any](t, mustRun(t, k.dsn, e2ePassword+"\n", "users", "create", "--username", "alice",
		"--email", "alice@example.com", "--email-verified", "--password-stdin", "--output", "json"))
	k.aliceID = alice["id"].(string)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	k.process = startProcess(t, nil, "--database", k.dsn, "--key-encryption-key-file", writeKEK(t, dir),
		"--addr", addr, "--issuer", "http://"+addr)
	return k
}

// admin calls the admin API as the ops client and returns the status.
func (k *e2eKeyward) admin(t *testing.T, method, path string) int {
	t.Helper()
	if k.adminBearer == "" {
		req := testsupport.FormRequest(t, http.MethodPost, k.URL+"/oauth2/token",
			url.Values{"grant_type": {"client_credentials"}, "scope": {"keyward:admin"}})
		req.SetBasicAuth("ops", k.opsSecret)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if st := decodeOK(t, req, &tok); st != http.StatusOK {
			t.Fatalf("admin token: %d", st)
		}
		k.adminBearer = tok.AccessToken
	}
	req, _ := http.NewRequest(method, k.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+k.adminBearer)
	st, _, _ := testsupport.Do(t, nil, req)
	return st
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP signs alice in on Keyward's own login page, enrols her in TOTP
// through /account/totp (reading the key the page shows, as a person would
// type it into an app), and signs out through the logout page. It returns
// the secret and the recovery codes.
func enrolTOTP(t *testing.T, b *chrome, k *e2eKeyward) (string, []string) {
	t.Helper()
	b.open(k.URL + "/login")
	b.typeInto("username", "alice")
	b.typeInto("password", e2ePassword)
	if resp := b.submit(); resp.Status != http.StatusOK {
		t.Fatalf("login: %d %s", resp.Status, resp.URL)
	}
	b.open(k.URL + "/account/totp")
	secret := strings.ReplaceAll(b.text(".secret code"), " ", "")
	b.shot("account-totp-enrol")
	b.typeInto("code", totpCode(t, secret, time.Now()))
	if resp := b.submit(); resp.Status != http.StatusOK {
		t.Fatalf("confirm TOTP: %d %s", resp.Status, resp.URL)
	}
	codes := strings.Fields(strings.ReplaceAll(b.text(".codes"), " ", ""))
	if len(codes) != 10 {
		t.Fatalf("recovery codes: %q", codes)
	}
	b.open(k.URL + "/logout")
	if resp := b.submit(); resp.Status != http.StatusOK || !strings.HasSuffix(resp.URL, "/logout/done") {
		t.Fatalf("logout: %d %s", resp.Status, resp.URL)
	}
	return secret, codes
}

// wantAt checks that the browser is on a page under prefix.
func wantAt(t *testing.T, b *chrome, prefix string) {
	t.Helper()
	if loc := b.location(); !strings.HasPrefix(loc, prefix) {
		t.Fatalf("browser at %s, want %s…", loc, prefix)
	}
}

// TestAuthorizeEndToEnd is issue 15's "Done when": Chromium opens a relying
// party built with x/oauth2 and go-oidc, is sent to Keyward's login page,
// types the password and a TOTP code, consents, and comes back with a code
// that the RP exchanges with its PKCE verifier and whose ID token and nonce
// it verifies; then the RP logs out through end_session_endpoint and the
// Keyward session is gone (prompt=none → login_required). Then, with the
// same browser: consent is remembered, revoked through the admin API and
// asked again, a replayed TOTP code and a form without its CSRF token are
// refused, and a password change ends the session. On SQLite and
// PostgreSQL.
func TestAuthorizeEndToEnd(t *testing.T) {
	dbtest.ForEachBackend(t, testAuthorizeEndToEnd)
}

func testAuthorizeEndToEnd(t *testing.T, dsn string) {
	b := newChrome(t)
	rp := newGoRP(t, "webapp")
	k := startE2EKeyward(t, dsn, map[string][2]string{"webapp": {rp.redirectURI(), rp.postLogoutRedirect()}})
	rp.start(t, k.URL)
	secret, recovery := enrolTOTP(t, b, k)

	// Sign in with the password and a TOTP code, consent.
	b.open(rp.URL + "/")
	wantAt(t, b, k.URL+"/login?req=")
	b.shot("01-login")
	b.typeInto("username", "alice")
	b.typeInto("password", e2ePassword)
	b.submit()
	wantAt(t, b, k.URL+"/login/totp")
	b.shot("02-totp")
	// The enrolment used the current step; the next one is also accepted
	// (one step either side) and is not a replay.
	used := totpCode(t, secret, time.Now().Add(30*time.Second))
	b.typeInto("code", used)
	b.submit()
	wantAt(t, b, k.URL+"/consent?req=")
	if got := b.text("main"); !strings.Contains(got, "E2E app webapp") {
		t.Fatalf("the consent page does not name the client: %q", got)
	}
	b.shot("03-consent")
	b.click(`button[value="approve"]`)
	wantAt(t, b, rp.URL+"/callback?")
	claims, failed := rp.result()
	if failed != "" || claims == nil {
		t.Fatalf("the RP's sign-in failed: %s\n%s", failed, k.Log.String())
	}
	b.shot("04-rp-signed-in")
	amr, _ := claims["amr"].([]any)
	if claims["sub"] != k.aliceID || claims["iss"] != k.URL || claims["aud"] != "webapp" || claims["email"] != "alice@example.com" ||
		claims["auth_time"] == nil || len(amr) != 3 || amr[1] != "otp" || amr[2] != "mfa" {
		t.Fatalf("ID token claims %v", claims)
	}
	if !strings.Contains(b.text("#claims"), k.aliceID) {
		t.Fatal("the RP's page does not show the claims")
	}

	// RP-initiated logout ends the Keyward session.
	b.click("#logout")
	wantAt(t, b, rp.postLogoutRedirect()+"?state=")
	if got := b.text("h1"); got != "Signed out" {
		t.Fatalf("after logout: %q", got)
	}
	b.shot("05-rp-signed-out")
	wantPromptNone(t, b, rp, "login_required")

	// Signed in again: the TOTP code already used is refused (replay), a
	// recovery code works, and the consent is remembered.
	b.open(rp.URL + "/")
	b.typeInto("username", "alice")
	b.typeInto("password", e2ePassword)
	b.submit()
	wantAt(t, b, k.URL+"/login/totp")
	b.typeInto("code", used)
	if resp := b.submit(); resp.Status != http.StatusBadRequest || b.text(`[role="alert"]`) == "" {
		t.Fatalf("the used TOTP code again: %d %s", resp.Status, resp.URL)
	}
	b.shot("06-totp-replay-refused")
	if v := do(b, "read the code field", chromedp.Evaluate[string](`document.getElementById("code").value`)); v != "" {
		t.Fatalf("the refused code is shown again: %q", v)
	}
	b.typeInto("code", recovery[0])
	b.submit()
	wantAt(t, b, rp.URL+"/callback?")
	if c, failed := rp.result(); failed != "" || c["amr"] == nil {
		t.Fatalf("second sign-in: %s %v", failed, c)
	}
	if c, _ := rp.result(); strings.Join(anyStrings(c["amr"]), " ") != "pwd mfa" {
		t.Fatalf("amr after a recovery code: %v", c["amr"])
	}
	wantPromptNone(t, b, rp, "") // the session and the consent hold

	// Consent revoked through the admin API: prompt=none cannot ask, and
	// an ordinary request shows the consent page again.
	if st := k.admin(t, http.MethodDelete, "/admin/v1/users/"+k.aliceID+"/consents/webapp"); st != http.StatusNoContent {
		t.Fatalf("revoke consent: %d", st)
	}
	wantPromptNone(t, b, rp, "consent_required")
	b.open(rp.URL + "/")
	wantAt(t, b, k.URL+"/consent?req=")
	b.click(`button[value="approve"]`)
	wantAt(t, b, rp.URL+"/callback?")
	if _, failed := rp.result(); failed != "" {
		t.Fatalf("after consenting again: %s", failed)
	}

	// A login form posted without its CSRF token is refused and signs no
	// one in.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if st, _, _ := testsupport.Do(t, hc, testsupport.FormRequest(t, http.MethodGet, k.URL+"/login", nil)); st != http.StatusOK {
		t.Fatalf("GET /login: %d", st)
	}
	st, _, _ := testsupport.Do(t, hc, testsupport.FormRequest(t, http.MethodPost, k.URL+"/login",
		url.Values{"username": {"alice"}, "password": {e2ePassword}}))
	u, _ := url.Parse(k.URL)
	if st != http.StatusForbidden || slices.ContainsFunc(jar.Cookies(u), func(c *http.Cookie) bool { return strings.Contains(c.Name, "session") }) {
		t.Fatalf("login without a CSRF token: %d, cookies %v", st, jar.Cookies(u))
	}
	// A password change (keyward users set-password) ends the session.
	mustRun(t, k.dsn, "a brand new passphrase 42\n", "users", "set-password", "alice", "--password-stdin",
		"--mail-outbox", t.TempDir()) // the password_changed notice; not into the working directory on PostgreSQL
	wantPromptNone(t, b, rp, "login_required")
	if strings.Contains(k.Log.String(), e2ePassword) || strings.Contains(k.Log.String(), secret) {
		t.Fatal("a password or the TOTP secret reached the log")
	}
}

// wantPromptNone sends the browser through the RP with prompt=none and
// checks the error Keyward answered the RP with ("" for a code).
func wantPromptNone(t *testing.T, b *chrome, rp *goRP, want string) {
	t.Helper()
	b.open(rp.URL + "/?prompt=none")
	wantAt(t, b, rp.URL+"/callback?")
	claims, failed := rp.result()
	if failed != want || (want == "" && claims == nil) {
		t.Fatalf("prompt=none: RP saw %q, want %q", failed, want)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
