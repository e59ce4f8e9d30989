package openssl

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// TestSignTurns: however many goroutines sign, at most GOMAXPROCS
// signatures run in C at once (signTurns).
func TestSignTurns(t *testing.T) {
	loadOrSkip(t)
	priv, err := x509.ParsePKCS1PrivateKey(testDER(t))
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewRSAKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	digest := sha256.Sum256([]byte("turns"))
	var in, most atomic.Int32
	inner := signInC
	signInC = func(c unsafe.Pointer, sig, digest []byte) (int, error) {
		n := in.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		defer in.Add(-1)
		return inner(c, sig, digest)
	}
	t.Cleanup(func() { signInC = inner })
	const goroutines = 4 * 8
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range 10 {
				if _, err := k.Sign(nil, digest[:], crypto.SHA256); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if limit := int32(cap(signTurns)); most.Load() > limit || limit >= goroutines {
		t.Fatalf("%d signatures in C at once with %d goroutines signing, want at most %d (GOMAXPROCS)", most.Load(), goroutines, limit)
	}
	t.Logf("at most %d of %d in C at once", most.Load(), goroutines)
}
