package verify_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
)

// The benchmarks verify the same warm-cache RS256 access token (2048-bit key) four
// ways. docs/performance.md records the figures and their ratio to the bare RSA check.

// BenchmarkVerify is this package: shape, strict header and payload JSON, key lookup,
// signature, RFC 9068 claims.
func BenchmarkVerify(b *testing.B) {
	is := newIssuer(b)
	v := newVerifier(b, is, is.config(newClock()))
	V := valid(b, is)
	if _, err := v.Verify(b.Context(), V); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), V); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAVerifyPKCS1v15 is the floor: crypto/rsa alone on the same token, with the
// digest precomputed ("verify") and with SHA-256 of the signing input ("hash+verify").
func BenchmarkRSAVerifyPKCS1v15(b *testing.B) {
	is := newIssuer(b)
	V := valid(b, is)
	i := strings.LastIndexByte(V, '.')
	sig, err := base64.RawURLEncoding.DecodeString(V[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &rsaK1.PublicKey
	digest := sha256.Sum256([]byte(V[:i]))
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hash+verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := sha256.Sum256([]byte(V[:i]))
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGoOIDC is go-oidc's IDTokenVerifier over a warm RemoteKeySet, checking
// algorithm, signature, iss, aud and exp (it has no typ check).
func BenchmarkGoOIDC(b *testing.B) {
	is := newIssuer(b)
	clk := newClock()
	ov := oidc.NewVerifier(is.srv.URL, oidc.NewRemoteKeySet(b.Context(), is.srv.URL+"/jwks"), &oidc.Config{
		ClientID: testAudience, SupportedSigningAlgs: []string{"RS256"}, Now: clk.Now,
	})
	V := valid(b, is)
	if _, err := ov.Verify(b.Context(), V); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ov.Verify(b.Context(), V); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGolangJWT is golang-jwt v5 with a key func over pre-parsed keys, checking
// typ, the RS256 allowlist, signature, iss, aud and a required exp.
func BenchmarkGolangJWT(b *testing.B) {
	is := newIssuer(b)
	clk := newClock()
	keys := map[string]*rsa.PublicKey{"k1": &rsaK1.PublicKey}
	keyFunc := func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return nil, errors.New("typ")
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid")
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(is.srv.URL),
		jwt.WithAudience(testAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(clk.Now))
	V := valid(b, is)
	if _, err := p.ParseWithClaims(V, &jwt.RegisteredClaims{}, keyFunc); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseWithClaims(V, &jwt.RegisteredClaims{}, keyFunc); err != nil {
			b.Fatal(err)
		}
	}
}
