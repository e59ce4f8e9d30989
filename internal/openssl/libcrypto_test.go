//go:build cgo && linux

package openssl

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
)

// testDER is testdata/rsa2048-1.pem's PKCS#1 DER.
func testDER(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/rsa2048-1.pem")
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatal("no PEM block")
	}
	return block.Bytes
}

// signRaw signs a digest of digestLen bytes with der's key straight
// through the binding, into a buffer of sigLen bytes (0: the key's size).
func signRaw(der []byte, sigLen, digestLen int) error {
	k, size, err := newPKey(der)
	if err != nil {
		return err
	}
	defer freePKey(k)
	c, err := newSignCtx(k)
	if err != nil {
		return err
	}
	defer freeSignCtx(c)
	if sigLen == 0 {
		sigLen = size
	}
	_, err = signDigest(c, make([]byte, sigLen), make([]byte, digestLen))
	return err
}

func loadOrSkip(tb testing.TB) {
	tb.Helper()
	if err := Load(); err != nil {
		if os.Getenv("KEYWARD_OPENSSL_REQUIRED") == "1" {
			tb.Fatalf("OpenSSL is required (KEYWARD_OPENSSL_REQUIRED=1): %v", err)
		}
		tb.Skip(err)
	}
}

// TestOpenSSLErrors checks what the Go side makes of OpenSSL's failures,
// which Sign's own checks keep it from meeting: an error naming the
// operation and OpenSSL's reason, taken from the queue within the same call
// (a later call reports its own), and no key bytes in the message.
func TestOpenSSLErrors(t *testing.T) {
	loadOrSkip(t)
	der := testDER(t)
	truncated := der[:len(der)/2]
	parseGarbage := func() error {
		_, _, err := newPKey([]byte{0x30, 0x03, 0x02, 0x01})
		return err
	}
	garbageErr := parseGarbage()
	tests := []struct {
		name    string
		do      func() error
		wantErr string
	}{
		{"garbage DER", parseGarbage, "openssl: parse RSA private key: error:"},
		{"truncated key", func() error {
			_, _, err := newPKey(truncated)
			return err
		}, "openssl: parse RSA private key: error:"},
		{"short digest", func() error { return signRaw(der, 0, 31) }, "openssl: RSA sign: error:"},
		{"signature buffer too small", func() error { return signRaw(der, 100, 32) }, "openssl: RSA sign: error:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one starting %q", err, tt.wantErr)
			}
			msg := strings.ToLower(err.Error())
			for i := 0; i+8 <= len(truncated); i += 8 {
				if strings.Contains(msg, hex.EncodeToString(truncated[i:i+8])) {
					t.Fatalf("error %q carries key bytes", err)
				}
			}
			t.Log(err)
			// The queue was emptied: the next failure reports its own
			// error, not this one, and a good parse succeeds.
			if err := parseGarbage(); err == nil || err.Error() != garbageErr.Error() {
				t.Fatalf("garbage parse after a failure: %v, want %v", err, garbageErr)
			}
			k, _, err := newPKey(der)
			if err != nil {
				t.Fatalf("parse after a failure: %v", err)
			}
			freePKey(k)
		})
	}
}

// FuzzParseKey hands OpenSSL's DER parser arbitrary bytes across the
// binding: it must return a key or an error, never crash, and a key it
// returns must be freeable. The seeds run in go test.
func FuzzParseKey(f *testing.F) {
	loadOrSkip(f)
	der := testDER(f)
	f.Add(der)
	f.Add(der[:len(der)-1])
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	if pkcs8, err := x509.MarshalPKCS8PrivateKey(mustParse(f, der)); err == nil {
		f.Add(pkcs8)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		if len(der) == 0 {
			return // newPKey refuses it before OpenSSL
		}
		k, size, err := newPKey(der)
		if err != nil {
			return
		}
		if size <= 0 {
			t.Errorf("key parsed with signature size %d", size)
		}
		freePKey(k)
	})
}

func mustParse(tb testing.TB, der []byte) any {
	tb.Helper()
	k, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestLoadWrongLibrary is Load on a machine without a usable
// libcrypto.so.3: an error wrapping ErrUnavailable that says why, and the
// library loaded before stays in use.
func TestLoadWrongLibrary(t *testing.T) {
	loadOrSkip(t)
	tests := []struct {
		name, lib, wantErr string
	}{
		{"missing", "libcrypto-keyward-missing.so.3", "libcrypto-keyward-missing.so.3: cannot open"},
		{"not libcrypto", "libc.so.6", "libc.so.6 lacks OpenSSL_version_num"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadLibrary(tt.lib)
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want ErrUnavailable saying %q", err, tt.wantErr)
			}
			k, _, err := newPKey(testDER(t))
			if err != nil {
				t.Fatalf("parse after a failed load: %v", err)
			}
			freePKey(k)
		})
	}
}
