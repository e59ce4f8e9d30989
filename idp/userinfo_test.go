package idp

import (
	"context"
	"net/http"
	"strings"
	"testing"

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
			{"query token", request{method: "GET", query: "access_token=" + full}, 400, ErrInvalidRequest, nil},
			{"header and query", request{method: "GET", auth: bearer, query: "access_token=" + full}, 400, ErrInvalidRequest, nil},
			{"header and form", request{auth: bearer, body: "access_token=" + full}, 400, ErrInvalidRequest, nil},
			{"two headers", request{method: "GET", auth: bearer, header: http.Header{"Authorization": {"Bearer garbage"}}}, 400, ErrInvalidRequest, nil},
			{"two tokens in one header", request{method: "GET", auth: bearer + ", Bearer " + bare}, 401, ErrInvalidToken, nil},
			{"garbage", request{method: "GET", auth: "Bearer garbage"}, 401, ErrInvalidToken, nil},
			{"basic", request{method: "GET", auth: e.basic("C1")}, 401, ErrInvalidToken, nil},
			{"64 KiB token", request{method: "GET", auth: "Bearer " + strings.Repeat("a", 64<<10)}, 401, ErrInvalidToken, nil},
			{"million dots", request{method: "GET", auth: "Bearer " + strings.Repeat(".", 1<<14)}, 401, ErrInvalidToken, nil},
			{"refresh token as bearer", request{method: "GET", auth: "Bearer " + e.login().str("refresh_token")}, 401, ErrInvalidToken, nil},
			{"ID token as bearer", request{method: "GET", auth: "Bearer " + e.login("scope", "openid").str("id_token")}, 401, ErrInvalidToken, nil},
			{"no openid scope", request{method: "GET", auth: "Bearer " + noOpenID}, 403, errInsufficientScope, nil},
			{"client_credentials token", request{method: "GET", auth: "Bearer " + cc}, 403, errInsufficientScope, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.path = "/userinfo"
				r := e.do(tt.req)
				if r.status != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
				}
				if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
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
	if _, ok := e.keys.(publicKeySource); ok {
		t.Fatal("the test KeySource has PublicKeys")
	}
}
