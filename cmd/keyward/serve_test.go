package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// server is a keyward serve running in-process on a loopback port.
type server struct {
	URL    string
	Out    *testsupport.SyncBuffer // standard output (the --demo credentials)
	Log    *testsupport.SyncBuffer // the JSON log
	cancel context.CancelFunc
	task   *testsupport.Task
}

// startServe runs the real serve command with args (plus --addr on a free
// port) and waits until it listens. The server stops when the test ends.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{Out: &testsupport.SyncBuffer{}, Log: &testsupport.SyncBuffer{}, cancel: cancel}
	cmd := newRootCmd()
	cmd.SetOut(s.Out)
	cmd.SetErr(s.Log)
	cmd.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...))
	s.task = testsupport.Go(func() error { return cmd.ExecuteContext(ctx) })
	t.Cleanup(func() { s.stop(t) })
	s.URL = "http://" + testsupport.WaitFor(t, "serve", s.Log, testsupport.ServingAddr, s.task, 30*time.Second)[1]
	return s
}

func (s *server) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	s.task.Stopped(t, "serve", 20*time.Second)
}

// get GETs url and returns the status and the JSON object answered, if any.
func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	code, b, _ := testsupport.Get(t, url)
	var body map[string]any
	json.Unmarshal(b, &body)
	return code, body
}

// TestServeEmbeddedDefaults runs serve with no configuration in an empty
// directory: SQLite keyward.db and a generated keyward.kek (0600, with a
// warning), answering /healthz and /readyz.
func TestServeEmbeddedDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := startServe(t)
	if code, _ := get(t, s.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	code, body := get(t, s.URL+"/readyz")
	if code != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("/readyz %d %v", code, body)
	}
	if _, err := os.Stat("keyward.db"); err != nil {
		t.Fatalf("no keyward.db: %v", err)
	}
	fi, err := os.Stat("keyward.kek")
	if err != nil {
		t.Fatalf("no keyward.kek: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyward.kek mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(s.Log.String(), "production must supply its own") {
		t.Fatalf("no warning about the generated key-encryption key:\n%s", s.Log.String())
	}
	_, meta := get(t, s.URL+"/.well-known/openid-configuration")
	if meta["issuer"] != "http://localhost:8080" {
		t.Fatalf("issuer %v", meta["issuer"])
	}
	s.stop(t)

	// A second start reuses the key-encryption key and the key set.
	s2 := startServe(t)
	if code, _ := get(t, s2.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after restart %d", code)
	}
}

func TestServeDemo(t *testing.T) {
	t.Chdir(t.TempDir())
	s := startServe(t, "--demo")
	out := s.Out.String()
	for _, want := range []string{"client_id:     demo-app", "client_secret: kwcs_", "username:      demo", "curl -s -u 'demo-app:kwcs_"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(s.Log.String(), "kwcs_") {
		t.Fatal("the demo secret reached the log")
	}
	s.stop(t)
	// On a database that is no longer empty, --demo creates nothing.
	s2 := startServe(t, "--demo")
	if !strings.Contains(s2.Out.String(), "not empty") {
		t.Fatalf("second --demo: %s", s2.Out.String())
	}
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"http issuer off loopback", []string{"--issuer", "http://id.example.com"}, "must be https"},
		{"issuer with trailing slash", []string{"--issuer", "https://id.example.com/"}, "--issuer"},
		{"issuer with query", []string{"--issuer", "https://id.example.com?x=1"}, "--issuer"},
		{"tls cert without key", []string{"--tls-cert", "cert.pem"}, "--tls-key"},
		{"bad proxy", []string{"--trusted-proxies", "10.0.0.0/33"}, "--trusted-proxies"},
		{"bad duration", []string{"--key-rotation-period", "daily"}, "key-rotation-period"},
		{"short rotation", []string{"--key-rotation-period", "10s"}, "rotation"},
		{"bad key size", []string{"--key-size", "1024"}, "1024"},
		{"kek on the command line", []string{"--key-encryption-key", "bm90IDMyIGJ5dGVz"}, "KEYWARD_KEY_ENCRYPTION_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, "sqlite:keyward.db", "", append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q\n%s", err, tt.wantErr, out)
			}
		})
	}
}

var metricsAddr = regexp.MustCompile(`"msg":"metrics serving","addr":"([^"]+)"`)

// TestServeMetricsAddr moves /metrics off the public listener (AD-09).
func TestServeMetricsAddr(t *testing.T) {
	t.Chdir(t.TempDir())
	s := startServe(t, "--metrics-addr", "127.0.0.1:0")
	m := metricsAddr.FindStringSubmatch(s.Log.String())
	if m == nil {
		t.Fatalf("no metrics listener in the log:\n%s", s.Log.String())
	}
	if code, _ := get(t, s.URL+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the public listener: %d", code)
	}
	code, b, _ := testsupport.Get(t, "http://"+m[1]+"/metrics")
	if code != http.StatusOK || !strings.Contains(string(b), "keyward_http_requests_total") {
		t.Fatalf("/metrics on its own listener: %d", code)
	}
}
