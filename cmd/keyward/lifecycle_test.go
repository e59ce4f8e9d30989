package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Log lines of the shutdown phases (serve.go), waited for by the tests.
var (
	drainingLog = regexp.MustCompile(`"msg":"shutdown: draining`)
	closingLog  = regexp.MustCompile(`"msg":"shutdown: closing the listener`)
	reloadedLog = regexp.MustCompile(`"msg":"SIGHUP: TLS certificate reloaded"`)
	keptLog     = regexp.MustCompile(`"msg":"SIGHUP: TLS certificate not reloaded`)
	ignoredLog  = regexp.MustCompile(`"msg":"SIGHUP ignored`)
)

// TestServeDrainsOnSIGTERM: at SIGTERM a server with --drain-delay 2s
// answers /readyz with 503 ("shutdown": "draining") and the healthcheck
// command fails, while the token endpoint still issues tokens; a request
// whose body is still on its way when the signal arrives, and ends only
// after the listener closed, is answered 200; the process exits 0, and the
// audit row of that last token (written behind the answer) is in
// PostgreSQL.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	dir := t.TempDir()
	p := startProcess(t, nil, "--demo", "--database", dsn, "--key-encryption-key-file", writeKEK(t, dir),
		"--drain-delay", "2s", "--shutdown-timeout", "10s")
	secret, _ := demoCredentials(t, p)
	if code := healthcheck(t, p.URL+"/readyz"); code != 0 {
		t.Fatalf("healthcheck of a ready server exited %d", code)
	}

	// The slow request: headers and half the body now, the rest after the
	// listener has closed.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", basicAuth(demoClientID, secret), len(form))
	half := len(form) / 2
	if _, err := io.WriteString(conn, head+form[:half]); err != nil {
		t.Fatal(err)
	}

	p.Signal(t, syscall.SIGTERM)
	testsupport.WaitFor(t, "keyward process", p.Log, drainingLog, nil, 5*time.Second)
	code, body := get(t, p.URL+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" || checks["shutdown"] != "draining" {
		t.Fatalf("/readyz while draining: %d %v", code, body)
	}
	if code := healthcheck(t, p.URL+"/readyz"); code != 1 {
		t.Fatalf("healthcheck of a draining server exited %d, want 1", code)
	}
	r := send(t, &http.Client{Timeout: 10 * time.Second}, http.MethodPost, p.URL+"/oauth2/token",
		http.Header{"Authorization": {basicAuth(demoClientID, secret)}}, url.Values{"grant_type": {"client_credentials"}})
	if r.status != http.StatusOK || !strings.Contains(r.body, "access_token") {
		t.Fatalf("token endpoint while draining: %s", r)
	}

	testsupport.WaitFor(t, "keyward process", p.Log, closingLog, nil, 10*time.Second)
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts connections after the drain delay")
	}
	if _, err := io.WriteString(conn, form[half:]); err != nil {
		t.Fatalf("finish the slow request's body: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the slow request got no answer: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("the slow request: %d %s", res.StatusCode, b)
	}

	if err, ended := p.Exited(15 * time.Second); !ended || err != nil {
		t.Fatalf("keyward after SIGTERM: ended %v, %v\n%s", ended, err, p.Log.String())
	}
	db := storagetest.Open(t, dsn)
	jti := tokenClaim(t, tok.AccessToken, "jti")
	evs, err := db.AuditEvents(t.Context(), storage.AuditFilter{Subject: jti})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != "token_issued" {
		t.Fatalf("audit rows of the last token (jti %s): %+v", jti, evs)
	}
	for _, phase := range []string{"shutdown: closing the mail queue", "shutdown: flushing the audit queue", "shutdown complete"} {
		if !strings.Contains(p.Log.String(), phase) {
			t.Errorf("no log line %q", phase)
		}
	}
	if strings.Contains(p.Log.String(), secret) {
		t.Error("the client secret reached the log")
	}
}

// TestServeSecondSignalCutsDrain: a second SIGTERM during a long
// --drain-delay ends the wait at once, and the process still exits 0.
// SIGHUP on a server without --tls-cert is logged and otherwise ignored.
func TestServeSecondSignalCutsDrain(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, nil, "--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir),
		"--drain-delay", "1m")

	p.Signal(t, syscall.SIGHUP)
	testsupport.WaitFor(t, "keyward process", p.Log, ignoredLog, nil, 5*time.Second)
	if code, _ := get(t, p.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after SIGHUP: %d", code)
	}

	p.Signal(t, syscall.SIGTERM)
	testsupport.WaitFor(t, "keyward process", p.Log, drainingLog, nil, 5*time.Second)
	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	if err, ended := p.Exited(10 * time.Second); !ended || err != nil {
		t.Fatalf("keyward after a second SIGTERM: ended %v, %v\n%s", ended, err, p.Log.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second signal took %v to end a 1m drain delay", d)
	}
	if !strings.Contains(p.Log.String(), "drain delay cut short") {
		t.Errorf("the cut drain is not logged:\n%s", p.Log.String())
	}
}

// TestServeReloadsCertificateOnSIGHUP: with --tls-cert, SIGHUP makes new
// TLS connections see the certificate now in the files, while a keep-alive
// connection opened before keeps working; a broken certificate file keeps
// the certificate in use.
func TestServeReloadsCertificateOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certA, keyA, _ := writeTestCert(t, t.TempDir())
	certB, keyB, _ := writeTestCert(t, t.TempDir())
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	place := func(cert, key string) {
		t.Helper()
		for _, f := range [][2]string{{cert, certFile}, {key, keyFile}} {
			b, err := os.ReadFile(f[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f[1]+".new", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f[1]+".new", f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	place(certA, keyA)
	derA, derB := certDER(t, certA), certDER(t, certB)
	pool := x509.NewCertPool()
	for _, der := range [][]byte{derA, derB} {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
	}
	p := startProcess(t, nil, "--issuer", "https://127.0.0.1:8443", "--tls-cert", certFile, "--tls-key", keyFile,
		"--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir))
	base := "https://" + strings.TrimPrefix(p.URL, "http://")

	// served GETs /healthz over c and returns the certificate the
	// connection shows and whether it was an idle one reused.
	served := func(c *http.Client) (der []byte, reused bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.TLS == nil {
			t.Fatalf("/healthz over TLS: %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].Raw, reused
	}
	newClient := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	kept := newClient()
	if der, _ := served(kept); !bytes.Equal(der, derA) {
		t.Fatal("the server does not show certificate A at start")
	}

	place(certB, keyB)
	p.Signal(t, syscall.SIGHUP)
	testsupport.WaitFor(t, "keyward process", p.Log, reloadedLog, nil, 5*time.Second)
	if der, _ := served(newClient()); !bytes.Equal(der, derB) {
		t.Fatal("a new connection after SIGHUP does not see certificate B")
	}
	if der, reused := served(kept); !reused || !bytes.Equal(der, derA) {
		t.Fatalf("the keep-alive connection opened before SIGHUP: reused %v, still certificate A %v", reused, bytes.Equal(der, derA))
	}

	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	testsupport.WaitFor(t, "keyward process", p.Log, keptLog, nil, 5*time.Second)
	if der, _ := served(newClient()); !bytes.Equal(der, derB) {
		t.Fatal("after a failed reload a new connection does not see certificate B")
	}
}

// TestHealthcheck: keyward healthcheck exits 0 when the probe answers 200,
// and 1 on any other status, on a refused connection and on a server that
// does not answer within 2 s.
func TestHealthcheck(t *testing.T) {
	status := func(code int) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(s.Close)
		return s.URL + "/readyz"
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/readyz"
	ln.Close()

	tests := []struct {
		name     string
		url      string
		wantCode int
		maxTime  time.Duration
	}{
		{"200", status(http.StatusOK), 0, 5 * time.Second},
		{"503", status(http.StatusServiceUnavailable), 1, 5 * time.Second},
		{"redirect", status(http.StatusFound), 1, 5 * time.Second},
		{"refused", refused, 1, 5 * time.Second},
		{"no answer", slow.URL + "/readyz", 1, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if code := healthcheck(t, tt.url); code != tt.wantCode {
				t.Fatalf("exit %d, want %d", code, tt.wantCode)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// healthcheck runs "keyward healthcheck --url target" in its own process
// and returns its exit status.
func healthcheck(t *testing.T, target string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "healthcheck", "--url", target)
	cmd.Env = append(os.Environ(), "KEYWARD_TEST_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run healthcheck: %v", err)
	}
	if strings.Contains(string(out), "PASS") || strings.Contains(string(out), "FAIL") {
		t.Fatalf("the test binary ran tests instead of keyward:\n%s", out)
	}
	return cmd.ProcessState.ExitCode()
}

// certDER is the DER of the certificate in a PEM file.
func certDER(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", file)
	}
	return blk.Bytes
}

// tokenClaim is one string claim of a compact JWS, unverified.
func tokenClaim(t *testing.T, tok, name string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	s, _ := claims[name].(string)
	return s
}

// TestServeShutdownFlagsRefused: a negative --drain-delay and a
// --shutdown-timeout that leaves no time are refused before serve opens
// anything.
func TestServeShutdownFlagsRefused(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"--drain-delay", "-1s"}, {"--shutdown-timeout", "0s"}} {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"serve", "--database", "sqlite:keyward.db"}, args...))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // a serve that starts returns nil when ctx ends
		err := cmd.ExecuteContext(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Fatalf("%v: err = %v, want one naming %s", args, err, args[0])
		}
		if _, err := os.Stat("keyward.db"); err == nil {
			t.Fatalf("%v: the refused start created a database", args)
		}
	}
}
