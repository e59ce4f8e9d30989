// Package account is Keyward's self-service API (docs/account.md): what a
// user does for themselves, without an administrator: POST
// /account/register (register.go), POST /account/password (password.go),
// and the mail flows (links.go): POST /account/password/forgot, POST
// /account/password/reset, POST /account/verify-email (JSON) and POST
// /account/email. Handlers also exposes ResetPassword, VerifyEmail and
// CheckResetToken, which the pages behind the mailed links (idp/ui) call.
//
// It owns those handlers and their answers (ErrInvalidPassword and its
// rules, the one registration body of RR-10, the one forgot-password body
// and its minimum duration of RR-01, the one invalid_token of a link), and
// nothing else. Issuing, mailing and consuming links is manage.Ops's
// (Links), so the admin API and the CLI share it; this package never
// builds a link or sends mail itself. Handlers
// exposes them as func(w, r) error; the assembly (package idp) binds them
// in Server.Routes, the one place routes are listed, so this package never
// registers a route itself.
//
// Everything it needs of the server comes in through Config, as small
// interfaces declared here (STYLE.md §2): access-token validation (Tokens),
// the store (Store), the password hasher and policy, the brute-force
// throttle (Throttle), the audit trail (Recorder), metrics (Metrics) and
// setting a password with the end of the user's sessions (PasswordSetter,
// idp/manage) and the account links (Links, idp/manage). It must not import idp, idp/oauth or idp/admin, must not
// validate or issue tokens itself, and writes errors only by returning a
// *web.Error for web.Handle to write.
package account
