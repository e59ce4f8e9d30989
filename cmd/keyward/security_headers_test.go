package main

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeSecurityHeaders checks the response headers of a real serve in
// its three TLS modes (TH-02, TH-04, TH-05, TH-07). Over TLS, served
// directly (--tls-cert) or through a trusted proxy that sends
// X-Forwarded-Proto: https, every answer (the token endpoint's error, the
// JWKS, the metadata) carries Strict-Transport-Security with a year and
// includeSubDomains; the local plain-HTTP default and the proxy's
// plain-HTTP refusal carry none. Every answer has nosniff and the API CSP,
// no Server or X-Powered-By, and CORS only as * on the JWKS and metadata,
// even for an Origin that asks.
func TestServeSecurityHeaders(t *testing.T) {
	const hsts = "max-age=31536000; includeSubDomains"
	type check struct {
		method, path string
		header       http.Header
		wantStatus   int
		wantHSTS     bool
	}
	forwarded := http.Header{"X-Forwarded-Proto": {"https"}}
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, dir)
	tests := []struct {
		name   string
		args   []string
		tls    bool
		checks []check
	}{
		{"local plain HTTP", nil, false, []check{
			{http.MethodPost, "/oauth2/token", nil, 401, false},
			{http.MethodGet, "/.well-known/jwks.json", nil, 200, false},
			{http.MethodGet, "/.well-known/openid-configuration", nil, 200, false},
			{http.MethodGet, "/admin/v1/users", nil, 401, false},
		}},
		{"behind a TLS proxy", []string{"--issuer", "https://id.example.test", "--trusted-proxies", "127.0.0.1/32"}, false, []check{
			{http.MethodPost, "/oauth2/token", forwarded, 401, true},
			{http.MethodGet, "/.well-known/jwks.json", forwarded, 200, true},
			{http.MethodGet, "/.well-known/openid-configuration", forwarded, 200, true},
			{http.MethodGet, "/admin/v1/users", forwarded, 401, true},
			{http.MethodGet, "/nope", forwarded, 404, true},
			{http.MethodPost, "/oauth2/token", nil, 400, false}, // plain HTTP: refused, and no HSTS
		}},
		{"direct TLS", []string{"--issuer", "https://id.example.test", "--tls-cert", certFile, "--tls-key", keyFile}, true, []check{
			{http.MethodPost, "/oauth2/token", nil, 401, true},
			{http.MethodGet, "/.well-known/jwks.json", nil, 200, true},
			{http.MethodGet, "/.well-known/openid-configuration", nil, 200, true},
			{http.MethodGet, "/admin/v1/users", nil, 401, true},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(dir, string(rune('a'+i))+".db")
			s := startServe(t, append([]string{"--database", "sqlite:" + db, "--key-encryption-key-file", writeKEK(t, t.TempDir())}, tt.args...)...)
			c, base := noRedirects(&http.Client{Timeout: 10 * time.Second}), s.URL
			if tt.tls {
				c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
				base = "https://" + strings.TrimPrefix(s.URL, "http://")
			}
			for _, ck := range tt.checks {
				h := ck.header.Clone()
				if h == nil {
					h = http.Header{}
				}
				h.Set("Origin", "https://evil.test")
				var form url.Values
				if ck.method == http.MethodPost {
					form = url.Values{"grant_type": {"client_credentials"}}
				}
				r := send(t, c, ck.method, base+ck.path, h, form)
				if r.status != ck.wantStatus {
					t.Fatalf("%s %s: %s, want %d", ck.method, ck.path, r, ck.wantStatus)
				}
				got := r.header.Values("Strict-Transport-Security")
				if ck.wantHSTS && (len(got) != 1 || got[0] != hsts) || !ck.wantHSTS && len(got) != 0 {
					t.Errorf("%s %s: Strict-Transport-Security %q, want HSTS %v", ck.method, ck.path, got, ck.wantHSTS)
				}
				cors := ""
				if strings.HasPrefix(ck.path, "/.well-known/") {
					cors = "*"
				}
				for k, want := range map[string]string{
					"X-Content-Type-Options":           "nosniff",
					"Content-Security-Policy":          "default-src 'none'; frame-ancestors 'none'",
					"Access-Control-Allow-Origin":      cors,
					"Access-Control-Allow-Credentials": "",
					"Server":                           "",
					"X-Powered-By":                     "",
				} {
					if v := r.header.Get(k); v != want {
						t.Errorf("%s %s: %s %q, want %q", ck.method, ck.path, k, v, want)
					}
				}
				if ct := r.header.Get("Content-Type"); !strings.HasSuffix(ct, "; charset=utf-8") {
					t.Errorf("%s %s: Content-Type %q", ck.method, ck.path, ct)
				}
			}
		})
	}
}
