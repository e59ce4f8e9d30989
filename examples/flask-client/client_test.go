// Package flaskclient holds the test of the Flask client example (app.py): the
// tutorial's /login through Keyward's token endpoint with requests-oauthlib.
package flaskclient

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// TestFlaskClient: a user signs in through the client's /login (password grant with
// HTTP Basic client authentication and the scope passed explicitly), /me reaches the
// Flask resource server with the access token, /refresh renews the tokens twice in a
// row (the rotated refresh token is stored each time), and a wrong password is 401.
func TestFlaskClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keyward")
	}
	py := testsupport.Python(t, "flask", "jwt", "requests", "requests_oauthlib", "cryptography")
	bin := testsupport.BuildKeyward(t)
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "keyward.db")
	cli := func(stdin string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--database", dsn}, args...)...)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keyward %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}
	var c struct {
		Secret string `json:"client_secret"`
	}
	json.Unmarshal(cli("", "clients", "create", "--id", "web", "--grant", "password", "--grant", "refresh_token",
		"--scope", "openid api:read api:write", "--audience", "api", "--output", "json"), &c)
	const pw = "a flask user's passphrase"
	var u struct {
		ID string `json:"id"`
	}
	json.Unmarshal(cli(pw+"\n", "users", "create", "--username", "alice", "--password-stdin", "--output", "json"), &u)

	addr := testsupport.FreeAddr(t)
	issuer := "http://" + addr
	serve := exec.Command(bin, "serve", "--addr", addr, "--issuer", issuer, "--database", dsn)
	serve.Dir = dir
	testsupport.StartProcess(t, serve)

	apiAddr, webAddr := testsupport.FreeAddr(t), testsupport.FreeAddr(t)
	_, apiPort, _ := net.SplitHostPort(apiAddr)
	_, webPort, _ := net.SplitHostPort(webAddr)
	testsupport.StartPython(t, py, "../flask-resource-server/app.py", "http://"+apiAddr+"/healthz",
		"KEYWARD_ISSUER="+issuer, "KEYWARD_AUDIENCE=api", "PORT="+apiPort)
	testsupport.StartPython(t, py, "app.py", "http://"+webAddr+"/me",
		"KEYWARD_ISSUER="+issuer, "KEYWARD_CLIENT_ID=web", "KEYWARD_CLIENT_SECRET="+c.Secret,
		"API_URL=http://"+apiAddr, "PORT="+webPort)

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	call := func(method, path, user, pass string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+webAddr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	if status, body := call("POST", "/login", "alice", pw+"x"); status != 401 || body["error"] != "invalid_grant" {
		t.Errorf("wrong password: %d %v", status, body)
	}
	if status, body := call("POST", "/login", "alice", pw); status != 200 || fmt.Sprint(body["scope"]) != "[api:read]" {
		t.Fatalf("login: %d %v (want exactly the scope asked for)", status, body)
	}
	me := func(what string) {
		t.Helper()
		status, body := call("GET", "/me", "", "")
		api, _ := body["api"].(map[string]any)
		if status != 200 || body["api_status"] != float64(200) || api["sub"] != u.ID {
			t.Fatalf("%s: /me %d %v, want the API's 200 naming %s", what, status, body, u.ID)
		}
	}
	me("after login")
	for i := range 2 {
		if status, body := call("POST", "/refresh", "", ""); status != 200 {
			t.Fatalf("refresh %d: %d %v", i+1, status, body)
		}
		me("after a refresh")
	}
}
