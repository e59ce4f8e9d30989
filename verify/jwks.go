package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// algorithm describes how one JWS alg (RFC 7518 §3.1) verifies.
type algorithm struct {
	hash  crypto.Hash    // 0 for EdDSA, which signs the input itself
	kty   string         // "RSA", "EC" or "OKP"
	pss   bool           // RSASSA-PSS rather than PKCS#1 v1.5
	curve elliptic.Curve // for EC
}

// algorithms are the asymmetric algorithms Verify knows. HS*, none and everything
// else are absent, so no configuration can allow them.
var algorithms = map[string]algorithm{
	"RS256": {hash: crypto.SHA256, kty: "RSA"},
	"RS384": {hash: crypto.SHA384, kty: "RSA"},
	"RS512": {hash: crypto.SHA512, kty: "RSA"},
	"PS256": {hash: crypto.SHA256, kty: "RSA", pss: true},
	"PS384": {hash: crypto.SHA384, kty: "RSA", pss: true},
	"PS512": {hash: crypto.SHA512, kty: "RSA", pss: true},
	"ES256": {hash: crypto.SHA256, kty: "EC", curve: elliptic.P256()},
	"ES384": {hash: crypto.SHA384, kty: "EC", curve: elliptic.P384()},
	"ES512": {hash: crypto.SHA512, kty: "EC", curve: elliptic.P521()},
	// RFC 8037 §3.1: EdDSA with an OKP key; only Ed25519 is parsed (go-jose refuses
	// Ed448 and the X curves), so a key on another curve never binds.
	"EdDSA": {kty: "OKP"},
}

// DefaultAlgorithms is the allowlist when Config.Algorithms is empty: what a Keyward
// issuer signs with (RS256 by default, ES256 or EdDSA when so configured), so a
// resource server keeps working when its issuer migrates. It is safe because each key
// is bound to exactly one algorithm (bindKey): each of these fits only one key type,
// and a token's alg must be its key's.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// minRSABits is the smallest RSA modulus accepted from a JWKS (KM-01, RFC 7518 §3.3).
const minRSABits = 2048

// key is one parsed public key, bound to exactly one algorithm (RFC 8725 §3.1, RS-03).
type key struct {
	alg string
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// keySet maps kid to key. It is never modified after it is built.
type keySet map[string]*key

// parseJWKS reads a JWK Set document (RFC 7517 §5). Keys that cannot be used are skipped
// rather than fatal (RFC 7517 §5: ignore unknown kty): keys of another type or for
// encryption, keys bound to an algorithm outside allowed, RSA keys under 2048 bits,
// keys without a kid, and kids that occur twice. Only a document that is not a JWK Set
// at all is an error.
func parseJWKS(data []byte, allowed []string) (keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("parse jwks: no keys member")
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(doc.Keys))}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // unknown kty, bad parameters: skip, the other keys still count
		}
		set.Keys = append(set.Keys, k)
	}
	return keysFrom(set, allowed), nil
}

// keysFrom keeps the usable public keys of set, as parseJWKS describes.
func keysFrom(set jose.JSONWebKeySet, allowed []string) keySet {
	ks := make(keySet, len(set.Keys))
	seen := make(map[string]bool, len(set.Keys))
	for i := range set.Keys {
		jwk := &set.Keys[i]
		if jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if seen[jwk.KeyID] {
			delete(ks, jwk.KeyID) // two keys with one kid: trust neither
			continue
		}
		seen[jwk.KeyID] = true
		if k := bindKey(jwk, allowed); k != nil {
			ks[jwk.KeyID] = k
		}
	}
	return ks
}

// bindKey returns jwk's public key bound to one allowed algorithm: the JWK's own alg when
// it has one (and it fits the key type and curve), else the only allowed algorithm that
// fits the key type (and curve). It returns nil when
// there is no such algorithm or the key is too weak.
func bindKey(jwk *jose.JSONWebKey, allowed []string) *key {
	var pub any = jwk.Key
	if !jwk.IsPublic() {
		pub = jwk.Public().Key
	}
	k := &key{}
	kty := ""
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return nil
		}
		k.rsa, kty = p, "RSA"
	case *ecdsa.PublicKey:
		k.ec, kty = p, "EC"
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil
		}
		k.ed, kty = p, "OKP"
	default:
		return nil // oct and the rest are not used here
	}
	if jwk.Algorithm != "" {
		a, ok := algorithms[jwk.Algorithm]
		if !ok || a.kty != kty || !slices.Contains(allowed, jwk.Algorithm) {
			return nil
		}
		if kty == "EC" && a.curve != k.ec.Curve {
			return nil
		}
		k.alg = jwk.Algorithm
		return k
	}
	for _, alg := range allowed {
		a := algorithms[alg]
		if a.kty != kty || (kty == "EC" && a.curve != k.ec.Curve) {
			continue
		}
		if k.alg != "" {
			return nil // more than one fits: a key must have exactly one algorithm
		}
		k.alg = alg
	}
	if k.alg == "" {
		return nil
	}
	return k
}
