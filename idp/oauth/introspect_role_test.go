package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestIntrospectResourceServerRole is finding 7 of issue 12 on both
// backends: registered to request tokens for an audience is not being its
// resource server. Only a client holding the role for the token's audience
// (IntrospectAudiences), or the client the token was issued to, learns
// anything; every other caller gets exactly {"active":false} (RFC 7662 §2.2).
func TestIntrospectResourceServerRole(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		ctx := context.Background()
		for _, spec := range []manage.ClientSpec{
			// Two apps that call the API "api" with client_credentials.
			{ID: "app", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{"read"}, Audiences: []string{"api"}},
			{ID: "other-app", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{"read"}, Audiences: []string{"api"}},
			// The API itself: no grant, only the role.
			{ID: "api-rs", IntrospectAudiences: []string{"api"}},
			// The resource server of another API.
			{ID: "billing-rs", IntrospectAudiences: []string{"billing"}},
		} {
			c, secret, err := manage.NewClient(spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.DB.CreateClient(ctx, &c); err != nil {
				t.Fatal(err)
			}
			e.Secrets[spec.ID] = secret
		}
		tok := e.Token("other-app", idptest.CCForm("audience", "api"))
		if tok.Status != http.StatusOK {
			t.Fatalf("token: %d %s", tok.Status, tok.Body)
		}
		at := tok.Str("access_token")
		// A user's token for an audience, with its refresh token.
		login := e.Login("scope", "read", "audience", "https://rs1.test")

		tests := []struct {
			name, caller, token string
			wantActive          bool
		}{
			{"app registered for the audience, another client's token", "app", at, false},
			{"resource server of the audience", "api-rs", at, true},
			{"resource server of another audience", "billing-rs", at, false},
			{"the client the token was issued to", "other-app", at, true},
			{"app registered for a user token's audience", "CC", login.Str("access_token"), false},
			{"resource server of a user token's audience", "RS", login.Str("access_token"), true},
			{"resource server and another client's refresh token", "RS", login.Str("refresh_token"), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic(tt.caller), Body: "token=" + tt.token})
				if r.Status != http.StatusOK {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				if !tt.wantActive {
					if string(r.Body) != "{\"active\":false}\n" {
						t.Fatalf("body %s, want exactly {\"active\":false}", r.Body)
					}
					return
				}
				if r.JSON["active"] != true || r.JSON["aud"] == nil {
					t.Fatalf("body %s, want an active token with its claims", r.Body)
				}
			})
		}

		// Granting the role (as PATCH /admin/v1/clients does) opens
		// introspection at once; taking it away closes it.
		setRole := func(aud ...string) {
			t.Helper()
			if _, err := e.DB.UpdateClient(ctx, "app", func(c *storage.Client) error {
				c.IntrospectAudiences = aud
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		introspect := func() bool {
			r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("app"), Body: "token=" + at})
			return r.JSON["active"] == true
		}
		setRole("api")
		if !introspect() {
			t.Error("app granted the role for api: token still inactive")
		}
		setRole()
		if introspect() {
			t.Error("role taken away: token still active")
		}
	})
}
