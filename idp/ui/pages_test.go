package ui

import (
	"bytes"
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/web"
)

// env is the pages over testFlows on a loopback server, with a browser-like
// client that keeps cookies.
type env struct {
	t     *testing.T
	flows *testFlows
	pages *Pages
	srv   *httptest.Server
	c     *http.Client
	logs  *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, flows: newTestFlows(), logs: &bytes.Buffer{}}
	var err error
	e.pages, err = New(Config{Flows: e.flows, Requests: e.flows, Log: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(testMux(e.pages))
	t.Cleanup(e.srv.Close)
	e.c = e.newClient()
	return e
}

func (e *env) newClient() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func testMux(p *Pages) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET "+ResetPasswordPath, p.ShowResetPassword())
	m.Handle("POST "+ResetPasswordPath, p.SubmitResetPassword())
	m.Handle("GET "+VerifyEmailPath, p.ShowVerifyEmail())
	m.Handle("POST "+VerifyEmailPath, p.SubmitVerifyEmail())
	m.Handle("GET "+ForgotPasswordPath, p.ShowForgotPassword())
	m.Handle("POST "+ForgotPasswordPath, p.SubmitForgotPassword())
	m.Handle("GET "+AssetPrefix+"{file}", p.Asset())
	return m
}

// page is one answer, its body as text.
type page struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the env's client; header holds key, value pairs.
func (e *env) do(c *http.Client, method, path string, form url.Values, header ...string) page {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *env) get(path string, header ...string) page {
	e.t.Helper()
	return e.do(e.c, http.MethodGet, path, nil, header...)
}

func (e *env) post(path string, form url.Values, header ...string) page {
	e.t.Helper()
	return e.do(e.c, http.MethodPost, path, form, header...)
}

var (
	csrfRe  = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	tokenRe = regexp.MustCompile(`name="token" value="([^"]+)"`)
)

// hidden returns the value of a hidden field of p's form, failing the test
// when there is none.
func (p page) hidden(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	m := re.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no %s in the page:\n%s", re, p.body)
	}
	return m[1]
}

// resetForm opens the reset link of tok and returns the form to post back:
// the hidden fields, and the two passwords.
func (e *env) resetForm(tok, pw, confirm string) url.Values {
	e.t.Helper()
	p := e.get(ResetPasswordPath + "?token=" + tok)
	if p.status != http.StatusOK {
		e.t.Fatalf("GET reset link: %d\n%s", p.status, p.body)
	}
	return url.Values{CSRFField: {p.hidden(e.t, csrfRe)}, "token": {p.hidden(e.t, tokenRe)},
		"new_password": {pw}, "confirm_password": {confirm}}
}

const goodPassword = "a long and quiet river at dusk"

func wantStatus(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, status, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Fatalf("the page lacks %q:\n%s", s, p.body)
		}
	}
}

// wantPageHeaders checks every header a page must carry.
func wantPageHeaders(t *testing.T, p page) {
	t.Helper()
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if got := p.header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

// TestResetFlow: the link shows the form, GET after GET consumes nothing,
// the form sets the password and says so, and the link is then used up.
func TestResetFlow(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	for range 3 {
		p := e.get(ResetPasswordPath + "?token=" + tok)
		wantStatus(t, p, http.StatusOK, "Choose a new password", `autocomplete="new-password"`)
		wantPageHeaders(t, p)
	}
	if !e.flows.usable(tok) || e.flows.count("ResetPassword") != 0 {
		t.Fatal("GET consumed the token")
	}
	p := e.post(ResetPasswordPath, e.resetForm(tok, goodPassword, goodPassword))
	wantStatus(t, p, http.StatusOK, "Your password was changed")
	wantPageHeaders(t, p)
	if e.flows.passwords["alice"] != goodPassword || e.flows.usable(tok) {
		t.Fatalf("the reset did not set the password and use the token: %q", e.flows.passwords["alice"])
	}
	p = e.get(ResetPasswordPath + "?token=" + tok)
	wantStatus(t, p, http.StatusBadRequest, "This link has expired or was already used")
	wantPageHeaders(t, p)
}

// TestResetLinkInvalid: an expired, superseded, unknown or malformed link
// and one without a token all get the same page, and only a well-formed
// token reaches the flows.
func TestResetLinkInvalid(t *testing.T) {
	e := newEnv(t)
	expired := e.flows.issue("bob", ResetTokenPrefix)
	e.flows.advance(31 * 60e9)
	superseded := e.flows.issue("alice", ResetTokenPrefix)
	e.flows.issue("alice", ResetTokenPrefix)
	tests := []struct {
		name, query string
		asksFlows   bool
	}{
		{"expired", "token=" + expired, true},
		{"superseded", "token=" + superseded, true},
		{"unknown", "token=kwpr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", true},
		{"verify token", "token=kwev_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"no token", "", false},
		{"empty token", "token=", false},
		{"two tokens", "token=" + superseded + "&token=" + superseded, false},
		{"bad characters", "token=kwpr_%3Cscript%3E", false},
		{"too long", "token=kwpr_" + strings.Repeat("A", 200), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.flows.count("CheckResetToken")
			p := e.get(ResetPasswordPath + "?" + tt.query)
			wantStatus(t, p, http.StatusBadRequest, "This link has expired or was already used",
				"A link to reset a password works once", `<a href="../account/forgot-password">Request a new link</a>`)
			wantPageHeaders(t, p)
			if asked := e.flows.count("CheckResetToken") > before; asked != tt.asksFlows {
				t.Errorf("asked the flows: %v, want %v", asked, tt.asksFlows)
			}
			if strings.Contains(p.body, "<form") {
				t.Error("an invalid link shows a form")
			}
		})
	}
}

// TestResetFormErrors: a mismatch, an empty password and each policy
// refusal show the form again with the reason, linked to its field and
// announced, and consume nothing.
func TestResetFormErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	tests := []struct {
		name, pw, confirm string
		want, field       string
		callsFlows        bool
	}{
		{"mismatch", goodPassword, goodPassword + "!", "The two passwords do not match", "confirm_password", false},
		{"empty", "", "", "Enter a new password.", "new_password", false},
		{"too short", "tiny-pw-7", "tiny-pw-7", "use at least 15 characters", "new_password", true},
		{"contains username", "alice in wonderland garden", "alice in wonderland garden", "must not contain your username", "new_password", true},
		{"blocklisted", "password1234567890", "password1234567890", "too common", "new_password", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.flows.count("ResetPassword")
			p := e.post(ResetPasswordPath, e.resetForm(tok, tt.pw, tt.confirm))
			wantStatus(t, p, http.StatusBadRequest, tt.want, `role="alert"`, `id="form-error"`,
				`name="token" value="`+tok+`"`)
			wantPageHeaders(t, p)
			input := regexp.MustCompile(`<input id="` + tt.field + `"[^>]*>`).FindString(p.body)
			if !strings.Contains(input, `aria-invalid="true"`) || !regexp.MustCompile(`aria-describedby="[^"]*form-error`).MatchString(input) {
				t.Errorf("the error is not linked to its field: %s", input)
			}
			if tt.pw != "" && strings.Contains(p.body, tt.pw) {
				t.Error("the page repeats the password")
			}
			if called := e.flows.count("ResetPassword") > before; called != tt.callsFlows {
				t.Errorf("called ResetPassword: %v, want %v", called, tt.callsFlows)
			}
			if !e.flows.usable(tok) {
				t.Fatal("a refused form consumed the token")
			}
		})
	}
	p := e.post(ResetPasswordPath, e.resetForm(tok, goodPassword, goodPassword))
	wantStatus(t, p, http.StatusOK, "Your password was changed")
}

// TestCSRF: a form posted without its token, with a wrong one, with the
// token of another browser, without the cookie, or from another site is
// refused 403 with the page headers, and reaches no flow.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	vtok := e.flows.issue("alice", VerifyTokenPrefix)
	other := e.newClient()
	otherForm := e.do(other, http.MethodGet, ResetPasswordPath+"?token="+tok, nil).hidden(t, csrfRe)
	form := func(change func(url.Values)) url.Values {
		f := e.resetForm(tok, goodPassword, goodPassword)
		change(f)
		return f
	}
	tests := []struct {
		name   string
		client *http.Client
		form   url.Values
		header []string
	}{
		{"missing token", e.c, form(func(f url.Values) { f.Del(CSRFField) }), nil},
		{"empty token", e.c, form(func(f url.Values) { f.Set(CSRFField, "") }), nil},
		{"wrong token", e.c, form(func(f url.Values) { f.Set(CSRFField, strings.Repeat("A", 43)) }), nil},
		{"token twice", e.c, form(func(f url.Values) { f.Add(CSRFField, f.Get(CSRFField)) }), nil},
		{"another browser's token", e.c, form(func(f url.Values) { f.Set(CSRFField, otherForm) }), nil},
		{"no cookie", &http.Client{}, form(func(url.Values) {}), nil},
		{"cross-site", e.c, form(func(url.Values) {}), []string{"Sec-Fetch-Site", "cross-site"}},
		{"other origin", e.c, form(func(url.Values) {}), []string{"Origin", "https://evil.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.do(tt.client, http.MethodPost, ResetPasswordPath, tt.form, tt.header...)
			wantStatus(t, p, http.StatusForbidden, "This form has expired")
			wantPageHeaders(t, p)
			f := url.Values{CSRFField: tt.form[CSRFField], "token": {vtok}}
			p = e.do(tt.client, http.MethodPost, VerifyEmailPath, f, tt.header...)
			wantStatus(t, p, http.StatusForbidden, "This form has expired")
		})
	}
	if n := e.flows.count("ResetPassword") + e.flows.count("VerifyEmail"); n != 0 || !e.flows.usable(tok) || !e.flows.usable(vtok) {
		t.Fatalf("refused forms reached the flows %d times", n)
	}
	if strings.Contains(e.logs.String(), "kwpr_") || strings.Contains(e.logs.String(), "kwev_") {
		t.Fatalf("the log holds a token:\n%s", e.logs)
	}
}

// TestFormBody: a POST that is not a small urlencoded form is refused
// before its CSRF token is even looked at.
func TestFormBody(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	f := e.resetForm(tok, goodPassword, goodPassword)
	tests := []struct {
		name, contentType, body string
		status                  int
	}{
		{"json", "application/json", `{"token":"` + tok + `"}`, http.StatusBadRequest},
		{"multipart", "multipart/form-data; boundary=x", "--x--", http.StatusBadRequest},
		{"none", "", f.Encode(), http.StatusBadRequest},
		{"too large", "application/x-www-form-urlencoded", f.Encode() + "&pad=" + strings.Repeat("a", maxFormBody), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+ResetPasswordPath, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := e.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Security-Policy") != PageCSP {
				t.Fatalf("status %d, CSP %q; want %d and the page CSP", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), tt.status)
			}
		})
	}
	if e.flows.count("ResetPassword") != 0 {
		t.Fatal("a refused body reached the flows")
	}
}

// TestVerifyFlow: the link shows a button and consumes nothing, however
// often it is opened; the button verifies the address once.
func TestVerifyFlow(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", VerifyTokenPrefix)
	var p page
	for range 3 {
		p = e.get(VerifyEmailPath + "?token=" + tok)
		wantStatus(t, p, http.StatusOK, "Confirm your e-mail address", "Confirm my address")
		wantPageHeaders(t, p)
	}
	if e.flows.count("VerifyEmail") != 0 || !e.flows.usable(tok) {
		t.Fatal("GET consumed the token")
	}
	form := url.Values{CSRFField: {p.hidden(t, csrfRe)}, "token": {p.hidden(t, tokenRe)}}
	p = e.post(VerifyEmailPath, form)
	wantStatus(t, p, http.StatusOK, "Address verified")
	wantPageHeaders(t, p)
	if !e.flows.verified["alice"] {
		t.Fatal("the address is not verified")
	}
	p = e.post(VerifyEmailPath, form)
	wantStatus(t, p, http.StatusBadRequest, "This link has expired or was already used", "Ask for a new confirmation e-mail")
	p = e.get(VerifyEmailPath + "?token=kwpr_AAAA")
	wantStatus(t, p, http.StatusBadRequest, "This link has expired or was already used")
}

// TestFlowFailures: a throttled flow answers 429 with Retry-After, an
// overloaded one 503, a broken one the generic 500 page; none shows the
// error's text, and the 500 is logged by path, without the token.
func TestFlowFailures(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   string
		retry  string
	}{
		{"throttled", &web.Error{Code: "too_many_requests", Description: "slow down secret-ish", Status: http.StatusTooManyRequests, RetryAfter: 90e9},
			http.StatusTooManyRequests, "Too many attempts", "90"},
		{"overloaded", &web.Error{Code: web.ErrTemporarilyUnavail, Description: "busy secret-ish", Status: http.StatusServiceUnavailable, RetryAfter: 1e9},
			http.StatusServiceUnavailable, "The service is busy", "1"},
		{"timed out", fmt.Errorf("check token: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "The service is busy", "1"},
		{"database gone", fmt.Errorf("check token: %w", driver.ErrBadConn), http.StatusServiceUnavailable, "The service is busy", "5"},
		{"broken", io.ErrUnexpectedEOF, http.StatusInternalServerError, "Something went wrong", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.flows.issue("alice", ResetTokenPrefix)
			form := e.resetForm(tok, goodPassword, goodPassword)
			e.flows.throttle = tt.err
			for _, p := range []page{
				e.get(ResetPasswordPath + "?token=" + tok),
				e.post(ResetPasswordPath, form),
				e.post(VerifyEmailPath, url.Values{CSRFField: form[CSRFField], "token": {"kwev_AAAA"}}),
			} {
				wantStatus(t, p, tt.status, tt.want)
				wantPageHeaders(t, p)
				if got := p.header.Get("Retry-After"); got != tt.retry {
					t.Errorf("Retry-After %q, want %q", got, tt.retry)
				}
				if strings.Contains(p.body, "secret-ish") || strings.Contains(p.body, "unexpected EOF") {
					t.Errorf("the page shows the error's text:\n%s", p.body)
				}
			}
			if strings.Contains(e.logs.String(), "kwpr_") || strings.Contains(e.logs.String(), "kwev_") {
				t.Fatalf("the log holds a token:\n%s", e.logs)
			}
		})
	}
}
