// Package login owns the browser side of signing in (issue 15,
// docs/login.md): login sessions and their cookie, the login, TOTP
// challenge, consent, logout-confirm and signed-out pages, TOTP enrolment
// at /account/totp with single-use recovery codes, remembered consents,
// and the admin API's handlers for a user's login sessions, consents and
// TOTP.
//
// It implements oauth.Interaction (Session, ConsentGiven, ErrorPage,
// EndSession) for the authorization endpoint, and declares what it needs
// of the rest as small interfaces: Passwords (*oauth.Provider checks a
// password exactly as the password grant does), AuthRequests and Store
// (*storage.DB), Throttle (*guard.Throttler), Recorder (*audit.Auditor).
// It renders every page through idp/ui (templates and catalog entries
// live there) and registers no route: the assembly binds Handler's
// methods.
//
// It must not import idp, idp/oauth, idp/account or idp/admin; it must
// never log or record a password, a TOTP secret or code, a recovery code
// or a cookie value; and it must not change anything on a GET except
// starting a TOTP enrolment for a signed-in user.
package login
