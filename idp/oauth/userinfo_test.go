package oauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestUserinfo is OIDC Core §5.3 with RFC 6750 errors (RS-15, RS-16, RS-17).
func TestUserinfo(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		full := e.Login("scope", "openid profile email").Str("access_token")
		bare := e.Login("scope", "openid").Str("access_token")
		noOpenID := e.Login("scope", "read").Str("access_token")
		cc := e.Token("CC", idptest.CCForm()).Str("access_token")
		alice := e.Users["alice"]
		bearer := "Bearer " + full
		tests := []struct {
			name       string
			req        idptest.Request
			wantStatus int
			wantErr    string // in WWW-Authenticate; "" for none
			want       map[string]any
		}{
			{"header", idptest.Request{Method: "GET", Auth: bearer}, 200, "", map[string]any{"sub": alice.ID, "preferred_username": "alice",
				"name": "alice", "email": "alice@example.com", "email_verified": true}},
			{"lower-case scheme", idptest.Request{Method: "GET", Auth: "bearer " + full}, 200, "", map[string]any{"sub": alice.ID}},
			{"form on POST", idptest.Request{Body: "access_token=" + full}, 200, "", map[string]any{"sub": alice.ID}},
			{"header on POST", idptest.Request{Auth: bearer, ContentType: "-"}, 200, "", map[string]any{"sub": alice.ID}},
			{"openid only", idptest.Request{Method: "GET", Auth: "Bearer " + bare}, 200, "", map[string]any{"sub": alice.ID, "email": nil, "name": nil}},
			{"no token", idptest.Request{Method: "GET"}, 401, "", nil},
			{"query token", idptest.Request{Method: "GET", Query: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"header and query", idptest.Request{Method: "GET", Auth: bearer, Query: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"header and form", idptest.Request{Auth: bearer, Body: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"two headers", idptest.Request{Method: "GET", Auth: bearer, Header: http.Header{"Authorization": {"Bearer garbage"}}}, 400, web.ErrInvalidRequest, nil},
			{"two tokens in one header", idptest.Request{Method: "GET", Auth: bearer + ", Bearer " + bare}, 401, web.ErrInvalidToken, nil},
			{"garbage", idptest.Request{Method: "GET", Auth: "Bearer garbage"}, 401, web.ErrInvalidToken, nil},
			{"basic", idptest.Request{Method: "GET", Auth: e.Basic("C1")}, 401, web.ErrInvalidToken, nil},
			{"64 KiB token", idptest.Request{Method: "GET", Auth: "Bearer " + strings.Repeat("a", 64<<10)}, 401, web.ErrInvalidToken, nil},
			{"million dots", idptest.Request{Method: "GET", Auth: "Bearer " + strings.Repeat(".", 1<<14)}, 401, web.ErrInvalidToken, nil},
			{"refresh token as bearer", idptest.Request{Method: "GET", Auth: "Bearer " + e.Login().Str("refresh_token")}, 401, web.ErrInvalidToken, nil},
			{"ID token as bearer", idptest.Request{Method: "GET", Auth: "Bearer " + e.Login("scope", "openid").Str("id_token")}, 401, web.ErrInvalidToken, nil},
			{"no openid scope", idptest.Request{Method: "GET", Auth: "Bearer " + noOpenID}, 403, web.ErrInsufficientScope, nil},
			{"client_credentials token", idptest.Request{Method: "GET", Auth: "Bearer " + cc}, 403, web.ErrInsufficientScope, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.Path = "/userinfo"
				r := e.Do(tt.req)
				if r.Status != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.Status, tt.wantStatus, r.Body)
				}
				if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != web.ContentTypeJSON {
					t.Errorf("headers %v", r.Header)
				}
				if tt.wantStatus == 200 {
					for k, v := range tt.want {
						if r.JSON[k] != v {
							t.Errorf("%s = %v, want %v", k, r.JSON[k], v)
						}
					}
					return
				}
				wa := r.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(wa, `Bearer realm="keyward"`) {
					t.Errorf("WWW-Authenticate %q", wa)
				}
				if tt.wantErr == "" && strings.Contains(wa, "error=") {
					t.Errorf("a request without a token got an error attribute: %q", wa)
				}
				if tt.wantErr != "" && !strings.Contains(wa, `error="`+tt.wantErr+`"`) {
					t.Errorf("WWW-Authenticate %q, want error %q", wa, tt.wantErr)
				}
			})
		}
		// A disabled client's user token stops (CA-09), and works again
		// when the client is enabled (this token has no refresh family to
		// revoke: only the client check can stop it).
		for _, disabled := range []bool{true, false} {
			if _, err := e.DB.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = disabled; return nil }); err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{true: 401, false: 200}[disabled]
			if r := e.Do(idptest.Request{Method: "GET", Path: "/userinfo", Auth: bearer}); r.Status != want {
				t.Errorf("client disabled=%t: %d, want %d", disabled, r.Status, want)
			}
		}
		// A disabled user's token stops; a revoked jti stops.
		if _, err := e.DB.UpdateUser(context.Background(), alice.ID, func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.Do(idptest.Request{Method: "GET", Path: "/userinfo", Auth: bearer}); r.Status != 401 {
			t.Errorf("disabled user: %d", r.Status)
		}
	})
}

// TestValidateWithJWKSDocument: a idp.KeySource without PublicKeys still works;
// access tokens are checked against its parsed JWKS document.
func TestValidateWithJWKSDocument(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Keys = idptest.SharedTestKeys() })
	at := e.Login("scope", "openid").Str("access_token")
	if r := e.Do(idptest.Request{Method: "GET", Path: "/userinfo", Auth: "Bearer " + at}); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if _, ok := e.Keys.(interface{ PublicKeys() jose.JSONWebKeySet }); ok {
		t.Fatal("the test KeySource has PublicKeys")
	}
}

// TestValidateFollowsKeys: the verifier behind /userinfo and introspection
// accepts a token for any of Keyward's audiences, is strict on exp (the
// issuer has no clock skew with itself), and follows the key set at once:
// a rotation keeps the retired key's tokens good, a revoked key's tokens
// stop on the next request, without waiting for a cache to expire.
func TestValidateFollowsKeys(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	km, ok := e.Keys.(*keys.Manager)
	if !ok {
		t.Fatalf("the harness KeySource is %T, want *keys.Manager", e.Keys)
	}
	userinfo := func(t *testing.T, tok string) int {
		t.Helper()
		return e.Do(idptest.Request{Method: "GET", Path: "/userinfo", Auth: "Bearer " + tok}).Status
	}
	kid := func(tok string) string { h, _ := idptest.JWTParts(t, tok); s, _ := h["kid"].(string); return s }

	t.Run("any audience", func(t *testing.T) {
		for _, aud := range []string{"https://rs1.test", "https://rs2.test"} {
			if st := userinfo(t, e.Login("scope", "openid", "audience", aud).Str("access_token")); st != 200 {
				t.Errorf("token for %s: %d, want 200", aud, st)
			}
		}
	})
	t.Run("no leeway on exp", func(t *testing.T) {
		_, p := idptest.JWTParts(t, e.Login("scope", "openid").Str("access_token"))
		now := e.Clock.Now().Unix()
		p["iat"], p["exp"] = now-60, now-1 // within a resource server's leeway
		if st := userinfo(t, e.SignClaims("at+jwt", p)); st != 401 {
			t.Errorf("expired a second ago: %d, want 401", st)
		}
	})

	old := e.Login("scope", "openid").Str("access_token")
	if st := userinfo(t, old); st != 200 {
		t.Fatalf("before rotation: %d", st)
	}
	if _, err := km.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	rotated := e.Login("scope", "openid").Str("access_token")
	if kid(rotated) == kid(old) {
		t.Fatalf("rotation kept kid %s", kid(old))
	}
	for name, tok := range map[string]string{"retired key": old, "new active key": rotated} {
		if st := userinfo(t, tok); st != 200 {
			t.Errorf("after rotation, %s: %d, want 200", name, st)
		}
	}
	if _, err := km.Revoke(t.Context(), kid(rotated)); err != nil {
		t.Fatal(err)
	}
	if st := userinfo(t, rotated); st != 401 {
		t.Errorf("revoked key: %d, want 401", st)
	}
	fresh := e.Login("scope", "openid").Str("access_token")
	if kid(fresh) == kid(rotated) {
		t.Fatal("still signing with the revoked key")
	}
	if st := userinfo(t, fresh); st != 200 {
		t.Errorf("key activated by the revocation: %d, want 200", st)
	}
	if st := userinfo(t, old); st != 200 {
		t.Errorf("retired key after another key's revocation: %d, want 200", st)
	}
}
