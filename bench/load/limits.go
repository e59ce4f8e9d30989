package load

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/keyward/keyward/idp/password"
)

// Limits are the machine's own ceilings, measured in this process before a
// run while the server idles.
//
// On a shared machine other work shifts these from minute to minute, so each
// is measured before and after the run and the ratio is taken to the mean of
// the two; a wide before/after gap says the ratio is only as good as that.
type Limits struct {
	GOMAXPROCS     int     `json:"gomaxprocs,omitempty"`
	RSASignsPerSec float64 `json:"rsa_signs_per_sec,omitempty"` // RSA-2048 PKCS#1 v1.5 SHA-256, all cores: mean of before and after
	RSABefore      float64 `json:"rsa_before,omitempty"`
	RSAAfter       float64 `json:"rsa_after,omitempty"`
	Argon2PerSec   float64 `json:"argon2_per_sec,omitempty"` // argon2id at password.DefaultParams, all cores: mean of before and after
	Argon2Before   float64 `json:"argon2_before,omitempty"`
	Argon2After    float64 `json:"argon2_after,omitempty"`
}

// measure fills the before (after == false) or after figures and the means.
func (l *Limits) measure(d time.Duration, argon bool, after bool) {
	l.GOMAXPROCS = runtime.GOMAXPROCS(0)
	rsa := MeasureRSASign(d)
	var a float64
	if argon {
		a = MeasureArgon2(d)
	}
	if !after {
		l.RSABefore, l.Argon2Before = rsa, a
		l.RSASignsPerSec, l.Argon2PerSec = rsa, a
		return
	}
	l.RSAAfter, l.Argon2After = rsa, a
	l.RSASignsPerSec = (l.RSABefore + rsa) / 2
	if argon {
		l.Argon2PerSec = (l.Argon2Before + a) / 2
	}
}

// MeasureRSASign returns RSA-2048 rsa.SignPKCS1v15 signatures per second
// over GOMAXPROCS goroutines, signing the SHA-256 of a token-sized input,
// measured for about d.
func MeasureRSASign(d time.Duration) float64 {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	input := make([]byte, 300) // a typical access token's signing input
	rand.Read(input)
	return parallelRate(d, func() {
		sum := sha256.Sum256(input)
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err != nil {
			panic(err)
		}
	})
}

// MeasureRSAVerify returns RSA-2048 rsa.VerifyPKCS1v15 checks per second over
// GOMAXPROCS goroutines, digest precomputed, measured for about d: the bare
// cost under a verify.Verifier.
func MeasureRSAVerify(d time.Duration) float64 {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256([]byte("a token's signing input"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return parallelRate(d, func() {
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
			panic(err)
		}
	})
}

// MeasureES256Sign returns ECDSA P-256 SHA-256 signatures (JWS ES256) per
// second over GOMAXPROCS goroutines, measured for about d.
func MeasureES256Sign(d time.Duration) float64 {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	input := make([]byte, 300)
	rand.Read(input)
	return parallelRate(d, func() {
		sum := sha256.Sum256(input)
		if _, err := ecdsa.SignASN1(rand.Reader, key, sum[:]); err != nil {
			panic(err)
		}
	})
}

// MeasureEdDSASign returns Ed25519 signatures (JWS EdDSA) per second over
// GOMAXPROCS goroutines, measured for about d.
func MeasureEdDSASign(d time.Duration) float64 {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	input := make([]byte, 300)
	rand.Read(input)
	return parallelRate(d, func() { ed25519.Sign(key, input) })
}

// Measures names the limits MeasureNamed knows, each a rate per second.
var Measures = map[string]func(time.Duration) float64{
	"rsa-sign":   MeasureRSASign,
	"rsa-verify": MeasureRSAVerify,
	"es256-sign": MeasureES256Sign,
	"eddsa-sign": MeasureEdDSASign,
	"argon2id":   MeasureArgon2,
}

// MeasureNamed runs the measure called name (a key of Measures) for about d.
func MeasureNamed(name string, d time.Duration) (float64, error) {
	m, ok := Measures[name]
	if !ok {
		return 0, fmt.Errorf("unknown measure %q", name)
	}
	return m(d), nil
}

// MeasureArgon2 returns argon2id hashes per second at Keyward's default
// parameters (what one password verification costs) over GOMAXPROCS
// goroutines, measured for about d.
func MeasureArgon2(d time.Duration) float64 {
	p := password.DefaultParams()
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	return parallelRate(d, func() {
		argon2.IDKey([]byte("correct horse battery staple"), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	})
}

// parallelRate runs op on GOMAXPROCS goroutines until d has passed (each
// finishing the op it is in, and doing at least one) and returns completed
// ops per second.
func parallelRate(d time.Duration, op func()) float64 {
	op() // warm up outside the clock
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// At least one op each, so a goroutine scheduled only after
			// the deadline (a loaded machine) still counts its time.
			for ok := true; ok; ok = time.Now().Before(deadline) {
				op()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
