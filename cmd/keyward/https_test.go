package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// noRedirects makes c return a redirect instead of following it, so a test
// sees any Location header.
func noRedirects(c *http.Client) *http.Client {
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// send sends one request from c and returns the answer.
func send(t *testing.T, c *http.Client, method, target string, header http.Header, form url.Values) tokenReply {
	t.Helper()
	req := testsupport.FormRequest(t, method, target, form)
	for k, vs := range header {
		req.Header[k] = vs
	}
	status, b, h := testsupport.Do(t, c, req)
	return tokenReply{status, h, string(b)}
}

func basicAuth(id, secret string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(id, secret)
	return req.Header.Get("Authorization")
}

// TestServeBehindTLSProxy (TE-01): an https issuer served without a
// certificate answers only what a trusted proxy forwards with
// X-Forwarded-Proto: https. Everything else, including the demo client's
// valid credentials sent in clear, gets 400 invalid_request with no-store
// and never a Location; the probes answer over plain HTTP, and so does
// /metrics on its own listener. --trusted-proxies comes from its
// environment variable.
func TestServeBehindTLSProxy(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, []string{"KEYWARD_TRUSTED_PROXIES=127.0.0.1/32"}, "--demo", "--issuer", "https://id.example.test",
		"--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir),
		"--metrics-addr", "127.0.0.1:0")
	secret, pw := demoCredentials(t, p)
	if !strings.Contains(p.Log.String(), `"tls":"forwarded"`) {
		t.Fatalf("serve does not log its TLS mode as forwarded:\n%s", p.Log.String())
	}
	proxy, stranger := noRedirects(clientFrom("127.0.0.1")), noRedirects(clientFrom("127.0.0.2"))
	auth := func(secret string) http.Header {
		return http.Header{"Authorization": {basicAuth(demoClientID, secret)}}
	}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	login := url.Values{"grant_type": {"password"}, "username": {demoUsername}, "password": {pw}, "scope": {"openid"}}
	tests := []struct {
		name       string
		c          *http.Client
		method     string
		path       string
		header     http.Header
		form       url.Values
		wantStatus int
		wantCode   string // the OAuth error; "" for none
	}{
		{"no X-Forwarded-Proto", proxy, http.MethodPost, "/oauth2/token", auth(secret), cc, 400, "invalid_request"},
		{"X-Forwarded-Proto http", proxy, http.MethodPost, "/oauth2/token", with(auth(secret), "X-Forwarded-Proto", "http"), cc, 400, "invalid_request"},
		{"X-Forwarded-Proto https and http", proxy, http.MethodPost, "/oauth2/token",
			with(auth(secret), "X-Forwarded-Proto", "https", "X-Forwarded-Proto", "http"), cc, 400, "invalid_request"},
		{"password in clear", proxy, http.MethodPost, "/oauth2/token", auth(secret), login, 400, "invalid_request"},
		{"https from an untrusted peer", stranger, http.MethodPost, "/oauth2/token", with(auth(secret), "X-Forwarded-Proto", "https"), cc, 400, "invalid_request"},
		{"https from an untrusted peer naming the proxy", stranger, http.MethodPost, "/oauth2/token",
			with(auth(secret), "X-Forwarded-Proto", "https", "X-Forwarded-For", "127.0.0.1"), cc, 400, "invalid_request"},
		{"unclean path", proxy, http.MethodPost, "//oauth2/token", auth(secret), cc, 400, "invalid_request"},
		{"GET token", stranger, http.MethodGet, "/oauth2/token?grant_type=client_credentials", auth(secret), nil, 400, "invalid_request"},
		{"discovery", stranger, http.MethodGet, "/.well-known/openid-configuration", nil, nil, 400, "invalid_request"},
		{"metrics on the main listener", stranger, http.MethodGet, "/metrics", nil, nil, 400, "invalid_request"},
		{"https, wrong secret", proxy, http.MethodPost, "/oauth2/token", with(auth("kwcs_wrong"), "X-Forwarded-Proto", "https"), cc, 401, "invalid_client"},
		{"https, client credentials", proxy, http.MethodPost, "/oauth2/token", with(auth(secret), "X-Forwarded-Proto", "https"), cc, 200, ""},
		{"https, password", proxy, http.MethodPost, "/oauth2/token", with(auth(secret), "X-Forwarded-Proto", "https"), login, 200, ""},
		{"https, discovery", proxy, http.MethodGet, "/.well-known/openid-configuration", http.Header{"X-Forwarded-Proto": {"https"}}, nil, 200, ""},
		{"healthz", stranger, http.MethodGet, "/healthz", nil, nil, 200, ""},
		{"readyz", stranger, http.MethodGet, "/readyz", nil, nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, tt.c, tt.method, p.URL+tt.path, tt.header, tt.form)
			var body map[string]any
			json.Unmarshal([]byte(r.body), &body)
			if r.status != tt.wantStatus || (tt.wantCode != "" && body["error"] != tt.wantCode) {
				t.Fatalf("%s, want %d %s", r, tt.wantStatus, tt.wantCode)
			}
			if loc := r.header.Get("Location"); loc != "" {
				t.Fatalf("Location: %s", loc)
			}
			if r.status == http.StatusOK && tt.form != nil && body["access_token"] == nil {
				t.Fatalf("no access token: %s", r)
			}
			if r.status != http.StatusBadRequest {
				return
			}
			if body["error_description"] != "HTTPS required" || r.header.Get("Cache-Control") != "no-store" ||
				r.header.Get("Content-Type") != "application/json; charset=utf-8" || strings.Contains(r.body, "access_token") {
				t.Fatalf("refusal: %v %s", r.header, r)
			}
		})
	}

	m := metricsAddr.FindStringSubmatch(p.Log.String())
	if m == nil {
		t.Fatalf("no metrics listener in the log:\n%s", p.Log.String())
	}
	if r := send(t, stranger, http.MethodGet, "http://"+m[1]+"/metrics", nil, nil); r.status != http.StatusOK ||
		!strings.Contains(r.body, `endpoint="https_required"`) {
		t.Fatalf("/metrics on its own listener: %d, or no https_required count", r.status)
	}
	logs := p.Log.String()
	if !strings.Contains(logs, `"msg":"request refused: not https"`) {
		t.Errorf("no log line for the refusals:\n%s", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, pw) {
		t.Error("a secret or password reached the log")
	}
}

// TestServePlainHTTPNeedsOptIn (TE-01): serve refuses to start where plain
// HTTP would reach beyond loopback: an https issuer without a certificate
// and without a trusted proxy (nothing could reach it legitimately), and a
// loopback http issuer on a non-loopback --addr. --insecure-http is the
// explicit way out (plain HTTP, logged with a warning); the local default
// (http://localhost:8080 on 127.0.0.1) needs none.
func TestServePlainHTTPNeedsOptIn(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name     string
		args     []string
		wantErrs []string
	}{
		{"https issuer, no certificate, no proxy", []string{"--addr", "127.0.0.1:0", "--issuer", "https://id.example.test"},
			[]string{"--tls-cert", "--trusted-proxies"}},
		{"loopback issuer on all interfaces", []string{"--addr", ":0"}, []string{"--addr", "--insecure-http"}},
		{"loopback issuer on 0.0.0.0", []string{"--addr", "0.0.0.0:0", "--issuer", "http://127.0.0.1:8080"}, []string{"--addr", "--insecure-http"}},
		{"loopback issuer on a hostname", []string{"--addr", "id.example.test:0"}, []string{"--addr", "--insecure-http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a serve that starts returns nil when ctx ends
			defer cancel()
			cmd := newRootCmd()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs(append([]string{"serve", "--database", "sqlite:keyward.db"}, tt.args...))
			err := cmd.ExecuteContext(ctx)
			for _, want := range tt.wantErrs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want one mentioning %s", err, strings.Join(tt.wantErrs, " and "))
				}
			}
			if _, err := os.Stat("keyward.db"); err == nil {
				t.Fatal("the refused start created a database")
			}
		})
	}

	s := startServe(t, "--issuer", "https://id.example.test", "--insecure-http")
	if !strings.Contains(s.Log.String(), `"tls":"off"`) || !strings.Contains(s.Log.String(), "never in production") {
		t.Fatalf("--insecure-http start not logged as plain HTTP with a warning:\n%s", s.Log.String())
	}
	if code, meta := get(t, s.URL+"/.well-known/openid-configuration"); code != http.StatusOK || meta["issuer"] != "https://id.example.test" {
		t.Fatalf("discovery over plain HTTP with --insecure-http: %d %v", code, meta)
	}
}

// TestServeTLSRefusesPlainHTTP (TE-01): with --tls-cert a plain-HTTP
// request to the listener gets Go's own 400 ("client sent an HTTP request
// to an HTTPS server"), with no Location, while TLS clients are served
// without any X-Forwarded-Proto.
func TestServeTLSRefusesPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, dir)
	p := startProcess(t, nil, "--demo", "--issuer", "https://127.0.0.1:8443", "--tls-cert", certFile, "--tls-key", keyFile,
		"--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir))
	secret, _ := demoCredentials(t, p)
	if !strings.Contains(p.Log.String(), `"tls":"direct"`) {
		t.Fatalf("serve does not log its TLS mode as direct:\n%s", p.Log.String())
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	auth := http.Header{"Authorization": {basicAuth(demoClientID, secret)}}

	plain := noRedirects(&http.Client{Timeout: 10 * time.Second})
	for _, path := range []string{"/oauth2/token", "/healthz"} {
		r := send(t, plain, http.MethodPost, p.URL+path, auth, cc)
		if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || !strings.Contains(r.body, "HTTP request to an HTTPS server") {
			t.Fatalf("plain HTTP to the TLS listener, %s: %s %v", path, r, r.header)
		}
	}

	tlsClient := noRedirects(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	base := "https://" + strings.TrimPrefix(p.URL, "http://")
	if r := send(t, tlsClient, http.MethodPost, base+"/oauth2/token", auth, cc); r.status != http.StatusOK || !strings.Contains(r.body, "access_token") {
		t.Fatalf("token over TLS: %s", r)
	}
	// TLS 1.1 and older are refused (--tls-cert serves TLS 1.2 or newer).
	old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if res, err := old.Get(base + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatal("a TLS 1.1 client was served")
	}
}

// writeTestCert writes a fresh self-signed certificate for 127.0.0.1 and its
// key into dir and returns their paths and a pool that trusts it.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keyward test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
