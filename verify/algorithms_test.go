package verify_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/verify"
)

// algKeys are the extra keys of the per-algorithm tests: the issuer's Ed25519 key d1, a
// second issuer EC key e2 and Ed25519 key d2 published without alg, and the attacker's
// keys of each algorithm.
type algKeys struct {
	d1, d2, dA ed25519.PrivateKey
	e2, eA     *ecdsa.PrivateKey
	p384       *ecdsa.PrivateKey
}

var testAlgKeys = sync.OnceValue(func() algKeys {
	var k algKeys
	for _, d := range []*ed25519.PrivateKey{&k.d1, &k.d2, &k.dA} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		*d = priv
	}
	for _, e := range []**ecdsa.PrivateKey{&k.e2, &k.eA} {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		*e = priv
	}
	var err error
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// eddsa signs header.payload with Ed25519 (RFC 8037 §3.1).
func eddsa(k ed25519.PrivateKey, header, payload string) string {
	in := signingInput(header, payload)
	return in + "." + b64(ed25519.Sign(k, []byte(in)))
}

// es256DER signs header.payload with ECDSA P-256 but keeps the ASN.1 DER signature,
// which RFC 7518 §3.4 does not allow.
func es256DER(t testing.TB, k *ecdsa.PrivateKey, header, payload string) string {
	t.Helper()
	in := signingInput(header, payload)
	d := sha256.Sum256([]byte(in))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

// publishRaw publishes keys plus raw JWK texts that jose.JSONWebKey cannot write.
func (is *issuer) publishRaw(t testing.TB, keys []jwk, raw ...string) {
	t.Helper()
	var docs []string
	for _, k := range keys {
		b, err := json.Marshal(jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	is.setJWKS([]byte(`{"keys":[` + strings.Join(append(docs, raw...), ",") + `]}`))
}

// TestAlgorithmsForgery: an issuer publishing RS256, ES256 and EdDSA keys (some bound by
// alg, some only by kty) and a verifier with the default allowlist. Each algorithm's real
// tokens are accepted, and for every algorithm the forgeries fail: alg none, the alg of
// another key, HS256 keyed with the public key, ES256 with a DER signature, a signature by
// another key of the same algorithm, a kid of one algorithm with a header of another, and
// keys on a wrong curve.
func TestAlgorithmsForgery(t *testing.T) {
	ak := testAlgKeys()
	is := newIssuer(t)
	x25519 := b64(make([]byte, 32))
	is.publishRaw(t, []jwk{
		{&rsaK1.PublicKey, "k1", "RS256"},
		{&ecE1.PublicKey, "e1", "ES256"},
		{ak.d1.Public(), "d1", "EdDSA"},
		{&rsaK2.PublicKey, "k2", ""}, // bound by kty: RS256
		{&ak.e2.PublicKey, "e2", ""}, // bound by kty and curve: ES256
		{ak.d2.Public(), "d2", ""},   // bound by kty: EdDSA
		{&ak.p384.PublicKey, "p384", "ES256"},
		{&ak.p384.PublicKey, "p384-noalg", ""},
	},
		`{"kty":"OKP","crv":"X25519","x":"`+x25519+`","kid":"x1","alg":"EdDSA","use":"sig"}`,
		`{"kty":"OKP","crv":"Ed448","x":"`+b64(make([]byte, 57))+`","kid":"ed448","alg":"EdDSA","use":"sig"}`,
		`{"kty":"EC","crv":"P-256","x":"`+b64(ecE1.PublicKey.X.FillBytes(make([]byte, 32)))+`","y":"`+
			b64(ecE1.PublicKey.Y.FillBytes(make([]byte, 32)))+`","kid":"ec-as-eddsa","alg":"EdDSA","use":"sig"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"`+b64(ak.d1.Public().(ed25519.PublicKey))+`","kid":"okp-as-es256","alg":"ES256","use":"sig"}`,
	)
	cfg := is.config(newClock()) // the default allowlist
	v := newVerifier(t, is, cfg)
	P := obj(basePayload(is.srv.URL)...)
	hdr := func(alg, kid string) string {
		return obj(with(baseHeader(), member{"alg", str(alg)}, member{"kid", str(kid)})...)
	}
	spki := func(pub any) []byte {
		b, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jwkText := func(pub any, kid, alg string) []byte {
		b, _ := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
		return b
	}
	ecRaw, _ := ecE1.PublicKey.Bytes()
	realES := es256(t, ecE1, hdr("ES256", "e1"), P)
	realEd := eddsa(ak.d1, hdr("EdDSA", "d1"), P)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"RS256 by k1", rs256(t, rsaK1, hdr("RS256", "k1"), P), nil},
		{"ES256 by e1", realES, nil},
		{"EdDSA by d1", realEd, nil},
		{"RS256 by k2, bound by kty", rs256(t, rsaK2, hdr("RS256", "k2"), P), nil},
		{"ES256 by e2, bound by kty", es256(t, ak.e2, hdr("ES256", "e2"), P), nil},
		{"EdDSA by d2, bound by kty", eddsa(ak.d2, hdr("EdDSA", "d2"), P), nil},

		// alg none against each algorithm's key.
		{"none on the ES256 key", signingInput(hdr("none", "e1"), P) + "." + strings.Split(realES, ".")[2], verify.ErrAlgorithm},
		{"none on the EdDSA key", signingInput(hdr("none", "d1"), P) + "." + strings.Split(realEd, ".")[2], verify.ErrAlgorithm},
		{"none on the ES256 key, empty signature", signingInput(hdr("none", "e1"), P) + ".", verify.ErrMalformed},

		// The alg of another published key, signed by that key, with this kid.
		{"ES256 kid, RS256 header, signed by k1", rs256(t, rsaK1, hdr("RS256", "e1"), P), verify.ErrAlgorithm},
		{"EdDSA kid, RS256 header, signed by k1", rs256(t, rsaK1, hdr("RS256", "d1"), P), verify.ErrAlgorithm},
		{"RS256 kid, ES256 header, signed by e1", es256(t, ecE1, hdr("ES256", "k1"), P), verify.ErrAlgorithm},
		{"RS256 kid, EdDSA header, signed by d1", eddsa(ak.d1, hdr("EdDSA", "k1"), P), verify.ErrAlgorithm},
		{"ES256 kid, EdDSA header, signed by d1", eddsa(ak.d1, hdr("EdDSA", "e1"), P), verify.ErrAlgorithm},
		{"EdDSA kid, ES256 header, signed by e1", es256(t, ecE1, hdr("ES256", "d1"), P), verify.ErrAlgorithm},
		{"kty-bound EC kid, EdDSA header", eddsa(ak.d1, hdr("EdDSA", "e2"), P), verify.ErrAlgorithm},
		{"kty-bound OKP kid, ES256 header", es256(t, ecE1, hdr("ES256", "d2"), P), verify.ErrAlgorithm},
		{"kty-bound RSA kid, PS256 header", rs256(t, rsaK2, hdr("PS256", "k2"), P), verify.ErrAlgorithm},
		{"ES256 kid, ES384 header", es256(t, ecE1, hdr("ES384", "e1"), P), verify.ErrAlgorithm},

		// HS256 keyed with each form of the EC and Ed25519 public keys.
		{"HS256 keyed with e1's SPKI", hs(sha256Hash, spki(&ecE1.PublicKey), hdr("HS256", "e1"), P), verify.ErrAlgorithm},
		{"HS256 keyed with e1's point", hs(sha256Hash, ecRaw, hdr("HS256", "e1"), P), verify.ErrAlgorithm},
		{"HS256 keyed with e1's JWK", hs(sha256Hash, jwkText(&ecE1.PublicKey, "e1", "ES256"), hdr("HS256", "e1"), P), verify.ErrAlgorithm},
		{"HS256 keyed with d1's x", hs(sha256Hash, ak.d1.Public().(ed25519.PublicKey), hdr("HS256", "d1"), P), verify.ErrAlgorithm},
		{"HS256 keyed with d1's SPKI", hs(sha256Hash, spki(ak.d1.Public()), hdr("HS256", "d1"), P), verify.ErrAlgorithm},
		{"HS256 keyed with d1's JWK", hs(sha256Hash, jwkText(ak.d1.Public(), "d1", "EdDSA"), hdr("HS256", "d1"), P), verify.ErrAlgorithm},

		// ES256 with the ASN.1 DER signature of the real key.
		{"ES256 with a DER signature", es256DER(t, ecE1, hdr("ES256", "e1"), P), verify.ErrSignature},
		{"ES256 with a DER signature, kty-bound key", es256DER(t, ak.e2, hdr("ES256", "e2"), P), verify.ErrSignature},

		// A signature by another key of the same algorithm.
		{"ES256 by the attacker's key, kid e1", es256(t, ak.eA, hdr("ES256", "e1"), P), verify.ErrSignature},
		{"ES256 by e2, kid e1", es256(t, ak.e2, hdr("ES256", "e1"), P), verify.ErrSignature},
		{"EdDSA by the attacker's key, kid d1", eddsa(ak.dA, hdr("EdDSA", "d1"), P), verify.ErrSignature},
		{"EdDSA by d2, kid d1", eddsa(ak.d2, hdr("EdDSA", "d1"), P), verify.ErrSignature},
		{"RS256 by the attacker's key, kid k1", rs256(t, rsaA, hdr("RS256", "k1"), P), verify.ErrSignature},

		// Wrong curves and keys published for an algorithm of another key type.
		{"EdDSA on an X25519 key", eddsa(ak.dA, hdr("EdDSA", "x1"), P), verify.ErrUnknownKey},
		{"EdDSA on an Ed448 key", eddsa(ak.dA, hdr("EdDSA", "ed448"), P), verify.ErrUnknownKey},
		{"EdDSA on a P-256 key published for EdDSA", eddsa(ak.dA, hdr("EdDSA", "ec-as-eddsa"), P), verify.ErrUnknownKey},
		{"ES256 on an Ed25519 key published for ES256", es256(t, ak.eA, hdr("ES256", "okp-as-es256"), P), verify.ErrUnknownKey},
		{"ES256 on a P-384 key published for ES256", es256(t, ecE1, hdr("ES256", "p384"), P), verify.ErrUnknownKey},
		{"ES256 on a P-384 key without alg", es256(t, ecE1, hdr("ES256", "p384-noalg"), P), verify.ErrUnknownKey},

		// Malformed EdDSA signatures of the real key.
		{"EdDSA signature truncated", realEd[:len(realEd)-2], verify.ErrSignature},
		{"EdDSA signature of zeros", signingInput(hdr("EdDSA", "d1"), P) + "." + b64(make([]byte, 64)), verify.ErrSignature},
		{"EdDSA signature over another payload", signingInput(hdr("EdDSA", "d1"), P) + "." +
			strings.Split(eddsa(ak.d1, hdr("EdDSA", "d1"), obj(with(basePayload(is.srv.URL), member{"sub", `"u-admin"`})...)), ".")[2], verify.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantVerify(t, v, tt.token, tt.want)
		})
	}
}

// TestDefaultAlgorithms: with no Algorithms configured the allowlist is RS256, ES256 and
// EdDSA, so a resource server keeps working when its issuer migrates; an explicit list
// still narrows it.
func TestDefaultAlgorithms(t *testing.T) {
	ak := testAlgKeys()
	is := newIssuer(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&ecE1.PublicKey, "e1", "ES256"}, jwk{ak.d1.Public(), "d1", "EdDSA"})
	P := obj(basePayload(is.srv.URL)...)
	hdr := func(alg, kid string) string {
		return obj(with(baseHeader(), member{"alg", str(alg)}, member{"kid", str(kid)})...)
	}
	rs := rs256(t, rsaK1, hdr("RS256", "k1"), P)
	es := es256(t, ecE1, hdr("ES256", "e1"), P)
	ed := eddsa(ak.d1, hdr("EdDSA", "d1"), P)
	def := newVerifier(t, is, is.config(newClock()))
	for _, tok := range []string{rs, es, ed} {
		wantVerify(t, def, tok, nil)
	}
	cfg := is.config(newClock())
	cfg.Algorithms = []string{"RS256"}
	only := newVerifier(t, is, cfg)
	wantVerify(t, only, rs, nil)
	wantVerify(t, only, es, verify.ErrAlgorithm)
	wantVerify(t, only, ed, verify.ErrAlgorithm)
}
