package main

import (
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/openssl"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// TestServeSigner runs a real server with each --signer: the log names the
// signer, /metrics shows it as keyward_signer_info (and the database pool's
// go_sql_* statistics), and a token it signs
// verifies through the JWKS (OpenSSL's signatures are crypto/rsa's byte for
// byte: internal/openssl's tests).
func TestServeSigner(t *testing.T) {
	if err := openssl.Load(); err != nil {
		if os.Getenv("KEYWARD_OPENSSL_REQUIRED") == "1" {
			t.Fatalf("OpenSSL is required (KEYWARD_OPENSSL_REQUIRED=1): %v", err)
		}
		t.Skipf("no libcrypto 3: %v", err)
	}
	for _, tt := range []struct{ flag, signer, library, logged string }{
		{"openssl", "openssl", openssl.Version(), "RS256 signer: OpenSSL"},
		{"auto", "openssl", openssl.Version(), "RS256 signer: OpenSSL"},
		{"go", "go", "", "RS256 signer: crypto/rsa (--signer go)"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			dir := t.TempDir()
			metricsAddr := testsupport.FreeAddr(t)
			p := startProcess(t, nil, "--demo", "--database", "sqlite:"+dir+"/keyward.db", "--key-encryption-key-file", writeKEK(t, dir),
				"--signer", tt.flag, "--metrics-addr", metricsAddr)
			if !strings.Contains(p.Log.String(), tt.logged) {
				t.Errorf("log does not say %q:\n%s", tt.logged, p.Log)
			}
			secret, _ := demoCredentials(t, p)
			v, err := verify.New(t.Context(), verify.Config{Issuer: processIssuer, Audience: "api", JWKSURL: p.URL + "/.well-known/jwks.json"})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			for range 5 {
				if _, err := v.Verify(t.Context(), demoClientToken(t, p, secret)); err != nil {
					t.Fatalf("verify: %v", err)
				}
			}
			res, err := http.Get("http://" + metricsAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			want := `keyward_signer_info{library="` + tt.library + `",signer="` + tt.signer + `"} 1`
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
			// The database pool's statistics (docs/operations.md).
			if want := `go_sql_open_connections{db_name="keyward"} `; !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}

// TestSignerFlag: --signer takes auto, go or openssl only.
func TestSignerFlag(t *testing.T) {
	_, err := serveConfigOf(t, nil, "--signer", "boringssl")
	testsupport.WantError(t, err, `--signer must be auto, go or openssl, not "boringssl"`)
	c, err := serveConfigOf(t, nil, "--signer", "go")
	if err != nil || c.signer.name != signerGo || c.keyPolicy.RSASigner != nil {
		t.Fatalf("--signer go: %+v, %v", c, err)
	}
	if openssl.Load() != nil {
		return
	}
	c, err = serveConfigOf(t, nil, "--signer", "openssl")
	if err != nil || c.signer.name != signerOpenSSL || c.keyPolicy.RSASigner == nil {
		t.Fatalf("--signer openssl: %+v, %v", c, err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.keyPolicy.RSASigner(priv)
	if k, ok := s.(*openssl.RSAKey); err != nil || !ok {
		t.Fatalf("--signer openssl signs keys with %T, %v", s, err)
	} else {
		k.Close()
	}
}
