// Package idp is Keyward's authorization server: HTTP routing (gorilla/mux),
// the token endpoint and its grants, client authentication, discovery and the
// JWKS, userinfo, revocation and introspection, the account and admin APIs,
// and the OAuth 2.0 error model (RFC 6749 §5.2), written in one place:
// errors.go.
//
// It reaches the database through the small interfaces it declares (Store)
// and the signing keys through KeySource; cmd/keyward wires the concrete
// storage.DB and keys.Manager into it.
package idp
