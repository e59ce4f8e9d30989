package oauth_test

import (
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestClientCredentialsOIDCScope: asking client_credentials for openid (or
// another OIDC scope) is invalid_scope with a description that says why:
// those scopes describe a user, and this grant has none. It holds whether
// or not the client is registered for the scope.
func TestClientCredentialsOIDCScope(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	tests := []struct{ name, client, scope string }{
		{"openid, registered", "CC", "openid"},
		{"openid with a granted scope", "CC", "read openid"},
		{"openid, not registered", "POST", "openid"},
		{"profile", "CC", "profile"},
		{"email", "CC", "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.Token(tt.client, idptest.CCForm("scope", tt.scope))
			if tt.client == "POST" {
				r = e.Do(idptest.Request{Body: idptest.CCForm("scope", tt.scope, "client_id", "POST", "client_secret", e.Secrets["POST"]).Encode()})
			}
			idptest.CheckE1(t, r, 400, web.ErrInvalidScope)
			d := r.Str("error_description")
			if !strings.Contains(d, "client_credentials has none") || !strings.Contains(d, "user") {
				t.Errorf("error_description %q does not say that the grant has no user", d)
			}
		})
	}
	// A scope the client simply lacks keeps the generic description.
	r := e.Token("CC", idptest.CCForm("scope", "admin:everything"))
	idptest.CheckE1(t, r, 400, web.ErrInvalidScope)
	if strings.Contains(r.Str("error_description"), "user") {
		t.Errorf("unregistered scope: %q", r.Str("error_description"))
	}
}
