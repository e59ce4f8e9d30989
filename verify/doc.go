// Package verify is what a resource server imports to accept Keyward access tokens
// (RFC 9068 JWT profile, RFC 7515 compact JWS) without calling Keyward per request.
//
// It owns three things: a JWKS cache that discovers the issuer's jwks_uri (OIDC
// Discovery 1.0 §4, RFC 8414 §3), refreshes by Cache-Control and ETag, refetches on an
// unknown kid at most once per cooldown and keeps serving cached keys while the issuer
// is unreachable; the token checks, which fail closed (algorithm allowlist from
// configuration only, key bound to one algorithm, typ at+jwt, exact iss, aud, exp, nbf,
// iat, strict base64url and strict JSON without duplicate or case-variant member names);
// and net/http middleware that answers with RFC 6750 §3 challenges.
//
// It stays away from everything else: it imports nothing of Keyward, never fetches a
// key named by the token (jku, x5u, jwk and x5c are ignored), never logs and never puts
// a token into an error message. Errors are returned, wrapping the sentinels below so a
// caller can tell them apart with errors.Is.
package verify
