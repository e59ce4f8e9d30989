package openssl_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/openssl"
	"github.com/keyward/keyward/internal/testsupport"
)

// requireOpenSSL skips the test when libcrypto 3 cannot be loaded, or fails
// it when KEYWARD_OPENSSL_REQUIRED=1 (CI, where the library must be there).
func requireOpenSSL(tb testing.TB) {
	tb.Helper()
	if err := openssl.Load(); err != nil {
		if os.Getenv("KEYWARD_OPENSSL_REQUIRED") == "1" {
			tb.Fatalf("OpenSSL is required (KEYWARD_OPENSSL_REQUIRED=1): %v", err)
		}
		tb.Skipf("%v (set KEYWARD_OPENSSL_REQUIRED=1 to make this a failure)", err)
	}
}

// testKey reads testdata/rsa<bits>-<n>.pem, made with
// `openssl genrsa -traditional` (2048, 3072 and 4096 bits, three each, and
// one of 512 bits that NewRSAKey must refuse).
func testKey(tb testing.TB, bits, n int) *rsa.PrivateKey {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("rsa%d-%d.pem", bits, n)))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatal("no PEM block")
	}
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return priv
}

// newKey copies priv into OpenSSL and closes it when the test ends.
func newKey(tb testing.TB, priv *rsa.PrivateKey) *openssl.RSAKey {
	tb.Helper()
	k, err := openssl.NewRSAKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { k.Close() })
	return k
}

func randomDigest(tb testing.TB) []byte {
	tb.Helper()
	d := make([]byte, sha256.Size)
	if _, err := rand.Read(d); err != nil {
		tb.Fatal(err)
	}
	return d
}

var _ interface {
	crypto.Signer
	Close() error
} = (*openssl.RSAKey)(nil)

func TestLoad(t *testing.T) {
	requireOpenSSL(t)
	if v := openssl.Version(); !strings.HasPrefix(v, "OpenSSL 3.") {
		t.Fatalf("Version() = %q, want OpenSSL 3.x", v)
	}
	if err := openssl.Load(); err != nil {
		t.Fatalf("second Load: %v", err)
	}
}

// TestSignMatchesCryptoRSA checks that OpenSSL's signatures are byte for
// byte those of crypto/rsa (PKCS#1 v1.5 is deterministic) over random
// digests, for three keys of each size Keyward generates.
func TestSignMatchesCryptoRSA(t *testing.T) {
	requireOpenSSL(t)
	digests := map[int]int{2048: 300, 3072: 150, 4096: 100} // per key
	if testing.Short() {
		digests = map[int]int{2048: 10, 3072: 4, 4096: 2}
	}
	for _, bits := range []int{2048, 3072, 4096} {
		for n := 1; n <= 3; n++ {
			t.Run(fmt.Sprintf("rsa%d-%d", bits, n), func(t *testing.T) {
				t.Parallel()
				priv := testKey(t, bits, n)
				k := newKey(t, priv)
				pub, ok := k.Public().(*rsa.PublicKey)
				if !ok || !pub.Equal(&priv.PublicKey) {
					t.Fatalf("Public() = %v, want the key's public half", k.Public())
				}
				for range digests[bits] {
					d := randomDigest(t)
					got, err := k.Sign(nil, d, crypto.SHA256)
					if err != nil {
						t.Fatal(err)
					}
					want, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("digest %x: OpenSSL signature differs from crypto/rsa's\n got %x\nwant %x", d, got, want)
					}
					if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d, got); err != nil {
						t.Fatalf("digest %x: %v", d, err)
					}
				}
			})
		}
	}
}

func TestSignRejects(t *testing.T) {
	requireOpenSSL(t)
	k := newKey(t, testKey(t, 2048, 1))
	d := randomDigest(t)
	tests := []struct {
		name    string
		digest  []byte
		opts    crypto.SignerOpts
		wantErr string
	}{
		{"sha256", d, crypto.SHA256, ""},
		{"nil opts", d, nil, "no hash"},
		{"no hash", d, crypto.Hash(0), "want SHA-256"},
		{"sha1", d[:20], crypto.SHA1, "want SHA-256"},
		{"sha512", append(d, d...), crypto.SHA512, "want SHA-256"},
		{"sha384 with a 32-byte digest", d, crypto.SHA384, "want SHA-256"},
		{"pss", d, &rsa.PSSOptions{Hash: crypto.SHA256}, "PSS"},
		{"nil digest", nil, crypto.SHA256, "digest of 0 bytes"},
		{"empty digest", []byte{}, crypto.SHA256, "digest of 0 bytes"},
		{"31 bytes", d[:31], crypto.SHA256, "digest of 31 bytes"},
		{"33 bytes", append(d, 0), crypto.SHA256, "digest of 33 bytes"},
		{"64 bytes", append(d, d...), crypto.SHA256, "digest of 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := k.Sign(rand.Reader, tt.digest, tt.opts)
			if testsupport.WantError(t, err, tt.wantErr) {
				if sig != nil {
					t.Fatalf("signature %x returned with the error", sig)
				}
				return
			}
			if len(sig) != 256 {
				t.Fatalf("signature of %d bytes, want 256", len(sig))
			}
		})
	}
}

func TestNewRSAKeyRejects(t *testing.T) {
	requireOpenSSL(t)
	broken := testKey(t, 2048, 2)
	broken.D.Add(broken.D, big.NewInt(2)) // d no longer inverts e
	swapped := testKey(t, 2048, 3)
	swapped.N = testKey(t, 2048, 1).N // n is not p·q
	tests := []struct {
		name    string
		priv    *rsa.PrivateKey
		wantErr string
	}{
		{"nil", nil, "nil key"},
		{"wrong d", broken, "new RSA key"},
		{"wrong n", swapped, "new RSA key"},
		{"512 bits", testKey(t, 512, 1), "512 bits, want at least 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := openssl.NewRSAKey(tt.priv)
			if k != nil {
				k.Close()
			}
			testsupport.WantError(t, err, tt.wantErr)
		})
	}
}

// TestSignConcurrent signs from many goroutines with one key; under -race
// it also checks the context pool.
func TestSignConcurrent(t *testing.T) {
	requireOpenSSL(t)
	priv := testKey(t, 2048, 1)
	k := newKey(t, priv)
	const goroutines, each = 32, 20
	digests := make([][]byte, 8)
	wants := make([][]byte, len(digests))
	for i := range digests {
		digests[i] = randomDigest(t)
		var err error
		if wants[i], err = rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digests[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for j := range each {
				i := (g + j) % len(digests)
				sig, err := k.Sign(nil, digests[i], crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(sig, wants[i]) {
					errs <- fmt.Errorf("goroutine %d sign %d: wrong signature", g, j)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseWhileSigning closes a key that goroutines are signing with: each
// Sign either succeeds with a valid signature or returns ErrClosed, and
// every Sign after Close returns ErrClosed.
func TestCloseWhileSigning(t *testing.T) {
	requireOpenSSL(t)
	priv := testKey(t, 2048, 2)
	k, err := openssl.NewRSAKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	d := randomDigest(t)
	var signed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				sig, err := k.Sign(nil, d, crypto.SHA256)
				if errors.Is(err, openssl.ErrClosed) {
					return
				}
				if err == nil {
					err = rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d, sig)
				}
				if err != nil {
					errs <- err
					return
				}
				signed.Add(1)
			}
		})
	}
	for signed.Load() < 50 {
		if len(errs) > 0 {
			break
		}
		runtime.Gosched()
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := k.Sign(nil, d, crypto.SHA256); !errors.Is(err, openssl.ErrClosed) {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
