package idp

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestUserinfo is OIDC Core §5.3 with RFC 6750 errors (RS-15, RS-16, RS-17).
func TestUserinfo(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		full := e.login("scope", "openid profile email").str("access_token")
		bare := e.login("scope", "openid").str("access_token")
		noOpenID := e.login("scope", "read").str("access_token")
		cc := e.token("CC", ccForm()).str("access_token")
		alice := e.users["alice"]
		bearer := "Bearer " + full
		tests := []struct {
			name       string
			req        request
			wantStatus int
			wantErr    string // in WWW-Authenticate; "" for none
			want       map[string]any
		}{
			{"header", request{method: "GET", auth: bearer}, 200, "", map[string]any{"sub": alice.ID, "preferred_username": "alice",
				"name": "alice", "email": "alice@example.com", "email_verified": true}},
			{"lower-case scheme", request{method: "GET", auth: "bearer " + full}, 200, "", map[string]any{"sub": alice.ID}},
			{"form on POST", request{body: "access_token=" + full}, 200, "", map[string]any{"sub": alice.ID}},
			{"header on POST", request{auth: bearer, contentType: "-"}, 200, "", map[string]any{"sub": alice.ID}},
			{"openid only", request{method: "GET", auth: "Bearer " + bare}, 200, "", map[string]any{"sub": alice.ID, "email": nil, "name": nil}},
			{"no token", request{method: "GET"}, 401, "", nil},
			{"query token", request{method: "GET", query: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"header and query", request{method: "GET", auth: bearer, query: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"header and form", request{auth: bearer, body: "access_token=" + full}, 400, web.ErrInvalidRequest, nil},
			{"two headers", request{method: "GET", auth: bearer, header: http.Header{"Authorization": {"Bearer garbage"}}}, 400, web.ErrInvalidRequest, nil},
			{"two tokens in one header", request{method: "GET", auth: bearer + ", Bearer " + bare}, 401, web.ErrInvalidToken, nil},
			{"garbage", request{method: "GET", auth: "Bearer garbage"}, 401, web.ErrInvalidToken, nil},
			{"basic", request{method: "GET", auth: e.basic("C1")}, 401, web.ErrInvalidToken, nil},
			{"64 KiB token", request{method: "GET", auth: "Bearer " + strings.Repeat("a", 64<<10)}, 401, web.ErrInvalidToken, nil},
			{"million dots", request{method: "GET", auth: "Bearer " + strings.Repeat(".", 1<<14)}, 401, web.ErrInvalidToken, nil},
			{"refresh token as bearer", request{method: "GET", auth: "Bearer " + e.login().str("refresh_token")}, 401, web.ErrInvalidToken, nil},
			{"ID token as bearer", request{method: "GET", auth: "Bearer " + e.login("scope", "openid").str("id_token")}, 401, web.ErrInvalidToken, nil},
			{"no openid scope", request{method: "GET", auth: "Bearer " + noOpenID}, 403, web.ErrInsufficientScope, nil},
			{"client_credentials token", request{method: "GET", auth: "Bearer " + cc}, 403, web.ErrInsufficientScope, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.path = "/userinfo"
				r := e.do(tt.req)
				if r.status != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
				}
				if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != web.ContentTypeJSON {
					t.Errorf("headers %v", r.header)
				}
				if tt.wantStatus == 200 {
					for k, v := range tt.want {
						if r.json[k] != v {
							t.Errorf("%s = %v, want %v", k, r.json[k], v)
						}
					}
					return
				}
				wa := r.header.Get("WWW-Authenticate")
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
			if _, err := e.db.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = disabled; return nil }); err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{true: 401, false: 200}[disabled]
			if r := e.do(request{method: "GET", path: "/userinfo", auth: bearer}); r.status != want {
				t.Errorf("client disabled=%t: %d, want %d", disabled, r.status, want)
			}
		}
		// A disabled user's token stops; a revoked jti stops.
		if _, err := e.db.UpdateUser(context.Background(), alice.ID, func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.do(request{method: "GET", path: "/userinfo", auth: bearer}); r.status != 401 {
			t.Errorf("disabled user: %d", r.status)
		}
	})
}

// TestValidateWithJWKSDocument: a KeySource without PublicKeys still works;
// access tokens are checked against its parsed JWKS document.
func TestValidateWithJWKSDocument(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0], func(c *Config) { c.Keys = sharedTestKeys() })
	at := e.login("scope", "openid").str("access_token")
	if r := e.do(request{method: "GET", path: "/userinfo", auth: "Bearer " + at}); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if _, ok := e.keys.(interface{ PublicKeys() jose.JSONWebKeySet }); ok {
		t.Fatal("the test KeySource has PublicKeys")
	}
}

// TestValidateFollowsKeys: the verifier behind /userinfo and introspection
// accepts a token for any of Keyward's audiences, is strict on exp (the
// issuer has no clock skew with itself), and follows the key set at once:
// a rotation keeps the retired key's tokens good, a revoked key's tokens
// stop on the next request, without waiting for a cache to expire.
func TestValidateFollowsKeys(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	km, ok := e.keys.(*keys.Manager)
	if !ok {
		t.Fatalf("the harness KeySource is %T, want *keys.Manager", e.keys)
	}
	userinfo := func(t *testing.T, tok string) int {
		t.Helper()
		return e.do(request{method: "GET", path: "/userinfo", auth: "Bearer " + tok}).status
	}
	kid := func(tok string) string { h, _ := jwtParts(t, tok); s, _ := h["kid"].(string); return s }

	t.Run("any audience", func(t *testing.T) {
		for _, aud := range []string{"https://rs1.test", "https://rs2.test"} {
			if st := userinfo(t, e.login("scope", "openid", "audience", aud).str("access_token")); st != 200 {
				t.Errorf("token for %s: %d, want 200", aud, st)
			}
		}
	})
	t.Run("no leeway on exp", func(t *testing.T) {
		_, p := jwtParts(t, e.login("scope", "openid").str("access_token"))
		now := e.clock.Now().Unix()
		p["iat"], p["exp"] = now-60, now-1 // within a resource server's leeway
		if st := userinfo(t, e.signClaims("at+jwt", p)); st != 401 {
			t.Errorf("expired a second ago: %d, want 401", st)
		}
	})

	old := e.login("scope", "openid").str("access_token")
	if st := userinfo(t, old); st != 200 {
		t.Fatalf("before rotation: %d", st)
	}
	if _, err := km.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	rotated := e.login("scope", "openid").str("access_token")
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
	fresh := e.login("scope", "openid").str("access_token")
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
