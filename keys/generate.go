package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
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

// The JWS algorithms keys are generated for (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, the default
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256
	AlgEdDSA = "EdDSA" // Ed25519
)

// Algorithms lists the algorithms Policy.Algorithm accepts.
var Algorithms = []string{AlgRS256, AlgES256, AlgEdDSA}

// publicJWK is a public key as published (RFC 7517 §4; RFC 7518 §6.2.1,
// §6.3.1; RFC 8037 §2): RSA kty,use,alg,kid,n,e; EC kty,use,alg,kid,crv,x,y;
// OKP kty,use,alg,kid,crv,x. These members and no others, so no private
// part can slip into the JWKS.
type publicJWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// generate makes a new key for p's algorithm (and, for RSA, key size) and
// returns its record, the private key sealed under kek. Its state and times
// are left to the caller.
func generate(p Policy, kek []byte) (storage.Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch p.Algorithm {
	case AlgRS256, "":
		priv, err = rsa.GenerateKey(rand.Reader, p.KeySize)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return storage.Key{}, fmt.Errorf("generate key: unknown algorithm %q", p.Algorithm)
	}
	if err != nil {
		return storage.Key{}, fmt.Errorf("generate %s key: %w", p.Algorithm, err)
	}
	return record(priv, kek)
}

// algOf names the algorithm a key of pub's type signs with, "" if none.
func algOf(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return AlgRS256
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return AlgES256
		}
	case ed25519.PublicKey:
		return AlgEdDSA
	}
	return ""
}

// record builds the stored form of priv: kid, alg, public JWK, sealed PKCS #8.
func record(priv crypto.Signer, kek []byte) (storage.Key, error) {
	pub := priv.Public()
	alg := algOf(pub)
	if alg == "" {
		return storage.Key{}, fmt.Errorf("record key: unsupported key type %T", pub)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return storage.Key{}, err
	}
	jwk, err := json.Marshal(toJWK(pub, kid))
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
	return storage.Key{KID: kid, Alg: alg, PublicJWK: string(jwk), PrivateKey: sealed}, nil
}

// thumbprint is the RFC 7638 SHA-256 JWK thumbprint of pub, base64url: the kid.
func thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// toJWK is pub's public JWK, bound to its one algorithm.
func toJWK(pub crypto.PublicKey, kid string) publicJWK {
	b64 := base64.RawURLEncoding.EncodeToString
	j := publicJWK{Use: "sig", Alg: algOf(pub), Kid: kid}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		j.Kty, j.N, j.E = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := p.Bytes() // 0x04 || X || Y, each 32 bytes on P-256 (RFC 7518 §6.2.1.2)
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(p)
	}
	return j
}

// parsePublic reads a stored key's public JWK and checks it against the
// row's alg: RS256 an RSA key of at least 2048 bits, ES256 a point on P-256,
// EdDSA an Ed25519 key; and that its thumbprint is the row's kid.
func parsePublic(k storage.Key) (crypto.PublicKey, error) {
	var j publicJWK
	if err := json.Unmarshal([]byte(k.PublicJWK), &j); err != nil {
		return nil, fmt.Errorf("key %s: public JWK: %w", k.KID, err)
	}
	if j.Alg != "" && j.Alg != k.Alg {
		return nil, fmt.Errorf("key %s: public JWK's alg %q is not the row's %q", k.KID, j.Alg, k.Alg)
	}
	dec := base64.RawURLEncoding.Strict().DecodeString
	var pub crypto.PublicKey
	switch {
	case k.Alg == AlgRS256 && j.Kty == "RSA":
		n, err1 := dec(j.N)
		e, err2 := dec(j.E)
		if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("key %s: public JWK has a malformed n or e", k.KID)
		}
		p := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if p.N.BitLen() < 2048 {
			return nil, fmt.Errorf("key %s: RSA modulus of %d bits, want at least 2048", k.KID, p.N.BitLen())
		}
		pub = p
	case k.Alg == AlgES256 && j.Kty == "EC" && j.Crv == "P-256":
		x, err1 := dec(j.X)
		y, err2 := dec(j.Y)
		if err := errors.Join(err1, err2); err != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("key %s: public JWK has a malformed x or y", k.KID)
		}
		// ParseUncompressedPublicKey refuses a point that is not on the curve.
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("key %s: not a P-256 public key: %w", k.KID, err)
		}
		pub = p
	case k.Alg == AlgEdDSA && j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := dec(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %s: public JWK has a malformed x", k.KID)
		}
		pub = ed25519.PublicKey(x)
	default:
		return nil, fmt.Errorf("key %s: unsupported key: kty %q crv %q alg %q", k.KID, j.Kty, j.Crv, k.Alg)
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
// belongs to pub (of the type parsePublic returned for the row's alg).
func decrypt(k storage.Key, pub crypto.PublicKey, kek []byte) (crypto.Signer, error) {
	der, err := open(kek, k.KID, k.PrivateKey)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: parse private key: %w", k.KID, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: private key of type %T cannot sign", k.KID, parsed)
	}
	eq, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(pub) || algOf(priv.Public()) != k.Alg {
		return nil, fmt.Errorf("key %s: private key does not match the public key", k.KID)
	}
	return priv, nil
}
