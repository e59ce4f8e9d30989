package verify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/verify"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and any error must
// wrap one of the sentinels and never contain the input.
func FuzzVerify(f *testing.F) {
	ak := testAlgKeys()
	is := newIssuer(f, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&ecE1.PublicKey, "e1", "ES256"}, jwk{ak.d1.Public(), "d1", "EdDSA"})
	v := newVerifier(f, is, is.config(newClock())) // the default allowlist: RS256, ES256, EdDSA
	V := valid(f, is)
	parts := strings.Split(V, ".")
	P := obj(basePayload(is.srv.URL)...)
	hdr := func(alg, kid string) string {
		return obj(with(baseHeader(), member{"alg", str(alg)}, member{"kid", str(kid)})...)
	}
	for _, seed := range []string{
		es256(f, ecE1, hdr("ES256", "e1"), P), eddsa(ak.d1, hdr("EdDSA", "d1"), P),
		es256DER(f, ecE1, hdr("ES256", "e1"), P), eddsa(ak.d1, hdr("EdDSA", "e1"), P), es256(f, ecE1, hdr("ES256", "d1"), P),
		V, "", ".", "..", "...", parts[0] + "." + parts[1] + ".", V + "==", " " + V,
		b64([]byte(`{"alg":"RS256","alg":"none"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"x":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`)) + ".e30.AA",
		b64([]byte(`{"alg":"dir","enc":"A256GCM"}`)) + "..AA.AA.AA",
		`{"payload":"e30","signatures":[]}`,
	} {
		f.Add(seed)
	}
	sentinels := []error{verify.ErrMalformed, verify.ErrAlgorithm, verify.ErrType, verify.ErrUnknownKey,
		verify.ErrSignature, verify.ErrIssuer, verify.ErrAudience, verify.ErrExpired, verify.ErrNotYetValid}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(t.Context(), token)
		if err == nil {
			if c == nil || c.Subject == "" {
				t.Fatalf("accepted without claims: %q", token)
			}
			return
		}
		wrapped := false
		for _, s := range sentinels {
			wrapped = wrapped || errors.Is(err, s)
		}
		if !wrapped {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error echoes the token")
		}
	})
}
