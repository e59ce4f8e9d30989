package openssl_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// FuzzSign feeds Sign arbitrary digests and hash choices: a 32-byte digest
// with SHA-256 must give crypto/rsa's signature byte for byte, and anything
// else an error, never a signature or a crash. The seeds run in go test.
func FuzzSign(f *testing.F) {
	requireOpenSSL(f)
	priv := testKey(f, 2048, 1)
	k := newKey(f, priv)
	sum := sha256.Sum256([]byte("eyJhbGciOiJSUzI1NiJ9.e30"))
	for _, seed := range []struct {
		digest []byte
		hash   crypto.Hash
	}{
		{sum[:], crypto.SHA256},
		{make([]byte, 32), crypto.SHA256},
		{bytes.Repeat([]byte{0xff}, 32), crypto.SHA256},
		{nil, crypto.SHA256},
		{sum[:31], crypto.SHA256},
		{append(sum[:], 0), crypto.SHA256},
		{bytes.Repeat([]byte{0xab}, 4096), crypto.SHA256},
		{sum[:20], crypto.SHA1},
		{sum[:], crypto.SHA3_256},
		{sum[:], 0},
		{sum[:], 255},
	} {
		f.Add(seed.digest, uint8(seed.hash))
	}
	f.Fuzz(func(t *testing.T, digest []byte, hash uint8) {
		opts := crypto.Hash(hash)
		sig, err := k.Sign(nil, digest, opts)
		if opts != crypto.SHA256 || len(digest) != sha256.Size {
			if err == nil || sig != nil {
				t.Fatalf("hash %d, %d-byte digest: signature %x, error %v; want only an error", hash, len(digest), sig, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sig, want) {
			t.Fatalf("digest %x: OpenSSL signature differs from crypto/rsa's", digest)
		}
	})
}
