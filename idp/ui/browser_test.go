package ui

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
)

// The browser tests drive Debian's Chromium (apt-get install chromium)
// headless through the pages, as a person would: no script of ours runs in
// the page (the CSP forbids it); chromedp types, clicks and reads.
// Without Chromium they skip, unless KEYWARD_BROWSER_REQUIRED is set (CI
// sets it), which makes a missing browser a failure. Screenshots (PNG) go
// to $KEYWARD_ARTIFACTS/ui, else to a temporary directory; the test logs
// the path.

// chromium finds the browser, or skips or fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KEYWARD_BROWSER_REQUIRED") != "" {
		t.Fatal("chromium not found and KEYWARD_BROWSER_REQUIRED is set: install it with apt-get install -y chromium")
	}
	t.Skip("chromium not found: install it with apt-get install -y chromium to run the browser tests " +
		"(set KEYWARD_BROWSER_REQUIRED=1 to make this a failure)")
	return ""
}

// browser is one headless Chromium with a fresh profile, and where its
// screenshots go.
type browser struct {
	t     *testing.T
	ctx   context.Context // a tab; runs start from it with their own timeout
	shots string
}

func newBrowser(t *testing.T) *browser {
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
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout (chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, shots: t.TempDir()}
	if dir := os.Getenv("KEYWARD_ARTIFACTS"); dir != "" {
		b.shots = filepath.Join(dir, "ui")
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", b.shots)
	return b
}

// run runs steps with a timeout, failing the test on error.
func run[T any](b *browser, what string, a chromedp.Action[T]) T {
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
func (b *browser) open(url string) *network.Response {
	b.t.Helper()
	return run(b, "open "+url, chromedp.NavigateResponse(url))
}

// submit clicks the form's button and returns the response of the page
// it loads.
func (b *browser) submit() *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if err != nil {
		b.t.Fatalf("submit: %v", err)
	}
	return resp
}

func (b *browser) typeInto(id, text string) {
	b.t.Helper()
	run(b, "type into "+id, chromedp.SendKeys(chromedp.ID(id), text))
}

func (b *browser) text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

// eval runs a DevTools expression (not a page script: the CSP does not
// apply to it) and returns its string value.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	return run(b, "evaluate "+expr, chromedp.Evaluate[string](expr))
}

// shot saves a full-page PNG screenshot as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// wantResponse checks a document's status and the page headers as the
// browser received them.
func wantResponse(t *testing.T, resp *network.Response, status int) {
	t.Helper()
	if resp.Status != int64(status) {
		t.Fatalf("%s: status %d, want %d", resp.URL, resp.Status, status)
	}
	h := map[string]string{}
	for k, v := range resp.Headers {
		h[strings.ToLower(k)] = fmt.Sprint(v)
	}
	for k, v := range map[string]string{"content-security-policy": PageCSP, "referrer-policy": "no-referrer",
		"cache-control": "no-store", "x-frame-options": "DENY", "content-type": "text/html; charset=utf-8"} {
		if h[k] != v {
			t.Errorf("%s: %s %q, want %q", resp.URL, k, h[k], v)
		}
	}
}

// TestBrowserReset: a person opens the reset link, types a password that
// does not match, is told so, types it twice, submits and reads the
// confirmation; the link then says it was used, and its "request a new
// link" leads to the forgot-password page, which sends one. The stylesheet
// loads under the page's CSP.
func TestBrowserReset(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	link := e.srv.URL + ResetPasswordPath + "?token=" + tok

	wantResponse(t, b.open(link), 200)
	if got := b.text("h1"); got != "Choose a new password" {
		t.Fatalf("h1 %q", got)
	}
	if bg := b.eval(`getComputedStyle(document.querySelector("button")).backgroundColor`); bg != "rgb(29, 78, 216)" {
		t.Fatalf("the stylesheet did not apply (button background %q): blocked by the CSP?", bg)
	}
	b.shot("reset-form")

	b.typeInto("new_password", goodPassword)
	b.typeInto("confirm_password", goodPassword+"?")
	wantResponse(t, b.submit(), 400)
	if got := b.text(`[role="alert"]`); !strings.Contains(got, "do not match") {
		t.Fatalf("mismatch: alert %q", got)
	}
	if got := b.eval(`document.activeElement.id`); got != "confirm_password" {
		t.Errorf("after a mismatch the focus is on %q, want confirm_password", got)
	}
	b.shot("reset-mismatch")
	if !e.flows.usable(tok) {
		t.Fatal("a mismatch consumed the token")
	}

	b.typeInto("new_password", goodPassword)
	b.typeInto("confirm_password", goodPassword)
	b.shot("reset-filled")
	wantResponse(t, b.submit(), 200)
	if got := b.text("h1"); got != "Your password was changed" {
		t.Fatalf("after submit: h1 %q", got)
	}
	b.shot("reset-done")
	if e.flows.passwords["alice"] != goodPassword {
		t.Fatalf("password set to %q", e.flows.passwords["alice"])
	}

	wantResponse(t, b.open(link), 400)
	if got := b.text("h1"); got != "This link has expired or was already used" {
		t.Fatalf("used link: h1 %q", got)
	}
	b.shot("reset-link-used")

	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href$="`+ForgotPasswordPath+`"]`)))
	if err != nil {
		t.Fatalf("follow the request-a-new-link link: %v", err)
	}
	wantResponse(t, resp, 200)
	b.typeInto("login", "alice")
	b.shot("forgot-form")
	wantResponse(t, b.submit(), 200)
	if got := b.text("h1"); got != "Check your mail" || len(e.flows.requested) != 1 || e.flows.requested[0] != "u:alice@en" {
		t.Fatalf("forgot: h1 %q, requests %q", got, e.flows.requested)
	}
	b.shot("forgot-sent")
}

// TestBrowserGetAndCSRF: opening the link, however often, consumes
// nothing; the form posted without its CSRF field is refused 403 and
// consumes nothing; the same link then still works.
func TestBrowserGetAndCSRF(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	link := e.srv.URL + ResetPasswordPath + "?token=" + tok

	for range 3 {
		wantResponse(t, b.open(link), 200)
	}
	if !e.flows.usable(tok) || e.flows.count("ResetPassword") != 0 {
		t.Fatal("opening the link consumed the token")
	}

	b.eval(`document.querySelector('input[name="csrf_token"]').remove(), "removed"`)
	b.typeInto("new_password", goodPassword)
	b.typeInto("confirm_password", goodPassword)
	wantResponse(t, b.submit(), 403)
	if got := b.text("h1"); got != "This form has expired" {
		t.Fatalf("without the CSRF field: h1 %q", got)
	}
	b.shot("reset-csrf-refused")
	if !e.flows.usable(tok) || e.flows.count("ResetPassword") != 0 {
		t.Fatal("a form without its CSRF token reached the flows")
	}

	wantResponse(t, b.open(link), 200)
	b.typeInto("new_password", goodPassword)
	b.typeInto("confirm_password", goodPassword)
	wantResponse(t, b.submit(), 200)
	if e.flows.passwords["alice"] != goodPassword {
		t.Fatal("the link did not work after the refused post")
	}
}

// TestBrowserChineseAndVerify: a browser asking for Chinese gets the
// pages in Simplified Chinese; the verify link shows its button, and the
// button verifies the address.
func TestBrowserChineseAndVerify(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	vtok := e.flows.issue("alice", VerifyTokenPrefix)

	wantResponse(t, b.open(e.srv.URL+VerifyEmailPath+"?token="+vtok), 200)
	b.shot("verify-form")
	if e.flows.count("VerifyEmail") != 0 {
		t.Fatal("opening the verify link consumed it")
	}
	wantResponse(t, b.submit(), 200)
	if got := b.text("h1"); got != "Address verified" || !e.flows.verified["alice"] {
		t.Fatalf("verify: h1 %q, verified %v", got, e.flows.verified["alice"])
	}
	b.shot("verify-done")

	run(b, "ask for Chinese", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"}})
		return err
	}))
	wantResponse(t, b.open(e.srv.URL+ResetPasswordPath+"?token="+tok), 200)
	if got, lang := b.text("h1"), b.eval(`document.documentElement.lang`); got != "设置新密码" || lang != "zh-CN" {
		t.Fatalf("Chinese page: h1 %q, lang %q", got, lang)
	}
	b.typeInto("new_password", "tiny-pw-7")
	b.typeInto("confirm_password", "tiny-pw-7")
	wantResponse(t, b.submit(), 400)
	if got := b.text(`[role="alert"]`); got != "密码太短：请至少使用 15 个字符。" {
		t.Fatalf("Chinese policy message %q", got)
	}
	b.shot("reset-policy-zh-CN")
}
