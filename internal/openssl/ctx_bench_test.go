package openssl

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

// BenchmarkSignContext is what the context pool saves per signature: a
// new EVP_PKEY_CTX set up for RS256 and freed (sub-benchmark "setup"), and
// a signature that also does so ("fresh"), to set beside
// BenchmarkSignOpenSSL.
func BenchmarkSignContext(b *testing.B) {
	if err := Load(); err != nil {
		b.Skip(err)
	}
	pemBytes, err := os.ReadFile("testdata/rsa2048-1.pem")
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	k, err := NewRSAKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	digest := make([]byte, 32)
	sig := make([]byte, k.size)
	b.Run("setup", func(b *testing.B) {
		for b.Loop() {
			c, err := newSignCtx(k.h.pkey)
			if err != nil {
				b.Fatal(err)
			}
			freeSignCtx(c)
		}
	})
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			c, err := newSignCtx(k.h.pkey)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := signDigest(c, sig, digest); err != nil {
				b.Fatal(err)
			}
			freeSignCtx(c)
		}
	})
}
