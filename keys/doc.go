// Package keys generates, encrypts, rotates and publishes Keyward's signing
// keys (RFC 7517 JWKS) and signs JWS compact tokens (RFC 7515) with the
// active one: RS256, ES256 or EdDSA (Policy.Algorithm; a change migrates like
// a rotation), the compact form built here, the signature from the key's
// crypto.Signer (for RSA keys optionally one Policy.RSASigner makes). A key moves next -> active -> retired -> removed: a next key is
// published for at least the JWKS max-age plus a margin before it signs, and
// a retired key stays published until every token it signed has expired.
//
// Private keys are kept in storage only as AES-256-GCM ciphertext under the
// key-encryption key (KEK), bound to their kid. Decisions about the key set
// are pure functions (advance, promote, revoke) that run inside
// Store.UpdateKeySet, so across replicas exactly one applies each change.
//
// keys reaches storage only through Store and never imports idp or verify.
package keys
