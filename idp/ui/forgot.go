package ui

import (
	"context"
	"net/http"
	"strings"
)

// ResetRequester is the forgot-password flow behind the page at
// ForgotPasswordPath (optional: without it the page is not served and the
// "expired link" page links nowhere). It must answer alike whether or not
// an account matches (RR-01), mailing a link only to a verified address;
// it returns a *web.Error with status 429 when the caller is throttled,
// 400 invalid_request for a username or address it cannot read, and any
// other error for a failure of the server.
type ResetRequester interface {
	// RequestPasswordReset asks for a reset link for the account named by
	// username or by email; exactly one is set. lang is the page's
	// language ("en" or "zh-CN", as mail.Message.Lang), for the mail.
	RequestPasswordReset(ctx context.Context, username, email, lang string) error
}

// ForgotPasswordPath is the forgot-password page; idp.Server.Routes binds
// it when the flows are a ResetRequester.
const ForgotPasswordPath = "/account/forgot-password"

const fieldLogin = "login"

// maxLogin bounds the login field: a username (64 characters) or an
// address (254 bytes), with room.
const maxLogin = 320

// ServesForgotPassword reports whether the forgot-password page is on
// (Config.Requests is set), for the assembly to bind its routes.
func (p *Pages) ServesForgotPassword() bool { return p.requests != nil }

// forgotForm is the data of the forgot_form page.
type forgotForm struct{ Action string }

// ShowForgotPassword is GET /account/forgot-password: one field for a
// username or an e-mail address.
func (p *Pages) ShowForgotPassword() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := p.NewView(w, r, "forgot.title")
		v.Data = forgotForm{Action: ForgotPasswordPath}
		p.Render(w, r, http.StatusOK, "forgot_form", v)
	})
}

// SubmitForgotPassword is the form POST of /account/forgot-password: a
// value with an "@" is an e-mail address, anything else a username. The
// answer is the same page whether or not an account matches.
func (p *Pages) SubmitForgotPassword() http.Handler {
	return p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login, ok := FormValue(r, fieldLogin)
		login = strings.TrimSpace(login)
		v := p.NewView(w, r, "forgot.title")
		v.Data = forgotForm{Action: ForgotPasswordPath}
		if !ok || login == "" || len(login) > maxLogin {
			v.Error, v.ErrorFor = v.T("forgot.error.login"), fieldLogin
			p.Render(w, r, http.StatusBadRequest, "forgot_form", v)
			return
		}
		username, email := login, ""
		if strings.Contains(login, "@") {
			username, email = "", login
		}
		if err := p.requests.RequestPasswordReset(r.Context(), username, email, v.Lang); err != nil {
			if _, bad := isCode(err, "invalid_request"); bad {
				v.Error, v.ErrorFor = v.T("forgot.error.login"), fieldLogin
				p.Render(w, r, http.StatusBadRequest, "forgot_form", v)
				return
			}
			p.Fail(w, r, err)
			return
		}
		p.Message(w, r, http.StatusOK, "forgot.sent.title", "forgot.sent.body")
	}))
}
