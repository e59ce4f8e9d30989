package account

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// The account links (issue 14, docs/account.md): POST
// /account/password/forgot mails a reset link, POST /account/password/reset
// and POST /account/verify-email consume one, POST /account/email changes
// the signed-in user's address. ResetPassword, VerifyEmail and
// CheckResetToken are also what the pages behind the links (idp/ui) call.

// ErrCodeInvalidToken is the one code of a link that cannot be used:
// unknown, used, superseded, revoked or expired alike.
const ErrCodeInvalidToken = "invalid_token"

// invalidLink is the answer to every link that cannot be used.
func invalidLink() *web.Error {
	return &web.Error{Code: ErrCodeInvalidToken, Description: "the link is invalid or has expired; ask for a new one",
		Status: http.StatusBadRequest}
}

// forgotAccepted is the one answer of a forgot-password request that got
// past input checks and the per-IP limit (RR-01).
var forgotAccepted = struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}{
	Status:  "accepted",
	Message: "if an account with a verified e-mail address matches, a link to set a new password has been sent to that address",
}

// ForgotMinDuration is how long a forgot-password request takes at least
// before its 202 (RR-01): the work differs with the account (a link is
// stored and mailed only for a real one with a verified address), and the
// wait hides it. The work itself is kept alike too (one counter write, one
// lookup, one audit row, one token generated and hashed either way).
const ForgotMinDuration = 100 * time.Millisecond

// maxLinkToken caps a token read from a request: real ones are 48 bytes.
const maxLinkToken = 256

// Forgot serves POST /account/password/forgot {"username"} or {"email"}:
// RequestPasswordReset in the language of Accept-Language, answered 202.
func (h *Handlers) Forgot(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	in, err := web.DecodeStrict(r, "username", "email")
	if err != nil {
		return err
	}
	if err := h.RequestPasswordReset(r.Context(), in["username"], in["email"], Lang(r.Header.Get("Accept-Language"))); err != nil {
		return err
	}
	web.NoStore(w)
	web.WriteJSON(w, http.StatusAccepted, forgotAccepted)
	return nil
}

// RequestPasswordReset asks for a reset link for the account named by
// username or by email (exactly one; else 400). It counts the request per
// IP (429 past the limit) and per account (past that, nothing is mailed),
// looks the account up, and mails a link in lang when it exists, is enabled
// and has a verified address. Whatever it finds, it returns nil after
// ForgotMinDuration, and nothing on the account changes (RR-03): no
// lockout, no failed login (RR-09). The forgot page (idp/ui) calls it too.
func (h *Handlers) RequestPasswordReset(ctx context.Context, username, email, lang string) error {
	start := time.Now()
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	if (username == "") == (email == "") {
		return web.BadRequest("give either username or email")
	}
	key := "u:" + username
	var err error
	if email != "" {
		if email, err = manage.NormalizeEmail(email); err != nil {
			return web.BadRequest("the email must be one bare address such as alice@example.com")
		}
		key = "e:" + strings.ToLower(email)
	} else if _, err := manage.NormalizeUsername(username); err != nil {
		return web.BadRequest("the username must be 1 to 64 characters without spaces or control characters")
	}
	mailOK, err := h.cfg.Throttle.CountForgot(ctx, key, web.ClientIP(ctx))
	if err != nil {
		return err
	}
	var u storage.User
	if email != "" {
		u, err = h.cfg.Store.UserByVerifiedEmail(ctx, email)
	} else {
		u, err = h.cfg.Store.UserByUsername(ctx, username)
	}
	reason := ""
	switch {
	case errors.Is(err, storage.ErrNotFound):
		reason = "unknown_account"
	case err != nil:
		return err
	case u.Disabled:
		reason = "disabled"
	case u.Email == "" || !u.EmailVerified:
		reason = "email_unverified"
	case !mailOK:
		reason = "rate_limited"
	}
	by := audit.Event{Actor: ActorSelf, UserAgent: web.UserAgent(ctx)}
	ev := by
	ev.Type, ev.Subject, ev.Reason = audit.PasswordResetRequested, u.ID, reason
	h.cfg.Audit.Record(ctx, ev)
	if reason == "" {
		if err := h.cfg.Links.SendReset(manage.WithLang(ctx, lang), by, u); err != nil {
			return err
		}
	} else {
		manage.NewAccountToken(manage.ResetTokenPrefix) // the work a real link costs
	}
	sleepUntil(ctx, start.Add(ForgotMinDuration))
	return nil
}

// sleepUntil waits until t by the wall clock, or until ctx ends (the
// client left; the answer then reaches no one).
func sleepUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// ResetPasswordAPI serves POST /account/password/reset {"token",
// "new_password"}: ResetPassword, answered 204.
func (h *Handlers) ResetPasswordAPI(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	in, err := web.DecodeStrict(r, "token", "new_password")
	if err != nil {
		return err
	}
	if in["token"] == "" || in["new_password"] == "" {
		return web.BadRequest("token and new_password are required")
	}
	if err := h.ResetPassword(withLang(r.Context(), r), in["token"], in["new_password"]); err != nil {
		return err
	}
	web.NoStore(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ResetPassword consumes a kwpr_ token and sets newPassword: the password
// policy (the token is not used up by a password it refuses), every
// session of the user ended, the lockout counters cleared (BF-04), a
// notice mailed, each step audited. Links are throttled per client IP
// (web.ClientIP(ctx)) like logins: past the limit of refused links, 429
// (RR-07). Errors are *web.Error: invalid_token (400), invalid_password
// (400, with Rule), 429; anything else is the server's.
func (h *Handlers) ResetPassword(ctx context.Context, token, newPassword string) error {
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	ip := web.ClientIP(ctx)
	by := audit.Event{Actor: ActorSelf}
	at, err := h.checkLink(ctx, token, manage.ResetTokenPrefix, storage.TokenReset)
	if err != nil {
		return err
	}
	u, err := h.cfg.Store.User(ctx, at.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return h.linkRefused(ctx, ip, at.UserID, "unknown")
	}
	if err != nil {
		return err
	}
	if err := h.checkNewPassword(newPassword, u.Username, u.Email); err != nil {
		return err
	}
	hash, err := h.cfg.Passwords.Hash(ctx, newPassword)
	if err != nil {
		return guard.HashingError(err)
	}
	_, err = h.cfg.Links.ResetPassword(ctx, by, token, hash)
	var se *manage.SessionsError
	switch {
	case errors.Is(err, manage.ErrInvalidAccountToken):
		// Used by a concurrent request since the check: already audited.
		h.countLinkFailure(ctx, ip)
		return invalidLink()
	case errors.As(err, &se):
		h.log.ErrorContext(ctx, "password reset, but sessions or links not ended", "sub", u.ID, "err", se.Err)
	case err != nil:
		return err
	}
	return nil
}

// CheckResetToken reports whether token is a reset link usable now,
// without consuming it (the page's GET). Refusals count against the IP
// like a failed use and are the same *web.Error as ResetPassword's.
func (h *Handlers) CheckResetToken(ctx context.Context, token string) error {
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	_, err := h.checkLink(ctx, token, manage.ResetTokenPrefix, storage.TokenReset)
	return err
}

// checkLink applies the per-IP link throttle and returns the live token of
// kind, or the refusal (counted and audited).
func (h *Handlers) checkLink(ctx context.Context, token, prefix, kind string) (storage.AccountToken, error) {
	ip := web.ClientIP(ctx)
	if err := h.cfg.Throttle.CheckLink(ctx, ip); err != nil {
		return storage.AccountToken{}, err
	}
	if !strings.HasPrefix(token, prefix) || len(token) > maxLinkToken {
		return storage.AccountToken{}, h.linkRefused(ctx, ip, "", "unknown")
	}
	at, err := h.cfg.Store.CheckAccountToken(ctx, kind, manage.HashAccountToken(token), h.now())
	if reason := storage.TokenReason(err); reason != "" {
		return storage.AccountToken{}, h.linkRefused(ctx, ip, at.UserID, reason)
	}
	return at, err
}

// linkRefused counts and audits a refused reset link and returns the answer.
func (h *Handlers) linkRefused(ctx context.Context, ip, subject, reason string) error {
	h.countLinkFailure(ctx, ip)
	h.cfg.Links.ResetFailed(ctx, audit.Event{Actor: ActorSelf}, subject, reason)
	return invalidLink()
}

func (h *Handlers) countLinkFailure(ctx context.Context, ip string) {
	if err := h.cfg.Throttle.LinkFailed(ctx, ip); err != nil {
		h.log.ErrorContext(ctx, "link throttle: record failure", "err", err)
	}
}

// VerifyEmailAPI serves POST /account/verify-email {"token"} (JSON):
// VerifyEmail, answered 204.
func (h *Handlers) VerifyEmailAPI(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Links == nil {
		return errAccountsOff()
	}
	in, err := web.DecodeStrict(r, "token")
	if err != nil {
		return err
	}
	if in["token"] == "" {
		return web.BadRequest("token is required")
	}
	if err := h.VerifyEmail(withLang(r.Context(), r), in["token"]); err != nil {
		return err
	}
	web.NoStore(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// VerifyEmail consumes a verification token (prefix kwev_) and marks its
// address verified; a pending address becomes the account's, and the old
// one is told. Throttled per IP like ResetPassword; errors are
// invalid_token (400) and 429.
func (h *Handlers) VerifyEmail(ctx context.Context, token string) error {
	if h.cfg.Links == nil {
		return errAccountsOff()
	}
	ip := web.ClientIP(ctx)
	if err := h.cfg.Throttle.CheckLink(ctx, ip); err != nil {
		return err
	}
	if !strings.HasPrefix(token, manage.VerifyTokenPrefix) || len(token) > maxLinkToken {
		token = manage.VerifyTokenPrefix // unknown: ConfirmEmail audits it so
	}
	_, err := h.cfg.Links.ConfirmEmail(ctx, audit.Event{Actor: ActorSelf}, token)
	if errors.Is(err, manage.ErrInvalidAccountToken) {
		h.countLinkFailure(ctx, ip)
		return invalidLink()
	}
	return err
}

// emailChanged is the answer of POST /account/email.
type emailChanged struct {
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	EmailPending  string `json:"email_pending,omitempty"`
}

// ChangeEmail serves POST /account/email {"email", "current_password"}
// with a user's access token: the signed-in user changes their address
// (RR-13: the current password is required, checked behind the login
// throttle). A verified address stays the account's until the new one is
// verified through the link mailed to it; the answer, 202, shows the
// pending address.
func (h *Handlers) ChangeEmail(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if h.cfg.Passwords == nil || h.cfg.Links == nil {
		return errAccountsOff()
	}
	clientID, u, err := h.accountUser(w, r)
	if err != nil {
		return err
	}
	in, err := web.DecodeStrict(r, "email", "current_password")
	if err != nil {
		return err
	}
	if in["email"] == "" || in["current_password"] == "" {
		return web.BadRequest("email and current_password are required")
	}
	if len(in["current_password"]) > password.MaxBytes {
		return web.BadRequest("current_password is too long")
	}
	email, err := manage.NormalizeEmail(in["email"])
	if err != nil {
		return web.BadRequest("the email must be one bare address such as alice@example.com, with an ASCII (punycode) domain")
	}
	if err := h.verifyCurrent(ctx, u, clientID, in["current_password"]); err != nil {
		return err
	}
	by := audit.Event{Actor: u.ID, ClientID: clientID, UserAgent: r.UserAgent()}
	u, err = h.cfg.Links.SetEmail(withLang(ctx, r), by, u.ID, email)
	if errors.Is(err, storage.ErrNotFound) {
		return web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized)
	}
	if err != nil {
		return err
	}
	web.NoStore(w)
	web.WriteJSON(w, http.StatusAccepted, emailChanged{Email: u.Email, EmailVerified: u.EmailVerified, EmailPending: u.EmailPending})
	return nil
}

// withLang returns ctx carrying the mail language r's Accept-Language
// prefers: "zh-CN" for any Chinese before any English, else "en".
func withLang(ctx context.Context, r *http.Request) context.Context {
	return manage.WithLang(ctx, Lang(r.Header.Get("Accept-Language")))
}

// Lang is the mail language of an Accept-Language value: "zh-CN" when a
// Chinese tag comes before any English one, else "en". Weights are not
// read; browsers list languages in order of preference.
func Lang(acceptLanguage string) string {
	for tag := range strings.SplitSeq(acceptLanguage, ",") {
		tag, _, _ = strings.Cut(strings.TrimSpace(tag), ";")
		tag = strings.ToLower(tag)
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			return "zh-CN"
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return "en"
		}
	}
	return "en"
}
