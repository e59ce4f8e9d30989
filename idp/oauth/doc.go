// Package oauth is Keyward's OAuth 2.0 and OpenID Connect protocol
// (docs/tokens.md): the token endpoint and its form parsing (token.go), the
// grants (grant_password.go, grant_refresh.go, grant_client_credentials.go),
// client authentication (clientauth.go), token claims, signing and
// access-token validation (tokens_jwt.go), revocation (revoke.go),
// introspection (introspect.go), userinfo (userinfo.go), discovery
// (discovery.go), the JWKS handler (jwks.go) and the scope rules (scope.go);
// and the browser flow of issue 15 (docs/authorize.md): the authorization
// endpoint and its resume (authorize.go), the authorization_code grant and
// form_post (grant_code.go), RP-initiated logout (logout.go), and
// AuthenticatePassword, the password check the login page shares with the
// password grant (grant_password.go). The pages and login sessions are
// idp/login's, reached only through the Interaction interface declared
// here; this package renders no page but the form_post one.
//
// Provider exposes the handlers as func(w, r) error (Token, Revoke,
// Introspect, Userinfo, WellKnown, JWKS) and, for the browser endpoints
// whose errors are pages or redirects, as plain handlers (Authorize,
// Resume, Logout); the assembly (package idp) binds
// them in Server.Routes, the one place routes are listed, so this package
// never registers a route itself. ValidateAccessToken and TokenUser are the
// one access-token validation; idp hands them to the account and admin
// APIs through their own interfaces.
//
// Everything it needs of the server comes in through Config, as small
// interfaces declared here (STYLE.md §2): the store (Store), the signing
// keys (Keys), the password hasher (PasswordHasher), the brute-force
// throttle (Throttle), the per-caller rate limits (Callers), the audit
// trail (Recorder) and metrics (Metrics). It must not import idp,
// idp/account or idp/admin, and writes errors only by returning a
// *web.Error for web.Handle to write (RFC 6750 Bearer errors through
// web.BearerError).
package oauth
