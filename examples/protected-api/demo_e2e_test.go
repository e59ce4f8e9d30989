package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

var (
	apiListening = regexp.MustCompile(`"msg":"protected-api listening","addr":"([^"]+)"`)
	demoSecrets  = regexp.MustCompile(`client_secret: (\S+)[\s\S]*password:\s+(\S+)`)
)

// startKeywardDemo builds keyward and runs "keyward serve --demo" in a fresh
// directory, as docs/verify.md does with go run, on a free loopback port that
// is also its issuer. It returns the issuer and the demo client secret and
// user password.
func startKeywardDemo(t *testing.T) (issuer, secret, password string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build keyward with")
	}
	bin := testsupport.BuildKeyward(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port, for the issuer to name
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer = "http://" + addr

	// With no key-encryption key and SQLite, serve generates keyward.kek
	// next to keyward.db in its working directory, as on a first run.
	cmd := exec.Command(bin, "serve", "--demo", "--addr", addr, "--issuer", issuer, "--database", "sqlite:keyward.db")
	cmd.Dir = t.TempDir()
	p := testsupport.StartProcess(t, cmd)
	// The credentials come on stdout, a separate pipe from the log: they
	// may arrive after the "serving" line.
	m := p.WaitOut(t, demoSecrets)
	return issuer, m[1], m[2]
}

// TestAgainstKeywardDemo is docs/verify.md's walk-through as a test: keyward
// serve --demo as a process, the example API run against it by discovery,
// and tokens of the demo user from the password grant.
func TestAgainstKeywardDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keyward")
	}
	issuer, secret, password := startKeywardDemo(t)

	ctx := t.Context()
	var logs testsupport.SyncBuffer
	example := testsupport.Go(func() error {
		return run(ctx, []string{"--issuer", issuer, "--audience", "api", "--addr", "127.0.0.1:0"}, &logs)
	})
	api := "http://" + testsupport.WaitFor(t, "the example", &logs, apiListening, example, 30*time.Second)[1]
	t.Cleanup(func() { example.Stopped(t, "the example", 10*time.Second) })
	// t.Context is cancelled before Cleanup runs, which stops the example.

	token := func(scope string) string {
		t.Helper()
		form := url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {password}, "scope": {scope}}
		req := testsupport.FormRequest(t, http.MethodPost, issuer+"/oauth2/token", form)
		req.SetBasicAuth("demo-app", secret)
		status, body, _ := testsupport.Do(t, nil, req)
		var tr struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if err := json.Unmarshal(body, &tr); status != http.StatusOK || err != nil || tr.Scope != scope {
			t.Fatalf("password grant for %q: %d %s", scope, status, body)
		}
		return tr.AccessToken
	}
	withRead, withoutRead := token("openid api:read"), token("openid")

	// The subject the API sees is the one Keyward's userinfo names.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+withRead)
	status, body, _ := testsupport.Do(t, nil, req)
	var info struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(body, &info); status != http.StatusOK || err != nil || info.Sub == "" {
		t.Fatalf("userinfo: %d %s", status, body)
	}
	wantProtected, _ := json.Marshal(map[string]string{"message": "Protected resource!", "sub": info.Sub})

	checkRoutes(t, api, []routeCase{
		{"protected", "/protected", withRead, 200, string(wantProtected), ""},
		{"orders with api:read", "/orders", withRead, 200, `"orders":[`, ""},
		{"protected without a token", "/protected", "", 401, "", `Bearer realm="api"`},
		{"orders without a token", "/orders", "", 401, "", `Bearer realm="api"`},
		{"protected without api:read", "/protected", withoutRead, 200, `"message":"Protected resource!"`, ""},
		{"orders without api:read", "/orders", withoutRead, 403, `"error":"insufficient_scope"`, `Bearer realm="api", error="insufficient_scope"`},
		{"a tampered token", "/protected", withRead[:len(withRead)-4] + "AAAA", 401, `"error":"invalid_token"`, `Bearer realm="api", error="invalid_token"`},
	})
}
