package idp

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

// adminEnv is env with the key manager as KeyRotator and two admin
// clients: OPS (client_credentials, keyward:admin, no audience, so its
// tokens are for the issuer) and OPSRS (the same, but its tokens are for
// https://rs1.test). Every admin response body is kept for the AD-06 check.
type adminEnv struct {
	*env
	bodies [][]byte
}

func newAdminEnv(t *testing.T, b storagetest.Backend, change ...func(*Config)) *adminEnv {
	t.Helper()
	change = append([]func(*Config){func(c *Config) { c.KeyRotator = c.Keys.(*keys.Manager) }}, change...)
	e := &adminEnv{env: newEnv(t, b, change...)}
	for _, spec := range []manage.ClientSpec{
		{ID: "OPS", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{manage.ScopeAdmin, "read"}},
		{ID: "OPSRS", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{manage.ScopeAdmin}, Audiences: []string{"https://rs1.test"}},
	} {
		c, secret, err := manage.NewClient(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.db.CreateClient(t.Context(), &c); err != nil {
			t.Fatal(err)
		}
		e.secrets[spec.ID] = secret
	}
	t.Cleanup(func() { e.checkNoSecrets(t) })
	return e
}

// ccToken is a client_credentials access token of client.
func (e *adminEnv) ccToken(client string, extra ...string) string {
	e.t.Helper()
	r := e.token(client, ccForm(extra...))
	if r.status != http.StatusOK {
		e.t.Fatalf("client_credentials for %s: %d %s", client, r.status, r.body)
	}
	return r.str("access_token")
}

// opsToken is an admin token.
func (e *adminEnv) opsToken() string { return e.ccToken("OPS") }

// call sends an admin request with the bearer token tok ("" none) and a
// JSON body ("" none).
func (e *adminEnv) call(method, path, tok, body string) response {
	e.t.Helper()
	req := request{method: method, path: path, body: body, contentType: "-"}
	if body != "" {
		req.contentType = "application/json"
	}
	if tok != "" {
		req.auth = "Bearer " + tok
	}
	r := e.do(req)
	e.bodies = append(e.bodies, r.body)
	if r.header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, r.header.Get("Cache-Control"))
	}
	return r
}

// want checks an admin answer's status and, for an error, its code.
func want(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if code != "" && r.str("error") != code {
		t.Fatalf("error %q, want %q (body %s)", r.str("error"), code, r.body)
	}
	if leaks.Match(r.body) {
		t.Errorf("body leaks internals: %s", r.body)
	}
}

// checkNoSecrets is AD-06 over every admin answer: no password hash, no
// client secret, no secret hash.
func (e *adminEnv) checkNoSecrets(t *testing.T) {
	for _, b := range e.bodies {
		s := string(b)
		if strings.Contains(s, "$argon2id") || strings.Contains(s, "password_hash") || strings.Contains(s, "secret_hash") {
			t.Errorf("an admin answer holds a hash: %s", s)
		}
		for id, secret := range e.secrets {
			if secret == "" {
				continue // a public client
			}
			h := manage.HashClientSecret(secret)
			if strings.Contains(s, secret) || strings.Contains(s, base64.StdEncoding.EncodeToString(h)) {
				t.Errorf("an admin answer holds client %s's secret or its hash: %s", id, s)
			}
		}
	}
}
