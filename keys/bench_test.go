package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/storage/storagetest"
)

func benchManager(b *testing.B) *Manager {
	b.Helper()
	m, err := NewManager(b.Context(), storagetest.OpenSQLite(b), NewKEK(), Policy{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSign signs a typical access token (accessToken, ~300 bytes).
func BenchmarkSign(b *testing.B) {
	m := benchManager(b)
	payload := []byte(accessToken)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Sign("at+jwt", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSASignPKCS1v15 is the floor under BenchmarkSign: SHA-256 and
// rsa.SignPKCS1v15 over the same signing input with the same key.
func BenchmarkRSASignPKCS1v15(b *testing.B) {
	m := benchManager(b)
	priv := m.snap.Load().active.signer.(*rsa.PrivateKey)
	header := `{"alg":"RS256","kid":"` + activeKID(m) + `","typ":"at+jwt"}`
	input := []byte(base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(accessToken)))
	b.SetBytes(int64(len(accessToken)))
	b.ReportAllocs()
	for b.Loop() {
		sum := sha256.Sum256(input)
		if _, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWKS is what the JWKS handler pays per request.
func BenchmarkJWKS(b *testing.B) {
	m := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		doc, etag := m.JWKS()
		if len(doc) == 0 || etag == "" {
			b.Fatal("empty JWKS")
		}
	}
}

// BenchmarkSignPaired alternates Sign and the bare signature in one loop and
// reports the median time of each and their ratio: load from other processes
// on a shared machine falls on both alike, and the median ignores the calls
// that were preempted.
func BenchmarkSignPaired(b *testing.B) {
	m := benchManager(b)
	priv := m.snap.Load().active.signer.(*rsa.PrivateKey)
	payload := []byte(accessToken)
	header := `{"alg":"RS256","kid":"` + activeKID(m) + `","typ":"at+jwt"}`
	input := []byte(base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload))
	var sign, bare []time.Duration
	for b.Loop() {
		t := time.Now()
		if _, err := m.Sign("at+jwt", payload); err != nil {
			b.Fatal(err)
		}
		sign = append(sign, time.Since(t))
		t = time.Now()
		sum := sha256.Sum256(input)
		if _, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(t))
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	ms, mb := median(sign), median(bare)
	b.ReportMetric(float64(ms.Nanoseconds()), "sign-median-ns")
	b.ReportMetric(float64(mb.Nanoseconds()), "bare-median-ns")
	b.ReportMetric(float64(ms)/float64(mb), "ratio")
}

// BenchmarkSignAlgorithm signs the same access token with a key of each
// algorithm.
func BenchmarkSignAlgorithm(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			m, err := NewManager(b.Context(), storagetest.OpenSQLite(b), NewKEK(), Policy{Algorithm: alg}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			payload := []byte(accessToken)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign("at+jwt", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
