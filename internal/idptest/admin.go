package idptest

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Admin is an Env with the key manager as KeyRotator and two admin
// clients: OPS (client_credentials, keyward:admin, no audience, so its
// tokens are for the issuer) and OPSRS (the same, but its tokens are for
// https://rs1.test). Every admin answer body is kept for the AD-06 check.
type Admin struct {
	*Env
	Bodies [][]byte
}

func NewAdmin(t *testing.T, b storagetest.Backend, change ...func(*idp.Config)) *Admin {
	t.Helper()
	change = append([]func(*idp.Config){func(c *idp.Config) { c.KeyRotator = c.Keys.(*keys.Manager) }}, change...)
	e := &Admin{Env: New(t, b, change...)}
	for _, spec := range []manage.ClientSpec{
		{ID: "OPS", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{manage.ScopeAdmin, "read"}},
		{ID: "OPSRS", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{manage.ScopeAdmin}, Audiences: []string{"https://rs1.test"}},
	} {
		c, secret, err := manage.NewClient(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.DB.CreateClient(t.Context(), &c); err != nil {
			t.Fatal(err)
		}
		e.Secrets[spec.ID] = secret
	}
	t.Cleanup(func() { e.CheckNoSecrets(t) })
	return e
}

// CCToken is a client_credentials access token of client.
func (e *Admin) CCToken(client string, extra ...string) string {
	e.T.Helper()
	r := e.Token(client, CCForm(extra...))
	if r.Status != http.StatusOK {
		e.T.Fatalf("client_credentials for %s: %d %s", client, r.Status, r.Body)
	}
	return r.Str("access_token")
}

// OpsToken is an admin token.
func (e *Admin) OpsToken() string { return e.CCToken("OPS") }

// Call sends an admin request with the bearer token tok ("" none) and a
// JSON body ("" none).
func (e *Admin) Call(method, path, tok, body string) Response {
	e.T.Helper()
	req := Request{Method: method, Path: path, Body: body, ContentType: "-"}
	if body != "" {
		req.ContentType = "application/json"
	}
	if tok != "" {
		req.Auth = "Bearer " + tok
	}
	r := e.Do(req)
	e.Bodies = append(e.Bodies, r.Body)
	if r.Header.Get("Cache-Control") != "no-store" {
		e.T.Errorf("%s %s: Cache-Control %q, want no-store", method, path, r.Header.Get("Cache-Control"))
	}
	return r
}

// Want checks an admin answer's status and, for an error, its code.
func Want(t *testing.T, r Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d (body %s)", r.Status, status, r.Body)
	}
	if code != "" && r.Str("error") != code {
		t.Fatalf("error %q, want %q (body %s)", r.Str("error"), code, r.Body)
	}
	if Leaks.Match(r.Body) {
		t.Errorf("body leaks internals: %s", r.Body)
	}
}

// CheckNoSecrets is AD-06 over every admin answer: no password hash, no
// client secret, no secret hash.
func (e *Admin) CheckNoSecrets(t *testing.T) {
	for _, b := range e.Bodies {
		s := string(b)
		if strings.Contains(s, "$argon2id") || strings.Contains(s, "password_hash") || strings.Contains(s, "secret_hash") {
			t.Errorf("an admin answer holds a hash: %s", s)
		}
		for id, secret := range e.Secrets {
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

// AuditRows returns the audit rows of type typ, newest first.
func (e *Admin) AuditRows(typ audit.Type) []storage.AuditEvent {
	e.T.Helper()
	evs, err := e.DB.AuditEvents(context.Background(), storage.AuditFilter{Type: string(typ)})
	if err != nil {
		e.T.Fatal(err)
	}
	return evs
}

// WantAudit checks that exactly n rows of typ exist and that the newest
// has the admin as actor, the subject and a reason containing reason.
func (e *Admin) WantAudit(t *testing.T, typ audit.Type, n int, subject, reason string) {
	t.Helper()
	rows := e.AuditRows(typ)
	if len(rows) != n {
		t.Fatalf("%d %s rows, want %d: %+v", len(rows), typ, n, rows)
	}
	if n == 0 {
		return
	}
	r := rows[0]
	if r.Actor != "client:OPS" || (subject != "" && r.Subject != subject) || !strings.Contains(r.Reason, reason) || r.RequestID == "" {
		t.Errorf("%s row %+v: want actor client:OPS, subject %q, reason containing %q, a request id", typ, r, subject, reason)
	}
}
