package password

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The benchmarks measure one login's hashing cost; docs/performance.md turns them into
// logins per second per core.

func BenchmarkVerifyDefault(b *testing.B) {
	h := newTestHasher(b, DefaultParams())
	enc := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(b.Context(), "correct horse battery staple", enc); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

func BenchmarkHashDefault(b *testing.B) {
	h := newTestHasher(b, DefaultParams())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(b.Context(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBcrypt(b *testing.B) {
	h := newTestHasher(b, DefaultParams())
	gen, err := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), 10)
	if err != nil {
		b.Fatal(err)
	}
	enc := string(gen)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(b.Context(), "correct horse battery staple", enc); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
