package login

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestFormTarget: the login, TOTP and consent pages of an authorization
// request let their forms end at the client's redirect URI origin (the
// answers redirect through the authorization endpoint to the client, and
// Chromium checks form-action on every redirect after a submission); the
// same pages without a request, and the logout page, post only to this
// origin.
func TestFormTarget(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	withTarget := ui.PageCSPWithFormTarget("https://photos.example")
	if withTarget == ui.PageCSP {
		t.Fatal("no form-action to extend")
	}
	csp := func(p page) string { return p.header.Get("Content-Security-Policy") }

	secret, _ := e.enrol(t, e.browser())
	req := e.newRequest("req-ft", "openid", "photos:read")
	b := e.browser()
	if got := csp(b.get(LoginPath + "?req=" + req)); got != withTarget {
		t.Fatalf("login page of a request: CSP %q, want %q", got, withTarget)
	}
	if got := csp(b.post(LoginPath, url.Values{"req": {req}, "username": {"alice"}, "password": {"wrong"}})); got != withTarget {
		t.Fatalf("login page shown again: CSP %q", got)
	}
	p := b.login(req, alicePassword)
	if p.status != http.StatusFound {
		t.Fatalf("password: %d", p.status)
	}
	if got := csp(b.get(TOTPPath + "?req=" + req)); got != withTarget {
		t.Fatalf("TOTP page of a request: CSP %q", got)
	}
	e.clock.Advance(30 * time.Second)
	if p := b.post(TOTPPath, url.Values{"req": {req}, "code": {code(t, secret, e.clock.Now())}}); p.status != http.StatusFound {
		t.Fatalf("TOTP: %d %s", p.status, p.body)
	}
	if got := csp(b.get(ConsentPath + "?req=" + req)); got != withTarget {
		t.Fatalf("consent page: CSP %q", got)
	}
	for _, path := range []string{LoginPath, LogoutPath} {
		if got := csp(e.browser().get(path)); got != ui.PageCSP {
			t.Fatalf("%s without a request: CSP %q", path, got)
		}
	}
}
