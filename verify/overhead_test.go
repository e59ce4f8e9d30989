package verify

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerifyWithoutRSA runs every step of Verify on a warm-cache token except the
// RSA operation: shape, base64url, header and payload JSON, key lookup and claims. It
// measures what Verify adds to rsa.VerifyPKCS1v15 without the noise of timing two
// RSA-bound benchmarks against each other on a busy machine.
func BenchmarkVerifyWithoutRSA(b *testing.B) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"k1"}`))
	payload := enc(fmt.Appendf(nil, `{"iss":"https://as.test","sub":"u-alice","aud":"https://rs1.test",`+
		`"client_id":"C1","scope":"read write","iat":%d,"exp":%d,"jti":"j1"}`, now.Unix(), now.Add(10*time.Minute).Unix()))
	token := header + "." + payload + "." + enc(make([]byte, 256))
	cfg, err := Config{Issuer: "https://as.test", Audience: "https://rs1.test", JWKSURL: "http://unused",
		Now: func() time.Time { return now }}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	keys := keySet{"k1": &key{alg: "RS256"}}
	b.ReportAllocs()
	for b.Loop() {
		c, err := splitCompact(token, cfg.MaxTokenSize)
		if err != nil {
			b.Fatal(err)
		}
		h, err := parseHeader(c.header, cfg.Algorithms)
		if err != nil {
			b.Fatal(err)
		}
		p, err := decodeSegment(c.payload, "payload")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := decodeSegment(c.signature, "signature"); err != nil {
			b.Fatal(err)
		}
		if k := keys[h.kid]; k == nil || k.alg != h.alg {
			b.Fatal("key")
		}
		if _, err := checkClaims(p, &cfg, cfg.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
