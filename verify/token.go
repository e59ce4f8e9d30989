package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// b64 decodes base64url strictly (RFC 7515 §2, AC-J15): no padding and no non-zero
// trailing bits. Characters outside the alphabet, including the \r and \n that
// encoding/base64 would skip, are refused earlier by splitCompact.
var b64 = base64.RawURLEncoding.Strict()

// tokenChars classifies token bytes: 1 for the base64url alphabet, 2 for '.', 0 else.
var tokenChars = func() (t [256]byte) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = 1
	}
	t['.'] = 2
	return t
}()

// compact is a compact-serialization JWS split into its parts (RFC 7515 §7.1).
type compact struct {
	signingInput string // header "." payload, as sent
	header       string // base64url
	payload      string // base64url
	signature    string // base64url
}

// splitCompact checks the shape of token before anything is decoded (RS-12, RS-13):
// at most maxSize bytes, exactly three non-empty segments, only base64url characters.
// That turns away JWE (five segments), JSON serialization, whitespace and padding.
func splitCompact(token string, maxSize int) (compact, error) {
	if len(token) > maxSize {
		return compact{}, fmt.Errorf("verify token: %w: longer than %d bytes", ErrMalformed, maxSize)
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		switch tokenChars[token[i]] {
		case 1:
		case 2:
			dots++
		default:
			return compact{}, fmt.Errorf("verify token: %w: character outside base64url", ErrMalformed)
		}
	}
	if dots != 2 {
		return compact{}, fmt.Errorf("verify token: %w: %d segments, want 3", ErrMalformed, dots+1)
	}
	i := strings.IndexByte(token, '.')
	j := i + 1 + strings.IndexByte(token[i+1:], '.')
	c := compact{signingInput: token[:j], header: token[:i], payload: token[i+1 : j], signature: token[j+1:]}
	if c.header == "" || c.payload == "" || c.signature == "" {
		return compact{}, fmt.Errorf("verify token: %w: empty segment", ErrMalformed)
	}
	return c, nil
}

// decodeSegment decodes one base64url segment strictly.
func decodeSegment(s, what string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w: %s is not canonical base64url", ErrMalformed, what)
	}
	return b, nil
}

// header holds the JOSE header parameters Verify acts on. jku, x5u, jwk and x5c are not
// read at all (RS-04): keys come only from the issuer's JWKS.
type header struct {
	alg, typ, kid string
}

// jweParams are header parameters that only a JWE (or a JWE key-management algorithm)
// carries (RFC 7516 §4.1, RFC 7518 §4.6-4.8). Their presence means the token is not a
// JWS, so nothing is decompressed and no PBES2 iteration runs (AC-J19).
var jweParams = []string{"enc", "zip", "p2c", "p2s", "epk", "apu", "apv", "iv", "tag"}

// parseHeader decodes and checks the JOSE header: strict JSON, no JWE parameters, no
// crit, an allowed alg, typ at+jwt and a string kid.
func parseHeader(seg string, allowed []string) (header, error) {
	raw, err := decodeSegment(seg, "header")
	if err != nil {
		return header{}, err
	}
	m, err := decodeObject(raw)
	if err != nil {
		return header{}, fmt.Errorf("verify token: %w: header: %w", ErrMalformed, err)
	}
	for _, p := range jweParams {
		if _, ok := m[p]; ok {
			return header{}, fmt.Errorf("verify token: %w: header has jwe parameter %q", ErrMalformed, p)
		}
	}
	// RFC 7515 §4.1.11: an extension listed in crit that is not understood makes the JWS
	// invalid; this package understands none, and an empty or ill-typed crit is invalid
	// too (RS-10, AC-J10).
	if _, ok := m["crit"]; ok {
		return header{}, fmt.Errorf("verify token: %w: crit header is not supported", ErrMalformed)
	}
	var h header
	alg, ok := m["alg"].(string)
	if !ok || !slices.Contains(allowed, alg) {
		return header{}, fmt.Errorf("verify token: %w", ErrAlgorithm)
	}
	h.alg = alg
	typ, _ := m["typ"].(string)
	if !isAccessTokenType(typ) {
		return header{}, fmt.Errorf("verify token: %w: typ must be at+jwt", ErrType)
	}
	h.typ = typ
	kid, ok := m["kid"].(string)
	if !ok || kid == "" {
		return header{}, fmt.Errorf("verify token: %w: kid missing or not a string", ErrUnknownKey)
	}
	h.kid = kid
	return h, nil
}

// isAccessTokenType reports whether typ names the RFC 9068 media type, "at+jwt" or
// "application/at+jwt", compared case-insensitively (RFC 9068 §4, RS-01). Parameters,
// spaces and other types are refused.
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// verifySignature checks sig over signingInput with k, which is bound to alg (RS-03).
func verifySignature(k *key, alg, signingInput string, sig []byte) error {
	if k.alg != alg {
		return fmt.Errorf("verify token: %w: key is bound to another algorithm", ErrAlgorithm)
	}
	a := algorithms[alg]
	var digest []byte
	switch {
	case a.hash == 0: // EdDSA signs the input itself
	case a.hash == crypto.SHA256: // the common case, without a hash.Hash allocation
		d := sha256.Sum256([]byte(signingInput))
		digest = d[:]
	default:
		h := a.hash.New()
		h.Write([]byte(signingInput))
		digest = h.Sum(nil)
	}
	var ok bool
	switch {
	case k.rsa != nil && a.pss:
		ok = rsa.VerifyPSS(k.rsa, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case k.rsa != nil:
		ok = rsa.VerifyPKCS1v15(k.rsa, a.hash, digest, sig) == nil
	case k.ec != nil:
		// RFC 7518 §3.4: R || S, each exactly the curve's byte size.
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			ok = ecdsa.Verify(k.ec, digest, r, s) // refuses r or s of zero (CVE-2022-21449)
		}
	case k.ed != nil:
		// RFC 8037 §3.1: the 64-byte Ed25519 signature of the signing input.
		ok = len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, []byte(signingInput), sig)
	}
	if !ok {
		return fmt.Errorf("verify token: %w", ErrSignature)
	}
	return nil
}
