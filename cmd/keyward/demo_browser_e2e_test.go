package main

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

var (
	demoBrowserLine = regexp.MustCompile(`go run ./examples/oidc-login -issuer (\S+)`)
	exampleOpen     = regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+/) in your browser`)
)

// TestDemoBrowserSignIn follows the README's browser lines: keyward serve
// --demo (issuer http://localhost:PORT, as the default is on 8080), then
// examples/oidc-login with the -issuer the demo output prints; Chromium
// opens the URL the example prints, signs the demo user in on Keyward's
// pages, consents for demo-spa (its loopback redirect URI on the example's
// port), and the example verifies the ID token, prints the claims and ends.
func TestDemoBrowserSignIn(t *testing.T) {
	b := newChrome(t)
	dir := t.TempDir()
	example := filepath.Join(dir, "oidc-login")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", example, "github.com/keyward/keyward/examples/oidc-login").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/oidc-login: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	p := startProcess(t, nil, "--demo", "--database", "sqlite:"+dir+"/keyward.db", "--key-encryption-key-file", writeKEK(t, dir),
		"--addr", addr, "--issuer", "http://localhost:"+port)
	_, pw := demoCredentials(t, p)
	issuer := p.WaitOut(t, demoBrowserLine)[1]
	if issuer != "http://localhost:"+port {
		t.Fatalf("the demo output names issuer %s", issuer)
	}

	cmd := exec.CommandContext(t.Context(), example, "-issuer", issuer)
	out := &testsupport.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := testsupport.Go(cmd.Wait)
	t.Cleanup(func() { cmd.Process.Kill(); ended.Wait(10 * time.Second) })
	open := testsupport.WaitFor(t, "oidc-login", out, exampleOpen, ended, 30*time.Second)[1]

	b.open(open)
	wantAt(t, b, issuer+"/login?req=")
	b.typeInto("username", "demo")
	b.typeInto("password", pw)
	b.submit()
	wantAt(t, b, issuer+"/consent?req=")
	if !strings.Contains(b.text("main"), "Keyward demo (browser sign-in)") {
		t.Fatalf("consent page: %q", b.text("main"))
	}
	b.shot("demo-consent")
	b.click(`button[value="approve"]`)
	wantAt(t, b, strings.TrimSuffix(open, "/")+"/callback?")
	if got := b.text("h1"); got != "Signed in" {
		t.Fatalf("the example answered %q:\n%s", got, out.String())
	}
	b.shot("demo-signed-in")
	if err, done := ended.Wait(20 * time.Second); !done || err != nil {
		t.Fatalf("the example did not end well (ended %v, %v):\n%s", done, err, out.String())
	}
	if s := out.String(); !strings.Contains(s, `"preferred_username": "demo"`) || !strings.Contains(s, `"aud": "demo-spa"`) {
		t.Fatalf("the example printed:\n%s", s)
	}
}
