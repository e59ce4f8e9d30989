package oauth

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/manage"
)

// TestTokenEntropy is TE-20: refresh tokens carry 256 random bits, and
// neither they nor jti values repeat over 100k draws.
func TestTokenEntropy(t *testing.T) {
	seen := make(map[string]bool, 200000)
	for range 100000 {
		rt, jti := newRefreshToken(), randomID(16)
		if seen[rt] || seen[jti] {
			t.Fatal("duplicate token")
		}
		seen[rt], seen[jti] = true, true
	}
	rt := newRefreshToken()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(rt, manage.RefreshTokenPrefix))
	if err != nil || len(raw)*8 < 256 || !looksLikeRefreshToken(rt) {
		t.Fatalf("refresh token %d bits", len(raw)*8)
	}
}
