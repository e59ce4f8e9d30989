// Package idp is Keyward's authorization server and its assembly: Server,
// Config and New, the routes (Routes, the one place they are listed), the
// shared middleware (request id, security headers, body caps, HTTPS
// enforcement), health, and metrics registration. For now it also holds the
// token endpoint and its grants, client authentication, discovery and the
// JWKS, userinfo, revocation and introspection, and the account and admin
// handlers.
//
// What the handlers share lives below it, and none of it imports idp:
// idp/web (the OAuth 2.0 error model, RFC 6749 §5.2, and its one writer),
// idp/audit, idp/metrics, idp/guard (throttling and rate limits) and
// idp/manage (the user and client operations the CLI shares). It reaches
// the database through the small interfaces it declares (Store) and the
// signing keys through KeySource; cmd/keyward wires the concrete storage.DB
// and keys.Manager into it.
package idp
