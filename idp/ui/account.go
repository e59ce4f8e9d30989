package ui

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/idp/web"
)

// AccountFlows is what the account pages need of the account flows
// (*account.Handlers, docs/account.md). Each returns nil or a *web.Error:
// invalid_token (400) for a token that is unknown, used, expired or
// superseded; invalid_password (400) with Rule for a password the policy
// refuses; 429 when throttled; anything else is a failure of the server.
type AccountFlows interface {
	// CheckResetToken reports whether a kwpr_ token is usable now, without
	// consuming it.
	CheckResetToken(ctx context.Context, token string) error
	// ResetPassword consumes a kwpr_ token and sets newPassword.
	ResetPassword(ctx context.Context, token, newPassword string) error
	// VerifyEmail consumes a kwev_ token and marks its address verified.
	VerifyEmail(ctx context.Context, token string) error
}

// Token prefixes of the links the pages serve (docs/account.md).
const (
	ResetTokenPrefix  = "kwpr_"
	VerifyTokenPrefix = "kwev_"
)

// Paths of the account pages; idp.Server.Routes binds them.
const (
	ResetPasswordPath = "/account/reset-password"
	VerifyEmailPath   = "/account/verify-email"
)

// maxToken bounds a token the pages pass on: a real one is its prefix and
// 43 base64url characters.
const maxToken = 128

// Names of the reset form's fields.
const (
	fieldToken           = "token"
	fieldNewPassword     = "new_password"
	fieldConfirmPassword = "confirm_password"
)

// wellFormed reports whether token can be one of the flows' tokens: the
// prefix, then base64url characters. Anything else is refused as an invalid
// link without asking the flows.
func wellFormed(token, prefix string) bool {
	if len(token) > maxToken || !strings.HasPrefix(token, prefix) || len(token) == len(prefix) {
		return false
	}
	for _, c := range token[len(prefix):] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isCode reports whether err is a *web.Error with code.
func isCode(err error, code string) (*web.Error, bool) {
	var we *web.Error
	if errors.As(err, &we) && we.Code == code {
		return we, true
	}
	return nil, false
}

// queryToken returns the token of a link: the one "token" query parameter.
func queryToken(r *http.Request) string {
	vs := r.URL.Query()[fieldToken]
	if len(vs) != 1 {
		return ""
	}
	return vs[0]
}

// resetForm is the data of the reset_form page.
type resetForm struct {
	Token     string
	MinLength int
	Action    string
}

// verifyForm is the data of the verify_form page.
type verifyForm struct {
	Token  string
	Action string
}

// ShowResetPassword is GET /account/reset-password?token=kwpr_…: the form
// to choose a new password when the token is usable now, else the
// "expired or used" page. It never consumes the token.
func (p *Pages) ShowResetPassword() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := queryToken(r)
		if !wellFormed(token, ResetTokenPrefix) {
			p.linkInvalid(w, r, "reset")
			return
		}
		if err := p.flows.CheckResetToken(r.Context(), token); err != nil {
			p.resetFailed(w, r, err, nil)
			return
		}
		v := p.NewView(w, r, "reset.title")
		v.Data = resetForm{Token: token, MinLength: p.minLen, Action: ResetPasswordPath}
		p.Render(w, r, http.StatusOK, "reset_form", v)
	})
}

// SubmitResetPassword is the form POST of /account/reset-password: it
// checks the two fields match, then consumes the token and sets the
// password (AccountFlows.ResetPassword). A policy refusal or a mismatch
// shows the form again with the reason; the token comes only from the
// form's hidden field.
func (p *Pages) SubmitResetPassword() http.Handler {
	return p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := FormValue(r, fieldToken)
		if !wellFormed(token, ResetTokenPrefix) {
			p.linkInvalid(w, r, "reset")
			return
		}
		pw, ok1 := FormValue(r, fieldNewPassword)
		confirm, ok2 := FormValue(r, fieldConfirmPassword)
		v := p.NewView(w, r, "reset.title")
		v.Data = resetForm{Token: token, MinLength: p.minLen, Action: ResetPasswordPath}
		switch {
		case !ok1 || pw == "":
			v.Error, v.ErrorFor = v.T("reset.error.empty"), fieldNewPassword
		case !ok2 || pw != confirm:
			v.Error, v.ErrorFor = v.T("reset.error.mismatch"), fieldConfirmPassword
		}
		if v.Error != "" {
			p.Render(w, r, http.StatusBadRequest, "reset_form", v)
			return
		}
		if err := p.flows.ResetPassword(r.Context(), token, pw); err != nil {
			p.resetFailed(w, r, err, v)
			return
		}
		p.Message(w, r, http.StatusOK, "reset.done.title", "reset.done.body")
	}))
}

// resetFailed answers an error of CheckResetToken or ResetPassword: the
// form again for a policy refusal (form is the view to show it in), the
// "expired or used" page for a bad token, Fail for the rest.
func (p *Pages) resetFailed(w http.ResponseWriter, r *http.Request, err error, form *View) {
	if _, ok := isCode(err, web.ErrInvalidToken); ok {
		p.linkInvalid(w, r, "reset")
		return
	}
	if we, ok := isCode(err, "invalid_password"); ok && form != nil {
		form.Error, form.ErrorFor = p.ruleMessage(form.Lang, we.Rule), fieldNewPassword
		p.Render(w, r, http.StatusBadRequest, "reset_form", form)
		return
	}
	p.Fail(w, r, err)
}

// ruleMessage is the text, in lang, of the password rule a policy refusal
// names (password.PolicyError's rules).
func (p *Pages) ruleMessage(lang, rule string) string {
	switch rule {
	case "too_short":
		return T(lang, "password.rule.too_short", p.minLen)
	case "too_long", "control_character", "invalid_utf8", "contains_username", "contains_email",
		"blocklisted", "same_as_current":
		return T(lang, "password.rule."+rule)
	}
	return T(lang, "password.rule.other")
}

// ShowVerifyEmail is GET /account/verify-email?token=kwev_…: a page with
// one button that posts the token. It never consumes the token (mail
// scanners follow links), so it cannot tell a used link from a good one.
func (p *Pages) ShowVerifyEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := queryToken(r)
		if !wellFormed(token, VerifyTokenPrefix) {
			p.linkInvalid(w, r, "verify")
			return
		}
		v := p.NewView(w, r, "verify.title")
		v.Data = verifyForm{Token: token, Action: VerifyEmailPath}
		p.Render(w, r, http.StatusOK, "verify_form", v)
	})
}

// SubmitVerifyEmail is the form POST of /account/verify-email: it
// consumes the token (AccountFlows.VerifyEmail) and says the address is
// verified.
func (p *Pages) SubmitVerifyEmail() http.Handler {
	return p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := FormValue(r, fieldToken)
		if !wellFormed(token, VerifyTokenPrefix) {
			p.linkInvalid(w, r, "verify")
			return
		}
		if err := p.flows.VerifyEmail(r.Context(), token); err != nil {
			if _, ok := isCode(err, web.ErrInvalidToken); ok {
				p.linkInvalid(w, r, "verify")
				return
			}
			p.Fail(w, r, err)
			return
		}
		p.Message(w, r, http.StatusOK, "verify.done.title", "verify.done.body")
	}))
}

// linkInvalid is the one answer to a link that is malformed, unknown,
// used, expired or superseded (the flows do not say which, nor do we).
func (p *Pages) linkInvalid(w http.ResponseWriter, r *http.Request, kind string) {
	if kind == "reset" {
		if p.requests != nil {
			p.MessageLink(w, r, http.StatusBadRequest, Link{Href: ForgotPasswordPath, Text: "link.request_new_link"},
				"link.invalid.title", "link.invalid.reset")
			return
		}
		p.Message(w, r, http.StatusBadRequest, "link.invalid.title", "link.invalid.reset", "link.request_new")
		return
	}
	p.Message(w, r, http.StatusBadRequest, "link.invalid.title", "link.invalid.verify")
}
