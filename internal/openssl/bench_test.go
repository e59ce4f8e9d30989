package openssl_test

import (
	"crypto"
	"crypto/rsa"
	"testing"

	"github.com/keyward/keyward/internal/openssl"
)

// BenchmarkSignOpenSSL is one RS256 signature with RSA-2048 through
// OpenSSL; compare it with BenchmarkSignGo, same key and digest.
func BenchmarkSignOpenSSL(b *testing.B) {
	requireOpenSSL(b)
	k := newKey(b, testKey(b, 2048, 1))
	d := randomDigest(b)
	for b.Loop() {
		if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignGo is the same signature with crypto/rsa.
func BenchmarkSignGo(b *testing.B) {
	priv := testKey(b, 2048, 1)
	d := randomDigest(b)
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignOpenSSLParallel signs with one key from GOMAXPROCS
// goroutines: the context pool and the key's lock under contention.
func BenchmarkSignOpenSSLParallel(b *testing.B) {
	requireOpenSSL(b)
	k := newKey(b, testKey(b, 2048, 1))
	d := randomDigest(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkNewRSAKey is copying an RSA-2048 key into OpenSSL and freeing it.
func BenchmarkNewRSAKey(b *testing.B) {
	requireOpenSSL(b)
	priv := testKey(b, 2048, 1)
	for b.Loop() {
		k, err := openssl.NewRSAKey(priv)
		if err != nil {
			b.Fatal(err)
		}
		k.Close()
	}
}
