package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage"
)

// algRS256 is the one algorithm keys are generated for (RFC 7518 §3.3).
const algRS256 = "RS256"

// publicJWK is a public RSA key as published (RFC 7517 §4, RFC 7518 §6.3.1):
// these members and no others, so no private part can slip into the JWKS.
type publicJWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// generate makes a new RSA key of bits bits and returns its record, the
// private key sealed under kek. Its state and times are left to the caller.
func generate(bits int, kek []byte) (storage.Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return storage.Key{}, fmt.Errorf("generate RSA key: %w", err)
	}
	return record(priv, kek)
}

// record builds the stored form of priv: kid, public JWK, sealed PKCS #8.
func record(priv *rsa.PrivateKey, kek []byte) (storage.Key, error) {
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return storage.Key{}, err
	}
	jwk, err := json.Marshal(toJWK(&priv.PublicKey, kid))
	if err != nil {
		return storage.Key{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.Key{}, fmt.Errorf("encode private key: %w", err)
	}
	sealed, err := seal(kek, kid, der)
	clear(der)
	if err != nil {
		return storage.Key{}, err
	}
	return storage.Key{KID: kid, Alg: algRS256, PublicJWK: string(jwk), PrivateKey: sealed}, nil
}

// thumbprint is the RFC 7638 SHA-256 JWK thumbprint of pub, base64url: the kid.
func thumbprint(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func toJWK(pub *rsa.PublicKey, kid string) publicJWK {
	return publicJWK{
		Kty: "RSA", Use: "sig", Alg: algRS256, Kid: kid,
		N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// parsePublic reads a stored key's public JWK and checks that it is an RS256
// RSA key of at least 2048 bits whose thumbprint is the row's kid.
func parsePublic(k storage.Key) (*rsa.PublicKey, error) {
	var j publicJWK
	if err := json.Unmarshal([]byte(k.PublicJWK), &j); err != nil {
		return nil, fmt.Errorf("key %s: public JWK: %w", k.KID, err)
	}
	if j.Kty != "RSA" || k.Alg != algRS256 {
		return nil, fmt.Errorf("key %s: want an RSA key for RS256, have kty %q alg %q", k.KID, j.Kty, k.Alg)
	}
	n, err1 := base64.RawURLEncoding.DecodeString(j.N)
	e, err2 := base64.RawURLEncoding.DecodeString(j.E)
	if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("key %s: public JWK has a malformed n or e", k.KID)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("key %s: RSA modulus of %d bits, want at least 2048", k.KID, pub.N.BitLen())
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	if kid != k.KID {
		return nil, fmt.Errorf("key %s: public key's thumbprint is %s", k.KID, kid)
	}
	return pub, nil
}

// decrypt opens a stored key's private part under kek and checks that it
// belongs to pub.
func decrypt(k storage.Key, pub *rsa.PublicKey, kek []byte) (*rsa.PrivateKey, error) {
	der, err := open(kek, k.KID, k.PrivateKey)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: parse private key: %w", k.KID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("key %s: private key does not match the public key", k.KID)
	}
	return priv, nil
}
