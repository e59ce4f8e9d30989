package login

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/storage/storagetest"
)

// The chrome tests drive Debian's Chromium (apt-get install chromium)
// headless through the pages, as a person would: no script of ours runs in
// the page (the CSP forbids it); chromedp types, clicks and reads.
// Without Chromium they skip, unless KEYWARD_BROWSER_REQUIRED is set (CI
// sets it), which makes a missing chrome a failure. Screenshots (PNG) go
// to $KEYWARD_ARTIFACTS/login, else to a temporary directory; the test logs
// the path.

// chromium finds the chrome, or skips or fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KEYWARD_BROWSER_REQUIRED") != "" {
		t.Fatal("chromium not found and KEYWARD_BROWSER_REQUIRED is set: install it with apt-get install -y chromium")
	}
	t.Skip("chromium not found: install it with apt-get install -y chromium to run the chrome tests " +
		"(set KEYWARD_BROWSER_REQUIRED=1 to make this a failure)")
	return ""
}

// chrome is one headless Chromium with a fresh profile, and where its
// screenshots go.
type chrome struct {
	t     *testing.T
	ctx   context.Context // a tab; runs start from it with their own timeout
	shots string
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(720, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the chrome, without a timeout (chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	b := &chrome{t: t, ctx: ctx, shots: t.TempDir()}
	if dir := os.Getenv("KEYWARD_ARTIFACTS"); dir != "" {
		b.shots = filepath.Join(dir, "login")
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", b.shots)
	return b
}

// run runs steps with a timeout, failing the test on error.
func run[T any](b *chrome, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to url and returns the document's response.
func (b *chrome) open(url string) *network.Response {
	b.t.Helper()
	return run(b, "open "+url, chromedp.NavigateResponse(url))
}

// submit clicks the form's button and returns the response of the page
// it loads.
func (b *chrome) submit() *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if err != nil {
		b.t.Fatalf("submit: %v", err)
	}
	return resp
}

func (b *chrome) typeInto(id, text string) {
	b.t.Helper()
	run(b, "type into "+id, chromedp.SendKeys(chromedp.ID(id), text))
}

func (b *chrome) text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

// eval runs a DevTools expression (not a page script: the CSP does not
// apply to it) and returns its string value.
func (b *chrome) eval(expr string) string {
	b.t.Helper()
	return run(b, "evaluate "+expr, chromedp.Evaluate[string](expr))
}

// shot saves a full-page PNG screenshot as name.png.
func (b *chrome) shot(name string) {
	b.t.Helper()
	png := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// wantResponse checks a document's status and the page headers as the
// chrome received them.

// wantPage checks a document's status and the page headers as the chrome
// received them.
func wantPage(t *testing.T, resp *network.Response, status int) {
	t.Helper()
	if resp.Status != int64(status) {
		t.Fatalf("%s: status %d, want %d", resp.URL, resp.Status, status)
	}
	h := map[string]string{}
	for k, v := range resp.Headers {
		h[strings.ToLower(k)] = fmt.Sprint(v)
	}
	// The pages of a request also let their forms end at the client's
	// origin (ui.View.FormTarget); nothing else may differ.
	if h["content-security-policy"] == ui.PageCSPWithFormTarget("https://photos.example") {
		h["content-security-policy"] = ui.PageCSP
	}
	for k, v := range map[string]string{"content-security-policy": ui.PageCSP, "x-frame-options": "DENY",
		"cache-control": "no-store"} {
		if h[k] != v {
			t.Errorf("%s: %s %q, want %q", resp.URL, k, h[k], v)
		}
	}
}

func (b *chrome) styled() {
	b.t.Helper()
	if bg := b.eval(`getComputedStyle(document.querySelector("button")).backgroundColor`); bg != "rgb(29, 78, 216)" {
		b.t.Fatalf("the stylesheet did not apply (button background %q)", bg)
	}
}

func (b *chrome) clickResponse(css string) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
	return resp
}

// TestBrowserLogin: a person opens the login page of a request (the
// username prefilled from login_hint), mistypes the password, reads the
// generic message, signs in and is sent on to the authorization endpoint;
// then signs out through the confirm page.
func TestBrowserLogin(t *testing.T) {
	b := newChrome(t)
	e := newEnv(t, storagetest.Backends[0])
	req := e.newRequest("req-b", "openid")

	wantPage(t, b.open(e.srv.URL+LoginPath+"?req="+req), 200)
	b.styled()
	if got := b.eval(`document.getElementById("username").value`); got != "alice" {
		t.Fatalf("username %q, want the login_hint", got)
	}
	if got := b.eval(`document.activeElement.id`); got != "password" {
		t.Errorf("focus on %q, want password", got)
	}
	b.shot("login-form")
	b.typeInto("password", "not my password")
	wantPage(t, b.submit(), 400)
	if got := b.text(`[role="alert"]`); got != ui.T("en", "login.error.failed") {
		t.Fatalf("alert %q", got)
	}
	b.shot("login-failed")
	b.typeInto("password", alicePassword)
	resp := b.submit()
	if resp.Status != 200 || !strings.HasSuffix(resp.URL, ResumePath+"?req=req-b") {
		t.Fatalf("after login: %d %s", resp.Status, resp.URL)
	}
	if got := b.text("body"); got != "resume "+e.alice.ID+" pwd" {
		t.Fatalf("resume saw %q", got)
	}

	wantPage(t, b.open(e.srv.URL+LogoutPath), 200)
	b.shot("logout-confirm")
	wantPage(t, b.submit(), 200)
	if got := b.text("h1"); got != ui.T("en", "logout.done.title") {
		t.Fatalf("after logout: h1 %q", got)
	}
	b.shot("logout-done")
	wantPage(t, b.open(e.srv.URL+"/oauth2/error"), 400)
	b.shot("authorize-error")
}

// TestBrowserTOTPAndConsent: a signed-in person enrols in TOTP (the QR
// code loads under the page CSP), keeps the recovery codes, signs in again
// with a code, and approves a client on the consent page; then the same
// pages in Chinese.
func TestBrowserTOTPAndConsent(t *testing.T) {
	b := newChrome(t)
	e := newEnv(t, storagetest.Backends[0])

	b.open(e.srv.URL + LoginPath)
	b.typeInto("username", "alice")
	b.typeInto("password", alicePassword)
	wantPage(t, b.submit(), 200)
	b.shot("signed-in")
	wantPage(t, b.open(e.srv.URL+TOTPEnrolPath), 200)
	if w := b.eval(`String(document.querySelector(".qr img").naturalWidth)`); w != "240" {
		t.Fatalf("the QR code did not load (naturalWidth %s): blocked by the CSP?", w)
	}
	b.shot("totp-enrol")
	secret := strings.ReplaceAll(b.text(".secret code"), " ", "")
	b.typeInto("code", code(t, secret, e.clock.Now()))
	wantPage(t, b.submit(), 200)
	if n := b.eval(`String(document.querySelectorAll(".codes li").length)`); n != "10" {
		t.Fatalf("%s recovery codes", n)
	}
	b.shot("totp-recovery-codes")

	e.clock.Add(30 * time.Second)
	req := e.newRequest("req-tc", "openid", "profile", "email", "photos:read")
	b2 := newChrome(t)
	b2.open(e.srv.URL + LoginPath + "?req=" + req)
	b2.typeInto("password", alicePassword)
	wantPage(t, b2.submit(), 200)
	if got := b2.text("h1"); got != ui.T("en", "totp.title") {
		t.Fatalf("after the password: h1 %q", got)
	}
	b2.shot("totp-challenge")
	b2.typeInto("code", "000000")
	wantPage(t, b2.submit(), 400)
	b2.shot("totp-wrong")
	b2.typeInto("code", code(t, secret, e.clock.Now()))
	resp := b2.submit()
	if !strings.HasSuffix(resp.URL, ResumePath+"?req="+req) || b2.text("body") != "resume "+e.alice.ID+" pwd,otp,mfa" {
		t.Fatalf("after the code: %s %q", resp.URL, b2.text("body"))
	}

	wantPage(t, b2.open(e.srv.URL+ConsentPath+"?req="+req), 200)
	b2.styled()
	b2.shot("consent")
	resp = b2.clickResponse(`button[value="approve"]`)
	if !strings.HasSuffix(resp.URL, ResumePath+"?req="+req) {
		t.Fatalf("after approve: %s", resp.URL)
	}
	if ok, _ := e.h.ConsentGiven(context.Background(), e.alice.ID, "photos", []string{"openid", "photos:read"}); !ok {
		t.Fatal("consent not remembered")
	}

	run(b2, "ask for Chinese", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"}})
		return err
	}))
	req2 := e.newRequest("req-zh", "openid", "email", "offline_access")
	wantPage(t, b2.open(e.srv.URL+ConsentPath+"?req="+req2), 200)
	if got := b2.text("h1"); got != "允许访问？" {
		t.Fatalf("Chinese consent h1 %q", got)
	}
	b2.shot("consent-zh-CN")
	wantPage(t, b2.open(e.srv.URL+LoginPath+"?req="+req2), 200)
	b2.shot("login-form-zh-CN")
	wantPage(t, b2.open(e.srv.URL+LogoutPath), 200)
	b2.shot("logout-confirm-zh-CN")
}
