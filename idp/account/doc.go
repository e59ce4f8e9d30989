// Package account is Keyward's self-service API (docs/account.md): what a
// user does for themselves, without an administrator. Today that is
// POST /account/register (register.go) and POST /account/password
// (password.go); e-mail verification, password reset and their pages land
// here too.
//
// It owns those handlers and their answers (ErrInvalidPassword and its
// rules, the one registration body of RR-10), and nothing else. Handlers
// exposes them as func(w, r) error; the assembly (package idp) binds them
// in Server.Routes, the one place routes are listed, so this package never
// registers a route itself.
//
// Everything it needs of the server comes in through Config, as small
// interfaces declared here (STYLE.md §2): access-token validation (Tokens),
// the store (Store), the password hasher and policy, the brute-force
// throttle (Throttle), the audit trail (Recorder), metrics (Metrics) and
// setting a password with the end of the user's sessions (PasswordSetter,
// idp/manage). It must not import idp, idp/oauth or idp/admin, must not
// validate or issue tokens itself, and writes errors only by returning a
// *web.Error for web.Handle to write.
package account
