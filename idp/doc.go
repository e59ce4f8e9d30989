// Package idp is Keyward's authorization server assembled: Server, Config
// and New, the routes (Routes, the one place they are listed, binding the
// handlers of idp/oauth, idp/account and idp/admin), the shared middleware
// (request id, security headers, body caps, HTTPS enforcement), health, and
// metrics registration and exposition. Beside that it keeps only the small
// adapters that hand oauth's access-token validation to the account
// (accountTokens) and admin (Server.adminToken) packages.
//
// The OAuth 2.0 and OpenID Connect protocol lives in idp/oauth, the
// self-service API in idp/account, the admin API in idp/admin. What the
// handlers share lives below them, and none of it imports idp: idp/web (the
// OAuth 2.0 error model, RFC 6749 §5.2, and its one writer), idp/audit,
// idp/metrics, idp/guard (throttling and rate limits) and idp/manage (the
// user and client operations the CLI shares). It reaches the database
// through the small interface it declares (Store) and the signing keys
// through KeySource; cmd/keyward wires the concrete storage.DB and
// keys.Manager into it.
package idp
