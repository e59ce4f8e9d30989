package openssl_test

import (
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// TestGoJOSE signs a JWS as Keyward does, with go-jose, once with the
// *rsa.PrivateKey and once through an RSAKey wrapped by go-jose's
// cryptosigner: RS256 gives the same compact serialization, and the
// algorithms RSAKey does not sign (PS256, RS512) fail rather than come out
// as RS256.
func TestGoJOSE(t *testing.T) {
	requireOpenSSL(t)
	priv := testKey(t, 2048, 2)
	k := newKey(t, priv)
	payload := []byte(`{"iss":"https://as.test","sub":"u-alice","jti":"j1"}`)
	sign := func(alg jose.SignatureAlgorithm, key any) (string, error) {
		opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1")
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		if err != nil {
			return "", err
		}
		jws, err := s.Sign(payload)
		if err != nil {
			return "", err
		}
		return jws.CompactSerialize()
	}
	want, err := sign(jose.RS256, priv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		alg     jose.SignatureAlgorithm
		wantErr string
	}{
		{"RS256", jose.RS256, ""},
		{"PS256", jose.PS256, "PSS is not supported"},
		{"RS512", jose.RS512, "want SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sign(tt.alg, cryptosigner.Opaque(k))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, token %q; want an error mentioning %q", err, got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("token through OpenSSL\n%s\nwant (crypto/rsa)\n%s", got, want)
			}
			jws, err := jose.ParseSigned(got, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(&priv.PublicKey); err != nil {
				t.Fatal(err)
			}
		})
	}
}
