package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// The Node.js relying party: openid-client v6 from the npm registry, pinned
// by testdata/openid-client/package-lock.json. The test needs node (20 or
// later) and npm; without them it skips, unless KEYWARD_NODE_REQUIRED is
// set (CI sets it). npm ci runs once per lock file: the modules are kept
// under the user's cache directory ($XDG_CACHE_HOME or ~/.cache)/keyward,
// so reruns need no network.

const nodeRPDir = "testdata/openid-client"

// nodeOrSkip finds node and npm, or skips or fails the test.
func nodeOrSkip(t *testing.T) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	why := ""
	switch {
	case errNode != nil || errNpm != nil:
		why = "node or npm not found"
	default:
		out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0] >= 20").Output()
		if err != nil || strings.TrimSpace(string(out)) != "true" {
			why = "openid-client v6 needs node 20 or later"
		}
	}
	if why != "" {
		if os.Getenv("KEYWARD_NODE_REQUIRED") != "" {
			t.Fatalf("%s and KEYWARD_NODE_REQUIRED is set: install nodejs and npm (apt-get install -y nodejs npm)", why)
		}
		t.Skipf("%s: install nodejs and npm to run the openid-client end-to-end test (set KEYWARD_NODE_REQUIRED=1 to make this a failure)", why)
	}
	return node, npm
}

// nodeModules returns a node_modules directory holding the locked
// openid-client, installing it with npm ci into the cache on first use.
func nodeModules(t *testing.T, npm string) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(nodeRPDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(cache, "keyward", "e2e-openid-client-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "openid-client", "package.json")); err == nil {
		return modules
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "installing-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(nodeRPDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("KEYWARD_NODE_REQUIRED") == "" {
			t.Skipf("npm ci openid-client failed (no registry?): %v\n%s", err, out)
		}
		t.Fatalf("npm ci openid-client: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil { // another run won the race: use its copy
		if _, err := os.Stat(filepath.Join(modules, "openid-client", "package.json")); err != nil {
			t.Fatalf("install openid-client into %s: %v", dir, err)
		}
	}
	return modules
}

// nodeRP is the running rp.mjs: its standard input and its output lines.
type nodeRP struct {
	in    io.WriteCloser
	lines chan string
	log   *testsupport.SyncBuffer
}

func startNodeRP(t *testing.T, node, modules string, args ...string) *nodeRP {
	t.Helper()
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join(nodeRPDir, "rp.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rp.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, append([]string{filepath.Join(dir, "rp.mjs")}, args...)...)
	rp := &nodeRP{lines: make(chan string, 4), log: &testsupport.SyncBuffer{}}
	cmd.Stderr = rp.log
	if rp.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			rp.lines <- sc.Text()
		}
		close(rp.lines)
	}()
	t.Cleanup(func() {
		rp.in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return rp
}

// next decodes the script's next output line into v.
func (rp *nodeRP) next(t *testing.T, v any) {
	t.Helper()
	select {
	case line, ok := <-rp.lines:
		if !ok {
			t.Fatalf("the openid-client RP ended:\n%s", rp.log.String())
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			t.Fatalf("openid-client RP printed %q: %v", line, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the openid-client RP said nothing for a minute:\n%s", rp.log.String())
	}
}

// TestAuthorizeOpenIDClient is issue 15's second relying party: Chromium
// goes through the same login (password and TOTP) and consent for
// openid-client v6 on Node.js, which builds the request (PKCE S256, state,
// nonce), exchanges the code and validates the ID token; the test checks
// the claims it prints, then follows its end-session URL.
func TestAuthorizeOpenIDClient(t *testing.T) {
	node, npm := nodeOrSkip(t)
	modules := nodeModules(t, npm)
	b := newChrome(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	callbacks := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		callbacks <- base + r.URL.RequestURI()
		page(w, http.StatusOK, "Code received", "")
	})
	mux.HandleFunc("GET /logged-out", func(w http.ResponseWriter, r *http.Request) {
		page(w, http.StatusOK, "Signed out", "")
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	k := startE2EKeyward(t, "sqlite:"+t.TempDir()+"/keyward.db",
		map[string][2]string{"node-rp": {base + "/callback", base + "/logged-out"}})
	secret, _ := enrolTOTP(t, b, k)

	rp := startNodeRP(t, node, modules, k.URL, "node-rp", base+"/callback", base+"/logged-out")
	var start struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	rp.next(t, &start)
	if !strings.HasPrefix(start.AuthorizationURL, k.URL+"/oauth2/authorize?") ||
		!strings.Contains(start.AuthorizationURL, "code_challenge_method=S256") {
		t.Fatalf("authorization URL %s", start.AuthorizationURL)
	}
	b.open(start.AuthorizationURL)
	wantAt(t, b, k.URL+"/login?req=")
	b.typeInto("username", "alice")
	b.typeInto("password", e2ePassword)
	b.submit()
	wantAt(t, b, k.URL+"/login/totp")
	b.typeInto("code", totpCode(t, secret, time.Now().Add(30*time.Second)))
	b.submit()
	wantAt(t, b, k.URL+"/consent?req=")
	b.click(`button[value="approve"]`)
	wantAt(t, b, base+"/callback?")
	b.shot("openid-client-callback")
	var callback string
	select {
	case callback = <-callbacks:
	default:
		t.Fatal("the callback was not served")
	}
	if _, err := io.WriteString(rp.in, callback+"\n"); err != nil {
		t.Fatal(err)
	}
	var done struct {
		Claims        map[string]any `json:"claims"`
		Scope         string         `json:"scope"`
		EndSessionURL string         `json:"end_session_url"`
	}
	rp.next(t, &done)
	c := done.Claims
	if c["sub"] != k.aliceID || c["iss"] != k.URL || c["aud"] != "node-rp" || c["email"] != "alice@example.com" ||
		c["nonce"] == nil || c["auth_time"] == nil || strings.Join(anyStrings(c["amr"]), " ") != "pwd otp mfa" {
		t.Fatalf("openid-client validated the ID token, claims %v", c)
	}
	if done.Scope != "openid profile email" {
		t.Fatalf("scope %q", done.Scope)
	}
	t.Logf("openid-client: claims %v", c)

	// RP-initiated logout with the URL openid-client built.
	if !strings.HasPrefix(done.EndSessionURL, k.URL+"/oauth2/logout?") || !strings.Contains(done.EndSessionURL, "id_token_hint=") {
		t.Fatalf("end-session URL %s", done.EndSessionURL)
	}
	b.open(done.EndSessionURL)
	wantAt(t, b, base+"/logged-out?state=bye-")
	b.open(k.URL + "/account/totp") // signed-in users only
	wantAt(t, b, k.URL+"/login")
}
