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
	is := newIssuer(f)
	v := newVerifier(f, is, is.config(newClock()))
	V := valid(f, is)
	parts := strings.Split(V, ".")
	for _, seed := range []string{
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
