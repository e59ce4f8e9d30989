package openssl_test

import (
	"crypto"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/openssl"
)

// rss is the process's resident set in bytes, from /proc/self/statm.
func rss(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	fields := strings.Fields(string(b))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestKeysAreFreed makes thousands of keys, each signing once, and drops
// them: closed, or left to the runtime cleanup. If the EVP_PKEY or its
// contexts stayed in OpenSSL's heap, the resident set would grow by some
// kilobytes per key (about 5.5 KiB for RSA-2048 here).
func TestKeysAreFreed(t *testing.T) {
	requireOpenSSL(t)
	priv := testKey(t, 2048, 3)
	digest := randomDigest(t)
	for _, tt := range []struct {
		name  string
		close bool
	}{
		{"Close", true},
		{"cleanup", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cycle := func(n int) {
				for i := range n {
					k, err := openssl.NewRSAKey(priv)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := k.Sign(nil, digest, crypto.SHA256); err != nil {
						t.Fatal(err)
					}
					if tt.close {
						k.Close()
					} else if i%50 == 49 {
						// Collect often: a peak of thousands of
						// live keys would raise the C heap's high
						// water mark, which glibc keeps.
						runtime.GC()
					}
				}
				// The runtime runs cleanups after a collection, in
				// their own goroutine.
				for range 5 {
					runtime.GC()
					time.Sleep(10 * time.Millisecond)
				}
			}
			cycle(500) // warm up OpenSSL's and Go's heaps
			before := rss(t)
			const n = 2000
			cycle(n)
			grown := rss(t) - before
			t.Logf("resident set grew %d KiB over %d keys", grown>>10, n)
			if grown > 5<<20 {
				t.Fatalf("resident set grew %d KiB over %d keys: keys are not freed", grown>>10, n)
			}
		})
	}
}
