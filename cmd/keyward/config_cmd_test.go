package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/keys"
)

// TestConfigPrintRedacts: config print shows the values that flags,
// variables and the file set, each with its source, in YAML and in JSON,
// and none of the secrets planted in the database URL, the SMTP URL and the
// key-encryption key.
func TestConfigPrintRedacts(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	secrets := []string{"dsn-pw-7f3a", "query-pw-c0de", "smtp-pw-91c2", kek64}
	dir := t.TempDir()
	t.Chdir(dir)
	path := writeFile(t, "keyward.yaml", `
database: postgres://kwuser:dsn-pw-7f3a@db.internal:5432/keyward?sslmode=disable&password=query-pw-c0de
smtp-url: smtp://mailer:smtp-pw-91c2@smtp.example.test:587
mail-from: Keyward <noreply@example.test>
key-encryption-key: `+kek64+`
issuer: https://id.example.test
trusted-proxies: [10.0.0.0/8, 192.0.2.7]
registration: true
key-size: 3072
key-encryption-key-file: /run/secrets/not-a-secret
`)
	os.Chmod(path, 0o600)
	t.Setenv("KEYWARD_ACCESS_TOKEN_TTL", "20m")

	yamlOut, logs, err := keyward(t, "config", "print", "--config", path, "--shutdown-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	jsonOut, _, err := keyward(t, "config", "print", "--config", path, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{yamlOut, jsonOut, logs} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("config print shows the secret %q:\n%s", s, out)
			}
		}
	}

	wantLines := []string{ // value, then the source
		`addr: 127.0.0.1:8080 +# default`,
		`access-token-ttl: 20m0s +# env`,
		`shutdown-timeout: 3s +# flag`,
		`issuer: https://id.example.test +# file`,
		`trusted-proxies: \[10.0.0.0/8, 192.0.2.7\] +# file`,
		`registration: true +# file`,
		`key-size: 3072 +# file`,
		`database: postgres://kwuser:REDACTED@db.internal:5432/keyward\?password=REDACTED&sslmode=disable +# file`,
		`smtp-url: smtp://mailer:REDACTED@smtp.example.test:587 +# file`,
		`key-encryption-key: REDACTED +# file`,
		`key-encryption-key-file: /run/secrets/not-a-secret +# file`,
		`mail-from: Keyward <noreply@example.test> +# file`,
		`# password-grant-refresh-token-ttl: +# default`,
	}
	for _, re := range wantLines {
		if !regexp.MustCompile(`(?m)^` + re + `$`).MatchString(yamlOut) {
			t.Errorf("YAML has no line %s:\n%s", re, yamlOut)
		}
	}
	if strings.Contains(yamlOut, "output:") || strings.Contains(yamlOut, "config:") {
		t.Errorf("YAML shows --output or --config:\n%s", yamlOut)
	}

	var got map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &got); err != nil {
		t.Fatalf("JSON: %v\n%s", err, jsonOut)
	}
	wantJSON := map[string]any{
		"issuer": "https://id.example.test", "registration": true, "key-size": 3072.0,
		"trusted-proxies": []any{"10.0.0.0/8", "192.0.2.7"}, "key-encryption-key": "REDACTED",
		"password-grant-forbidden-scopes": []any{}, "introspect-revoke-rate": 50.0,
	}
	for k, want := range wantJSON {
		if g, _ := json.Marshal(got[k]); string(g) != mustJSON(t, want) {
			t.Errorf("JSON %s = %s, want %s", k, g, mustJSON(t, want))
		}
	}
	if _, ok := got["password-grant-refresh-token-ttl"]; ok {
		t.Error("JSON gives password-grant-refresh-token-ttl, which follows --refresh-token-ttl unless set")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigPrintFeedsBack: what config print prints, YAML or JSON, read
// back with --config makes the same configuration.
func TestConfigPrintFeedsBack(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	path := writeFile(t, "keyward.yaml", `
issuer: https://id.example.test
trusted-proxies: [10.0.0.0/8]
password-grant-forbidden-scopes: ["api:write", admin]
registration: true
introspect-revoke-rate: 0.5
mail-from: '"Keyward #1" <noreply@example.test>'
password-grant-refresh-token-ttl: 48h
`)
	want, _, err := keyward(t, "config", "print", "--config", path, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	yamlOut, _, err := keyward(t, "config", "print", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, printed := range []struct{ name, content string }{{"printed.yaml", yamlOut}, {"printed.json", want}} {
		again := filepath.Join(dir, printed.name)
		if err := os.WriteFile(again, []byte(printed.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _, err := keyward(t, "config", "print", "--config", again, "-o", "json")
		if err != nil {
			t.Fatalf("%s fed back: %v\n%s", printed.name, err, printed.content)
		}
		if got != want {
			t.Errorf("%s fed back prints\n%s\nwant\n%s", printed.name, got, want)
		}
	}
	// And serve takes it.
	if _, err := serveConfigOf(t, nil, "--config", filepath.Join(dir, "printed.yaml")); err != nil {
		t.Errorf("serve with the printed file: %v", err)
	}
}

// TestConfigurationDoc: docs/configuration.md is what the flag
// definitions generate.
func TestConfigurationDoc(t *testing.T) {
	want := configDocs(newRootCmd())
	got, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/configuration.md differs from the flag definitions; regenerate it with\n\t%s", regenerateDocs)
	}
	for _, s := range []string{"`KEYWARD_ISSUER`", "`trusted-proxies` | `KEYWARD_TRUSTED_PROXIES` | list", "| `key-encryption-key` | the value itself", "### keyward users list"} {
		if !strings.Contains(want, s) {
			t.Errorf("the reference lacks %q", s)
		}
	}
}

// TestConfigurationExample: the reference's example file configures serve.
func TestConfigurationExample(t *testing.T) {
	t.Chdir(t.TempDir())
	path := writeFile(t, "keyward.yaml", exampleConfig)
	pepper := writeFile(t, "pepper", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("p", 32))))
	c, err := serveConfigOf(t, nil, "--config", path, "--password-pepper-file", pepper) // the example's /run/secrets is not here
	if err != nil {
		t.Fatal(err)
	}
	if c.server.Issuer != "https://id.example.com" || c.tls.mode != tlsForwarded || c.kek.file != "/run/secrets/keyward-kek" {
		t.Errorf("issuer %s, tls %s, kek %+v", c.server.Issuer, c.tls.mode, c.kek)
	}
}
