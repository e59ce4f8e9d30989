package verify_test

import (
	"crypto"
	"errors"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/keyward/keyward/verify"
)

// TestInteropGoOIDC signs tokens here and checks that go-oidc, reading the same httptest
// JWKS through oidc.NewRemoteKeySet, agrees with verify on the valid token and on the
// crafted tokens where both libraries check the same thing.
func TestInteropGoOIDC(t *testing.T) {
	is := newIssuer(t)
	clk := newClock()
	v := newVerifier(t, is, is.config(clk))
	keySet := oidc.NewRemoteKeySet(t.Context(), is.srv.URL+"/jwks")
	ov := oidc.NewVerifier(is.srv.URL, keySet, &oidc.Config{
		ClientID: testAudience, SupportedSigningAlgs: []string{"RS256"}, Now: clk.Now,
	})
	H, P := baseHeader(), basePayload(is.srv.URL)
	V := valid(t, is)
	keys := confusionKeys(t)

	tests := []struct {
		name  string
		token string
		want  error // nil: both accept
	}{
		{"valid RS256 at+jwt token", V, nil},
		{"bad signature", V[:len(V)-8] + "AAAAAAAA", verify.ErrSignature},
		{"signed by another key", rs256(t, rsaA, obj(H...), obj(P...)), verify.ErrSignature},
		{"alg none", signingInput(obj(with(H, member{"alg", `"none"`})...), obj(P...)) + ".", verify.ErrMalformed},
		{"alg none with a signature", signingInput(obj(with(H, member{"alg", `"none"`})...), obj(P...)) + "." + b64([]byte("x")), verify.ErrAlgorithm},
		{"HS256 keyed with the PEM", hs(sha256Hash, keys["pem with newline"], obj(with(H, member{"alg", `"HS256"`})...), obj(P...)), verify.ErrAlgorithm},
		{"HS256 keyed with raw n", hs(sha256Hash, keys["raw n"], obj(with(H, member{"alg", `"HS256"`})...), obj(P...)), verify.ErrAlgorithm},
		{"PS256 with the real key", signRSA(t, rsaK1, crypto.SHA256, true, obj(with(H, member{"alg", `"PS256"`})...), obj(P...)), verify.ErrAlgorithm},
		{"unknown kid signed by another key", rs256(t, rsaA, obj(with(H, member{"kid", `"nope"`})...), obj(P...)), verify.ErrUnknownKey},
		{"wrong issuer", rs256(t, rsaK1, obj(H...), obj(with(P, member{"iss", `"https://evil.test"`})...)), verify.ErrIssuer},
		{"wrong audience", rs256(t, rsaK1, obj(H...), obj(with(P, member{"aud", `"https://rs2.test"`})...)), verify.ErrAudience},
		{"expired", rs256(t, rsaK1, obj(H...), obj(with(P, member{"exp", num(testNow.Add(-3600e9))})...)), verify.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			_, oerr := ov.Verify(t.Context(), tt.token)
			if tt.want == nil {
				if err != nil || oerr != nil {
					t.Fatalf("verify: %v; go-oidc: %v; want both to accept", err, oerr)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("verify error = %v, want %v", err, tt.want)
			}
			if oerr == nil {
				t.Errorf("go-oidc accepted a token verify rejects with %v", tt.want)
			}
		})
	}
}
