package verify

import "errors"

// Sentinel errors wrapped by Verify. Every error Verify returns wraps exactly one of
// them, so a caller can decide with errors.Is; the wrapping message says which check
// failed but never contains the token.
var (
	// ErrMalformed: the token is not a well-formed compact JWS with a JSON header and
	// payload (wrong segment count, JWE, JSON serialization, non-canonical base64url,
	// duplicate or case-variant member names, a claim of the wrong type, too large).
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm: the header alg is not on the configured allowlist (this includes
	// "none" in any spelling) or the key named by kid is bound to another algorithm.
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrType: the header typ is not at+jwt or application/at+jwt (RFC 9068 §4).
	ErrType = errors.New("not an access token")
	// ErrUnknownKey: no cached key of the issuer has the token's kid, even after a refetch.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify with the issuer's key.
	ErrSignature = errors.New("invalid signature")
	// ErrIssuer: iss is missing or not exactly the configured issuer (RFC 9068 §4).
	ErrIssuer = errors.New("wrong issuer")
	// ErrAudience: aud is missing, malformed, or does not contain the configured audience.
	ErrAudience = errors.New("wrong audience")
	// ErrExpired: exp, plus the leeway, is in the past (RFC 7519 §4.1.4).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: nbf or iat, minus the leeway, is in the future (RFC 7519 §4.1.5).
	ErrNotYetValid = errors.New("token not yet valid")
)

// description is the RFC 6750 §3 error_description for a validation error. The texts are
// fixed, so nothing the client sent is echoed back.
func description(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "the access token expired"
	case errors.Is(err, ErrNotYetValid):
		return "the access token is not valid yet"
	case errors.Is(err, ErrAudience):
		return "the access token is not meant for this resource"
	case errors.Is(err, ErrIssuer):
		return "the access token comes from an unexpected issuer"
	case errors.Is(err, ErrSignature):
		return "the access token signature is invalid"
	case errors.Is(err, ErrUnknownKey):
		return "the access token was signed with an unknown key"
	case errors.Is(err, ErrAlgorithm):
		return "the access token algorithm is not accepted"
	case errors.Is(err, ErrType):
		return "the token is not an access token"
	case errors.Is(err, ErrMalformed):
		return "the access token is malformed"
	default:
		return "the access token is invalid"
	}
}
