package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/keyward/keyward/internal/browsertest"
)

// The browser tests drive Debian's Chromium through the pages
// (internal/browsertest); screenshots go to $KEYWARD_ARTIFACTS/ui.

type browser = browsertest.Browser

func newBrowser(t *testing.T) *browser { return browsertest.New(t, "ui") }

// wantResponse checks a document's status and the page headers as the
// browser received them.
func wantResponse(t *testing.T, resp *network.Response, status int) {
	t.Helper()
	browsertest.WantPage(t, resp, status, PageCSP, true)
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

	wantResponse(t, b.Open(link), 200)
	if got := b.Text("h1"); got != "Choose a new password" {
		t.Fatalf("h1 %q", got)
	}
	if bg := b.Eval(`getComputedStyle(document.querySelector("button")).backgroundColor`); bg != "rgb(29, 78, 216)" {
		t.Fatalf("the stylesheet did not apply (button background %q): blocked by the CSP?", bg)
	}
	b.Shot("reset-form")

	b.TypeInto("new_password", goodPassword)
	b.TypeInto("confirm_password", goodPassword+"?")
	wantResponse(t, b.Submit(), 400)
	if got := b.Text(`[role="alert"]`); !strings.Contains(got, "do not match") {
		t.Fatalf("mismatch: alert %q", got)
	}
	if got := b.Eval(`document.activeElement.id`); got != "confirm_password" {
		t.Errorf("after a mismatch the focus is on %q, want confirm_password", got)
	}
	b.Shot("reset-mismatch")
	if !e.flows.usable(tok) {
		t.Fatal("a mismatch consumed the token")
	}

	b.TypeInto("new_password", goodPassword)
	b.TypeInto("confirm_password", goodPassword)
	b.Shot("reset-filled")
	wantResponse(t, b.Submit(), 200)
	if got := b.Text("h1"); got != "Your password was changed" {
		t.Fatalf("after submit: h1 %q", got)
	}
	b.Shot("reset-done")
	if e.flows.passwords["alice"] != goodPassword {
		t.Fatalf("password set to %q", e.flows.passwords["alice"])
	}

	wantResponse(t, b.Open(link), 400)
	if got := b.Text("h1"); got != "This link has expired or was already used" {
		t.Fatalf("used link: h1 %q", got)
	}
	b.Shot("reset-link-used")

	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href$="`+ForgotPasswordPath+`"]`)))
	if err != nil {
		t.Fatalf("follow the request-a-new-link link: %v", err)
	}
	wantResponse(t, resp, 200)
	b.TypeInto("login", "alice")
	b.Shot("forgot-form")
	wantResponse(t, b.Submit(), 200)
	if got := b.Text("h1"); got != "Check your mail" || len(e.flows.requested) != 1 || e.flows.requested[0] != "u:alice@en" {
		t.Fatalf("forgot: h1 %q, requests %q", got, e.flows.requested)
	}
	b.Shot("forgot-sent")
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
		wantResponse(t, b.Open(link), 200)
	}
	if !e.flows.usable(tok) || e.flows.count("ResetPassword") != 0 {
		t.Fatal("opening the link consumed the token")
	}

	b.Eval(`document.querySelector('input[name="csrf_token"]').remove(), "removed"`)
	b.TypeInto("new_password", goodPassword)
	b.TypeInto("confirm_password", goodPassword)
	wantResponse(t, b.Submit(), 403)
	if got := b.Text("h1"); got != "This form has expired" {
		t.Fatalf("without the CSRF field: h1 %q", got)
	}
	b.Shot("reset-csrf-refused")
	if !e.flows.usable(tok) || e.flows.count("ResetPassword") != 0 {
		t.Fatal("a form without its CSRF token reached the flows")
	}

	wantResponse(t, b.Open(link), 200)
	b.TypeInto("new_password", goodPassword)
	b.TypeInto("confirm_password", goodPassword)
	wantResponse(t, b.Submit(), 200)
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

	wantResponse(t, b.Open(e.srv.URL+VerifyEmailPath+"?token="+vtok), 200)
	b.Shot("verify-form")
	if e.flows.count("VerifyEmail") != 0 {
		t.Fatal("opening the verify link consumed it")
	}
	wantResponse(t, b.Submit(), 200)
	if got := b.Text("h1"); got != "Address verified" || !e.flows.verified["alice"] {
		t.Fatalf("verify: h1 %q, verified %v", got, e.flows.verified["alice"])
	}
	b.Shot("verify-done")

	browsertest.Run(b, "ask for Chinese", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"}})
		return err
	}))
	wantResponse(t, b.Open(e.srv.URL+ResetPasswordPath+"?token="+tok), 200)
	if got, lang := b.Text("h1"), b.Eval(`document.documentElement.lang`); got != "设置新密码" || lang != "zh-CN" {
		t.Fatalf("Chinese page: h1 %q, lang %q", got, lang)
	}
	b.TypeInto("new_password", "tiny-pw-7")
	b.TypeInto("confirm_password", "tiny-pw-7")
	wantResponse(t, b.Submit(), 400)
	if got := b.Text(`[role="alert"]`); got != "密码太短：请至少使用 15 个字符。" {
		t.Fatalf("Chinese policy message %q", got)
	}
	b.Shot("reset-policy-zh-CN")
}
