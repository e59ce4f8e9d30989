package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
)

// TestServeConfigFileProcess: a keyward serve process configured by its
// --config file alone listens on the file's address, serves the file's
// issuer from the file's database, and publishes the JWKS with the file's
// max-age; a variable still wins over the file.
func TestServeConfigFileProcess(t *testing.T) {
	dir := t.TempDir()
	addr := testsupport.FreeAddr(t)
	issuer := "http://" + addr
	path := writeFile(t, "keyward.yaml", `
addr: `+addr+`
issuer: `+issuer+`
database: sqlite:`+filepath.Join(dir, "keyward.db")+`
jwks-max-age: 2m
log-format: text
`)
	cmd := exec.Command(os.Args[0], "serve", "--config", path)
	cmd.Dir = dir // where the defaults would put a database, were the file not read
	cmd.Env = append(os.Environ(), "KEYWARD_TEST_RUN_MAIN=1", "KEYWARD_LOG_FORMAT=json")
	p := testsupport.StartProcess(t, cmd) // it reads the JSON log: KEYWARD_LOG_FORMAT won over the file
	if p.URL != issuer {
		t.Fatalf("serving on %s, want the file's %s", p.URL, issuer)
	}

	status, body, _ := testsupport.Get(t, issuer+"/.well-known/openid-configuration")
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &meta); status != 200 || err != nil {
		t.Fatalf("discovery: %d %v %s", status, err, body)
	}
	if meta.Issuer != issuer {
		t.Errorf("issuer %q, want the file's %q", meta.Issuer, issuer)
	}
	status, _, h := testsupport.Get(t, meta.JWKSURI)
	if cc := h.Get("Cache-Control"); status != 200 || cc != "public, max-age=120" {
		t.Errorf("JWKS: %d, Cache-Control %q, want the file's max-age=120", status, cc)
	}
	if _, err := os.Stat(filepath.Join(dir, "keyward.db")); err != nil {
		t.Errorf("serve did not use the file's database: %v", err)
	}
}
