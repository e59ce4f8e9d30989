package idp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// pageFlows is a small ui.AccountFlows for the assembly's tests: single-use
// tokens, plus tokens that make a flow fail (kwpr_boom: a 500) or panic
// (kwpr_panic), to drive the server's error and panic logs.
type pageFlows struct {
	mu   sync.Mutex
	live map[string]bool // token -> unused
	set  []string        // passwords set
}

func newPageFlows(tokens ...string) *pageFlows {
	f := &pageFlows{live: map[string]bool{}}
	for _, t := range tokens {
		f.live[t] = true
	}
	return f
}

func (f *pageFlows) check(token string, consume bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case strings.HasSuffix(token, "_panic"):
		panic("flow panicked")
	case strings.HasSuffix(token, "_boom"):
		return errors.New("the token table is on fire")
	case !f.live[token]:
		return &web.Error{Code: web.ErrInvalidToken, Status: http.StatusBadRequest}
	}
	if consume {
		f.live[token] = false
	}
	return nil
}

func (f *pageFlows) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.set)
}

func (f *pageFlows) isLive(token string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[token]
}

func (f *pageFlows) CheckResetToken(ctx context.Context, token string) error {
	return f.check(token, false)
}

func (f *pageFlows) ResetPassword(ctx context.Context, token, pw string) error {
	if err := f.check(token, true); err != nil {
		return err
	}
	f.mu.Lock()
	f.set = append(f.set, pw)
	f.mu.Unlock()
	return nil
}

func (f *pageFlows) VerifyEmail(ctx context.Context, token string) error { return f.check(token, true) }

// pageRequests adds the forgot-password flow to pageFlows.
type pageRequests struct {
	*pageFlows
	asked []string
}

func (f *pageRequests) RequestPasswordReset(ctx context.Context, username, email, lang string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, username+"|"+email+"|"+lang)
	return nil
}

const (
	pageResetToken  = "kwpr_Q2hhbmdlIG1lIGlmIHlvdSBjYW4gcmVhZCB0aGlzIHRva2Vu"
	pageVerifyToken = "kwev_VmVyaWZ5IG1lIGlmIHlvdSBjYW4gcmVhZCB0aGlzIHRva2Vu"
)

var pageCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// pageEnv is a real server with the pages on, and a client with cookies.
func pageEnv(t *testing.T, flows ui.AccountFlows) *idptest.Env {
	t.Helper()
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.AccountFlows = flows })
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Client = &http.Client{Jar: jar}
	return e
}

// pageCSRFToken opens path and returns the CSRF token of its form.
func pageCSRFToken(t *testing.T, e *idptest.Env, path string) string {
	t.Helper()
	r := e.Do(idptest.Request{Method: http.MethodGet, Path: path})
	m := pageCSRF.FindSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d without a form:\n%s", path, r.Status, r.Body)
	}
	return string(m[1])
}

// TestPagesThroughServer: through the server's middleware, the pages keep
// their own headers (the page CSP replaces the API's), the stylesheet they
// link loads, the reset works, and a JSON POST to /account/verify-email is
// not the page's to answer.
func TestPagesThroughServer(t *testing.T) {
	flows := newPageFlows(pageResetToken, pageVerifyToken)
	e := pageEnv(t, flows)
	path := ui.ResetPasswordPath + "?token=" + pageResetToken
	r := e.Do(idptest.Request{Method: http.MethodGet, Path: path})
	want := map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
		"Content-Security-Policy": ui.PageCSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
	}
	for k, v := range want {
		if got := r.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	css := regexp.MustCompile(`href="\.\.(/ui/[^"]+)"`).FindSubmatch(r.Body)
	if css == nil {
		t.Fatalf("no stylesheet link:\n%s", r.Body)
	}
	if c := e.Do(idptest.Request{Method: http.MethodGet, Path: string(css[1])}); c.Status != http.StatusOK ||
		!strings.HasPrefix(c.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: %d %s", c.Status, c.Header.Get("Content-Type"))
	}
	form := url.Values{"csrf_token": {pageCSRFToken(t, e, path)}, "token": {pageResetToken},
		"new_password": {"a long and quiet river at dusk"}, "confirm_password": {"a long and quiet river at dusk"}}
	r = e.Do(idptest.Request{Path: ui.ResetPasswordPath, Body: form.Encode()})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Your password was changed") || flows.count() != 1 {
		t.Fatalf("reset: %d\n%s", r.Status, r.Body)
	}
	r = e.Do(idptest.Request{Path: ui.VerifyEmailPath, Body: `{"token":"` + pageVerifyToken + `"}`, ContentType: "application/json"})
	if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("the page answered a JSON POST: %d\n%s", r.Status, r.Body)
	}
	if r := e.Do(idptest.Request{Method: http.MethodHead, Path: ui.VerifyEmailPath + "?token=" + pageVerifyToken}); r.Status != http.StatusOK ||
		r.Header.Get("Content-Security-Policy") != ui.PageCSP || !flows.isLive(pageVerifyToken) {
		t.Fatalf("HEAD of the verify link: %d, CSP %q, token live %v", r.Status, r.Header.Get("Content-Security-Policy"), flows.isLive(pageVerifyToken))
	}
	r = e.Do(idptest.Request{Method: http.MethodPut, Path: ui.VerifyEmailPath})
	if r.Status != http.StatusMethodNotAllowed || !strings.Contains(r.Header.Get("Allow"), "GET") {
		t.Fatalf("PUT: %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
}

// TestForgotPage: the forgot-password page is served when the flows can
// request a reset, and only then.
func TestForgotPage(t *testing.T) {
	e := pageEnv(t, newPageFlows())
	if r := e.Do(idptest.Request{Method: http.MethodGet, Path: ui.ForgotPasswordPath}); r.Status != http.StatusNotFound {
		t.Fatalf("without a ResetRequester: %d, want 404", r.Status)
	}
	flows := &pageRequests{pageFlows: newPageFlows()}
	e = pageEnv(t, flows)
	form := url.Values{"csrf_token": {pageCSRFToken(t, e, ui.ForgotPasswordPath)}, "login": {"alice@example.com"}}
	r := e.Do(idptest.Request{Path: ui.ForgotPasswordPath, Body: form.Encode()})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Check your mail") || len(flows.asked) != 1 ||
		flows.asked[0] != "|alice@example.com|en" {
		t.Fatalf("forgot: %d %q\n%s", r.Status, flows.asked, r.Body)
	}
}

// TestPagesOnTheAccountFlows: without Config.AccountFlows the pages run
// the account endpoints' own flows, end to end on both backends: the forgot
// page mails a link over SMTP to a server on loopback, the link opens the
// form, a GET consumes nothing, the form sets the password (the old one and
// the old refresh token stop working, the new one signs in), the link
// cannot be used twice, and a notice arrives.
func TestPagesOnTheAccountFlows(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		smtp := mailtest.NewServer(t)
		e := idptest.New(t, b, func(c *idp.Config) { c.Mail = mailtest.NewSender(t, smtp.Addr) })
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Client = &http.Client{Jar: jar}
		old := e.Login().Str("refresh_token")

		csrf := pageCSRFToken(t, e, ui.ForgotPasswordPath)
		form := url.Values{"csrf_token": {csrf}, "login": {"alice"}}
		if r := e.Do(idptest.Request{Path: ui.ForgotPasswordPath, Body: form.Encode()}); r.Status != http.StatusOK {
			t.Fatalf("forgot page: %d\n%s", r.Status, r.Body)
		}
		m := smtp.Wait(t, "alice@example.com", mail.KindPasswordReset, 1)
		u, err := url.Parse(m.Link())
		if err != nil || m.Token() == "" || u.Path != ui.ResetPasswordPath {
			t.Fatalf("mailed link %q", m.Link())
		}
		page := u.Path + "?" + u.RawQuery
		csrf = pageCSRFToken(t, e, page)
		csrf = pageCSRFToken(t, e, page) // a second GET: the link still works
		pw := "a long and quiet river at dusk"
		reset := url.Values{"csrf_token": {csrf}, "token": {m.Token()}, "new_password": {pw}, "confirm_password": {pw}}
		if r := e.Do(idptest.Request{Path: ui.ResetPasswordPath, Body: reset.Encode()}); r.Status != http.StatusOK {
			t.Fatalf("reset form: %d\n%s", r.Status, r.Body)
		}
		if r := e.Do(idptest.Request{Path: ui.ResetPasswordPath, Body: reset.Encode()}); r.Status != http.StatusBadRequest {
			t.Fatalf("the link used twice: %d, want 400\n%s", r.Status, r.Body)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(old)), http.StatusBadRequest, "invalid_grant")
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), http.StatusBadRequest, "invalid_grant")
		if r := e.Token("C1", idptest.PasswordForm("alice", pw)); r.Status != http.StatusOK {
			t.Fatalf("login with the new password: %d %s", r.Status, r.Body)
		}
		smtp.Wait(t, "alice@example.com", mail.KindPasswordWasReset, 1)
	})
}

// TestPagesNeverLogTokens (RR-05): whatever happens to a page request
// (success, a wrong CSRF token, a cross-site post, a failing flow, a panic)
// the server's log names the path and never the token of the link or the
// form, nor a password.
func TestPagesNeverLogTokens(t *testing.T) {
	const boom, panicky = "kwpr_boom", "kwpr_panic"
	e := pageEnv(t, newPageFlows(pageResetToken, pageVerifyToken))
	link := ui.ResetPasswordPath + "?token=" + pageResetToken
	csrf := pageCSRFToken(t, e, link)
	pw := "a long and quiet river at dusk"
	post := func(path string, form url.Values, header ...string) idptest.Response {
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return e.Do(idptest.Request{Path: path, Body: form.Encode(), Header: h})
	}
	reset := func(token, csrf string) url.Values {
		return url.Values{"csrf_token": {csrf}, "token": {token}, "new_password": {pw}, "confirm_password": {pw}}
	}
	steps := []struct {
		name   string
		do     func() idptest.Response
		status int
	}{
		{"link", func() idptest.Response { return e.Do(idptest.Request{Method: http.MethodGet, Path: link}) }, http.StatusOK},
		{"failing check", func() idptest.Response {
			return e.Do(idptest.Request{Method: http.MethodGet, Path: ui.ResetPasswordPath + "?token=" + boom})
		}, http.StatusInternalServerError},
		{"panicking check", func() idptest.Response {
			return e.Do(idptest.Request{Method: http.MethodGet, Path: ui.ResetPasswordPath + "?token=" + panicky})
		}, http.StatusInternalServerError},
		{"wrong csrf", func() idptest.Response { return post(ui.ResetPasswordPath, reset(pageResetToken, "x")) }, http.StatusForbidden},
		{"cross-site", func() idptest.Response {
			return post(ui.ResetPasswordPath, reset(pageResetToken, csrf), "Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"failing reset", func() idptest.Response { return post(ui.ResetPasswordPath, reset(boom, csrf)) }, http.StatusInternalServerError},
		{"panicking reset", func() idptest.Response { return post(ui.ResetPasswordPath, reset(panicky, csrf)) }, http.StatusInternalServerError},
		{"reset", func() idptest.Response { return post(ui.ResetPasswordPath, reset(pageResetToken, csrf)) }, http.StatusOK},
		{"used", func() idptest.Response { return post(ui.ResetPasswordPath, reset(pageResetToken, csrf)) }, http.StatusBadRequest},
		{"verify link", func() idptest.Response {
			return e.Do(idptest.Request{Method: http.MethodGet, Path: ui.VerifyEmailPath + "?token=" + pageVerifyToken})
		}, http.StatusOK},
		{"verify", func() idptest.Response {
			return post(ui.VerifyEmailPath, url.Values{"csrf_token": {csrf}, "token": {pageVerifyToken}})
		}, http.StatusOK},
		{"failing verify", func() idptest.Response {
			return post(ui.VerifyEmailPath, url.Values{"csrf_token": {csrf}, "token": {"kwev_boom"}})
		}, http.StatusInternalServerError},
	}
	for _, s := range steps {
		if r := s.do(); r.Status != s.status {
			t.Fatalf("%s: %d, want %d\n%s", s.name, r.Status, s.status, r.Body)
		}
	}
	logs := e.Logs.String()
	for _, want := range []string{"panic serving request", "page failed", "csrf", "cross-origin", `"path":"/account/reset-password"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q, so it does not show what this test needs:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"kwpr_", "kwev_", pageResetToken[5:], pageVerifyToken[5:], "boom", "panic\"", pw, csrf} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
}
