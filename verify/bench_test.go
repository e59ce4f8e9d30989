package verify_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
)

// The benchmarks verify the same warm-cache RS256 access token (2048-bit key) several
// ways. docs/performance.md records the figures and their ratio to the bare RSA check.

// benchVerify is this package: shape, strict header and payload JSON, key lookup,
// signature, RFC 9068 claims.
func benchVerify(b *testing.B, is *issuer, V string) func() error {
	v := newVerifier(b, is, is.config(newClock()))
	return func() error { _, err := v.Verify(b.Context(), V); return err }
}

// benchRSA is the floor: SHA-256 of the signing input and crypto/rsa alone; with
// hashed false the digest is precomputed.
func benchRSA(b *testing.B, V string, hashed bool) func() error {
	i := strings.LastIndexByte(V, '.')
	sig, err := base64.RawURLEncoding.DecodeString(V[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub, in := &rsaK1.PublicKey, []byte(V[:i])
	digest := sha256.Sum256(in)
	if !hashed {
		return func() error { return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) }
	}
	return func() error {
		d := sha256.Sum256(in)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
	}
}

// benchGoOIDC is go-oidc's IDTokenVerifier over a warm RemoteKeySet, checking
// algorithm, signature, iss, aud and exp (it has no typ check).
func benchGoOIDC(b *testing.B, is *issuer, V string) func() error {
	ov := oidc.NewVerifier(is.srv.URL, oidc.NewRemoteKeySet(b.Context(), is.srv.URL+"/jwks"), &oidc.Config{
		ClientID: testAudience, SupportedSigningAlgs: []string{"RS256"}, Now: newClock().Now,
	})
	return func() error { _, err := ov.Verify(b.Context(), V); return err }
}

// benchGolangJWT is golang-jwt v5 with a key func over pre-parsed keys, checking typ,
// the RS256 allowlist, signature, iss, aud, iat and a required exp.
func benchGolangJWT(b *testing.B, is *issuer, V string) func() error {
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
		jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(newClock().Now))
	return func() error { _, err := p.ParseWithClaims(V, &jwt.RegisteredClaims{}, keyFunc); return err }
}

// run times f in a b.Loop after one warm-up call.
func run(b *testing.B, f func() error) {
	if err := f(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	is := newIssuer(b)
	run(b, benchVerify(b, is, valid(b, is)))
}

func BenchmarkRSAVerifyPKCS1v15(b *testing.B) {
	is := newIssuer(b)
	V := valid(b, is)
	b.Run("verify", func(b *testing.B) { run(b, benchRSA(b, V, false)) })
	b.Run("hash+verify", func(b *testing.B) { run(b, benchRSA(b, V, true)) })
}

func BenchmarkGoOIDC(b *testing.B) {
	is := newIssuer(b)
	run(b, benchGoOIDC(b, is, valid(b, is)))
}

func BenchmarkGolangJWT(b *testing.B) {
	is := newIssuer(b)
	run(b, benchGolangJWT(b, is, valid(b, is)))
}

// BenchmarkInterleaved runs the four verifications round-robin in one loop and reports
// each one's median time per call and the ratios of the medians to the bare RSA check.
// On a shared machine the load changes between separate benchmarks and within one;
// interleaving exposes all four to the same load and the median drops the calls that a
// neighbour's burst slowed down, so the ratios hold even when absolute times drift.
func BenchmarkInterleaved(b *testing.B) {
	is := newIssuer(b)
	V := valid(b, is)
	names := []string{"verify", "rsa", "gooidc", "golangjwt"}
	fs := []func() error{benchVerify(b, is, V), benchRSA(b, V, true), benchGoOIDC(b, is, V), benchGolangJWT(b, is, V)}
	for _, f := range fs {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	samples := make([][]time.Duration, len(fs))
	for b.Loop() {
		for i, f := range fs {
			start := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			samples[i] = append(samples[i], time.Since(start))
		}
	}
	med := make([]float64, len(fs))
	for i, s := range samples {
		slices.Sort(s)
		med[i] = float64(s[len(s)/2].Nanoseconds())
		b.ReportMetric(med[i], names[i]+"-ns/op")
	}
	for i := range fs {
		if i != 1 {
			b.ReportMetric(med[i]/med[1], names[i]+"/rsa")
		}
	}
}
