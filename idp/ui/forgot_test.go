package ui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/web"
)

// TestForgotFlow: the forgot-password page asks for a username or an
// address, passes it on as one or the other, and answers the same page
// whatever the flow found; an empty field shows the form again, and
// neither a form without its CSRF token nor a throttled caller gets the
// "sent" page.
func TestForgotFlow(t *testing.T) {
	e := newEnv(t)
	p := e.get(ForgotPasswordPath)
	wantStatus(t, p, http.StatusOK, "Forgot your password?", `<label for="login">`, `autocomplete="username"`)
	wantPageHeaders(t, p)
	csrf := p.hidden(t, csrfRe)

	var sent []string
	for _, login := range []string{"alice", " alice@example.com ", "ghost", "ghost@example.com"} {
		p := e.post(ForgotPasswordPath, url.Values{CSRFField: {csrf}, "login": {login}})
		wantStatus(t, p, http.StatusOK, "Check your mail")
		wantPageHeaders(t, p)
		sent = append(sent, p.body)
	}
	for _, b := range sent[1:] {
		if b != sent[0] {
			t.Fatalf("the answers differ:\n%s\n---\n%s", sent[0], b)
		}
	}
	p = e.post(ForgotPasswordPath, url.Values{CSRFField: {csrf}, "login": {"alice"}}, "Accept-Language", "zh-CN")
	wantStatus(t, p, http.StatusOK, "请查收邮件")
	if want := []string{"u:alice@en", "e:alice@example.com@en", "u:ghost@en", "e:ghost@example.com@en", "u:alice@zh-CN"}; !slices.Equal(e.flows.requested, want) {
		t.Fatalf("requests %q, want %q", e.flows.requested, want)
	}

	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"empty", url.Values{CSRFField: {csrf}, "login": {"  "}}, http.StatusBadRequest, "Enter your username or your e-mail address."},
		{"missing", url.Values{CSRFField: {csrf}}, http.StatusBadRequest, "Enter your username or your e-mail address."},
		{"too long", url.Values{CSRFField: {csrf}, "login": {strings.Repeat("a", maxLogin+1)}}, http.StatusBadRequest, "Enter your username"},
		{"refused by the flow", url.Values{CSRFField: {csrf}, "login": {"two\twords"}}, http.StatusBadRequest, `role="alert"`},
		{"no csrf", url.Values{"login": {"alice"}}, http.StatusForbidden, "This form has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.post(ForgotPasswordPath, tt.form)
			wantStatus(t, p, tt.status, tt.want)
			wantPageHeaders(t, p)
		})
	}
	if len(e.flows.requested) != 5 {
		t.Fatalf("refused forms requested links: %q", e.flows.requested)
	}

	e.flows.throttle = &web.Error{Code: "too_many_requests", Status: http.StatusTooManyRequests, RetryAfter: 60e9}
	p = e.post(ForgotPasswordPath, url.Values{CSRFField: {csrf}, "login": {"alice"}})
	wantStatus(t, p, http.StatusTooManyRequests, "Too many attempts")
	if p.header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After %q", p.header.Get("Retry-After"))
	}
}

// TestNoForgotPage: without a ResetRequester the "expired link" page
// tells the person where to ask instead of linking to a page that does not
// exist.
func TestNoForgotPage(t *testing.T) {
	p, err := New(Config{Flows: newTestFlows()})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	p.ShowResetPassword().ServeHTTP(w, httptest.NewRequest(http.MethodGet, ResetPasswordPath+"?token=kwpr_x", nil))
	body := w.Body.String()
	if w.Code != http.StatusBadRequest || strings.Contains(body, "<a ") ||
		!strings.Contains(body, "Request a new link from the sign-in page of your application.") {
		t.Fatalf("%d\n%s", w.Code, body)
	}
}
