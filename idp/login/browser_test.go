package login

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/internal/browsertest"
	"github.com/keyward/keyward/storage/storagetest"
)

// The browser tests drive Debian's Chromium through the pages
// (internal/browsertest); screenshots go to $KEYWARD_ARTIFACTS/login.

type chrome = browsertest.Browser

func newChrome(t *testing.T) *chrome { return browsertest.New(t, "login") }

// wantPage checks a document's status and the page headers as the
// browser received them.
func wantPage(t *testing.T, resp *network.Response, status int) {
	t.Helper()
	// The pages of a request also let their forms end at the client's
	// origin (ui.View.FormTarget); nothing else may differ.
	csp := ui.PageCSP
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") && fmt.Sprint(v) == ui.PageCSPWithFormTarget("https://photos.example") {
			csp = ui.PageCSPWithFormTarget("https://photos.example")
		}
	}
	browsertest.WantPage(t, resp, status, csp, false)
}

// styled fails unless the page's stylesheet applied.
func styled(b *chrome) {
	b.T.Helper()
	if bg := b.Eval(`getComputedStyle(document.querySelector("button")).backgroundColor`); bg != "rgb(29, 78, 216)" {
		b.T.Fatalf("the stylesheet did not apply (button background %q)", bg)
	}
}

// TestBrowserLogin: a person opens the login page of a request (the
// username prefilled from login_hint), mistypes the password, reads the
// generic message, signs in and is sent on to the authorization endpoint;
// then signs out through the confirm page.
func TestBrowserLogin(t *testing.T) {
	b := newChrome(t)
	e := newEnv(t, storagetest.Backends[0])
	req := e.newRequest("req-b", "openid")

	wantPage(t, b.Open(e.srv.URL+LoginPath+"?req="+req), 200)
	styled(b)
	if got := b.Eval(`document.getElementById("username").value`); got != "alice" {
		t.Fatalf("username %q, want the login_hint", got)
	}
	if got := b.Eval(`document.activeElement.id`); got != "password" {
		t.Errorf("focus on %q, want password", got)
	}
	b.Shot("login-form")
	b.TypeInto("password", "not my password")
	wantPage(t, b.Submit(), 400)
	if got := b.Text(`[role="alert"]`); got != ui.T("en", "login.error.failed") {
		t.Fatalf("alert %q", got)
	}
	b.Shot("login-failed")
	b.TypeInto("password", alicePassword)
	resp := b.Submit()
	if resp.Status != 200 || !strings.HasSuffix(resp.URL, ResumePath+"?req=req-b") {
		t.Fatalf("after login: %d %s", resp.Status, resp.URL)
	}
	if got := b.Text("body"); got != "resume "+e.alice.ID+" pwd" {
		t.Fatalf("resume saw %q", got)
	}

	wantPage(t, b.Open(e.srv.URL+LogoutPath), 200)
	b.Shot("logout-confirm")
	wantPage(t, b.Submit(), 200)
	if got := b.Text("h1"); got != ui.T("en", "logout.done.title") {
		t.Fatalf("after logout: h1 %q", got)
	}
	b.Shot("logout-done")
	wantPage(t, b.Open(e.srv.URL+"/oauth2/error"), 400)
	b.Shot("authorize-error")
}

// TestBrowserTOTPAndConsent: a signed-in person enrols in TOTP (the QR
// code loads under the page CSP), keeps the recovery codes, signs in again
// with a code, and approves a client on the consent page; then the same
// pages in Chinese.
func TestBrowserTOTPAndConsent(t *testing.T) {
	b := newChrome(t)
	e := newEnv(t, storagetest.Backends[0])

	b.Open(e.srv.URL + LoginPath)
	b.TypeInto("username", "alice")
	b.TypeInto("password", alicePassword)
	wantPage(t, b.Submit(), 200)
	b.Shot("signed-in")
	wantPage(t, b.Open(e.srv.URL+TOTPEnrolPath), 200)
	if w := b.Eval(`String(document.querySelector(".qr img").naturalWidth)`); w != "240" {
		t.Fatalf("the QR code did not load (naturalWidth %s): blocked by the CSP?", w)
	}
	b.Shot("totp-enrol")
	secret := strings.ReplaceAll(b.Text(".secret code"), " ", "")
	b.TypeInto("code", code(t, secret, e.clock.Now()))
	wantPage(t, b.Submit(), 200)
	if n := b.Eval(`String(document.querySelectorAll(".codes li").length)`); n != "10" {
		t.Fatalf("%s recovery codes", n)
	}
	b.Shot("totp-recovery-codes")

	e.clock.Advance(30 * time.Second)
	req := e.newRequest("req-tc", "openid", "profile", "email", "photos:read")
	b2 := newChrome(t)
	b2.Open(e.srv.URL + LoginPath + "?req=" + req)
	b2.TypeInto("password", alicePassword)
	wantPage(t, b2.Submit(), 200)
	if got := b2.Text("h1"); got != ui.T("en", "totp.title") {
		t.Fatalf("after the password: h1 %q", got)
	}
	b2.Shot("totp-challenge")
	b2.TypeInto("code", "000000")
	wantPage(t, b2.Submit(), 400)
	b2.Shot("totp-wrong")
	b2.TypeInto("code", code(t, secret, e.clock.Now()))
	resp := b2.Submit()
	if !strings.HasSuffix(resp.URL, ResumePath+"?req="+req) || b2.Text("body") != "resume "+e.alice.ID+" pwd,otp,mfa" {
		t.Fatalf("after the code: %s %q", resp.URL, b2.Text("body"))
	}

	wantPage(t, b2.Open(e.srv.URL+ConsentPath+"?req="+req), 200)
	styled(b2)
	b2.Shot("consent")
	resp = b2.Click(`button[value="approve"]`)
	if !strings.HasSuffix(resp.URL, ResumePath+"?req="+req) {
		t.Fatalf("after approve: %s", resp.URL)
	}
	if ok, _ := e.h.ConsentGiven(context.Background(), e.alice.ID, "photos", []string{"openid", "photos:read"}); !ok {
		t.Fatal("consent not remembered")
	}

	browsertest.Run(b2, "ask for Chinese", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"}})
		return err
	}))
	req2 := e.newRequest("req-zh", "openid", "email", "offline_access")
	wantPage(t, b2.Open(e.srv.URL+ConsentPath+"?req="+req2), 200)
	if got := b2.Text("h1"); got != "允许访问？" {
		t.Fatalf("Chinese consent h1 %q", got)
	}
	b2.Shot("consent-zh-CN")
	wantPage(t, b2.Open(e.srv.URL+LoginPath+"?req="+req2), 200)
	b2.Shot("login-form-zh-CN")
	wantPage(t, b2.Open(e.srv.URL+LogoutPath), 200)
	b2.Shot("logout-confirm-zh-CN")
}
