package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestIntrospect is RT-12 and CA-10 on both backends: active tokens with
// their claims for callers whose business they are, exactly
// {"active":false} for everything else.
func TestIntrospect(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		login := e.login("scope", "openid read", "audience", "https://rs1.test")
		at, rt := login.str("access_token"), login.str("refresh_token")
		cc := e.token("CC", ccForm()).str("access_token")
		alice := e.users["alice"]

		// Attacker-signed token with our kid, an expired token and a
		// wrong-typ token, all re-signed in the test.
		attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
		_, p := jwtParts(t, at)
		forged := signWith(t, attacker, e.kid, "at+jwt", p)
		idToken := login.str("id_token")
		p2 := clone(p)
		p2["exp"] = time.Now().Add(-time.Minute).Unix()
		expired := e.signClaims("at+jwt", p2)
		wrongTyp := e.signClaims("JWT", p)
		p3 := clone(p)
		p3["iss"] = e.url + "/"
		wrongIss := e.signClaims("at+jwt", p3)

		tests := []struct {
			name, caller, token string
			wantActive          bool
			want                map[string]any
		}{
			{"own access token", "C1", at, true, map[string]any{"sub": alice.ID, "client_id": "C1", "scope": "openid read",
				"aud": "https://rs1.test", "iss": e.url, "token_type": "Bearer"}},
			{"resource server of the audience", "RS", at, true, map[string]any{"client_id": "C1"}},
			{"client_credentials token", "CC", cc, true, map[string]any{"sub": "client:CC"}},
			{"not the caller's business", "C2", at, false, nil},
			{"own refresh token", "C1", rt, true, map[string]any{"sub": alice.ID, "client_id": "C1", "token_type": "refresh_token", "scope": "openid read"}},
			{"another client's refresh token", "C2", rt, false, nil},
			{"resource server and a refresh token", "RS", rt, false, nil},
			{"garbage", "C1", "garbage", false, nil},
			{"unknown refresh token", "C1", manage.RefreshTokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false, nil},
			{"signed by an unknown key", "C1", forged, false, nil},
			{"expired", "C1", expired, false, nil},
			{"typ JWT", "C1", wrongTyp, false, nil},
			{"ID token", "C1", idToken, false, nil},
			{"issuer with a slash", "C1", wrongIss, false, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(request{path: "/oauth2/introspect", auth: e.basic(tt.caller), body: "token=" + tt.token})
				if r.status != 200 || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != web.ContentTypeJSON {
					t.Fatalf("%d %v %s", r.status, r.header, r.body)
				}
				if !tt.wantActive {
					if string(r.body) != "{\"active\":false}\n" {
						t.Fatalf("body %s, want exactly {\"active\":false}", r.body)
					}
					return
				}
				if r.json["active"] != true {
					t.Fatalf("inactive: %s", r.body)
				}
				for k, v := range tt.want {
					if r.json[k] != v {
						t.Errorf("%s = %v, want %v", k, r.json[k], v)
					}
				}
				for _, k := range []string{"exp", "iat"} {
					if _, ok := r.json[k].(float64); !ok {
						t.Errorf("%s missing", k)
					}
				}
			})
		}
		// CA-10: authentication required; public clients may not.
		checkE1(t, e.do(request{path: "/oauth2/introspect", body: "token=" + at}), 401, web.ErrInvalidClient)
		checkE1(t, e.do(request{path: "/oauth2/introspect", body: "client_id=pub1&token=" + at}), 401, web.ErrInvalidClient)
		checkE1(t, e.do(request{path: "/oauth2/introspect", auth: e.basic("C1")}), 400, web.ErrInvalidRequest)
		// A used refresh token, and a disabled user's tokens, are inactive.
		e.token("C1", refreshForm(rt))
		if r := e.do(request{path: "/oauth2/introspect", auth: e.basic("C1"), body: "token=" + rt}); r.json["active"] != false {
			t.Errorf("used refresh token: %s", r.body)
		}
		// A disabled client's user tokens are inactive too, even to a
		// resource server asking about them.
		if r := e.do(request{path: "/oauth2/introspect", auth: e.basic("RS"), body: "token=" + at}); r.json["active"] != true {
			t.Fatalf("resource server introspecting C1's token: %s", r.body)
		}
		if _, err := e.db.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.do(request{path: "/oauth2/introspect", auth: e.basic("RS"), body: "token=" + at}); r.json["active"] != false {
			t.Errorf("disabled client's user token: %s", r.body)
		}
		if _, err := e.db.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = false; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.UpdateUser(context.Background(), alice.ID, func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.do(request{path: "/oauth2/introspect", auth: e.basic("C1"), body: "token=" + at}); r.json["active"] != false {
			t.Errorf("disabled user's access token: %s", r.body)
		}
	})
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// signWith signs claims as an RS256 JWS with key and kid: for tokens the
// server must refuse.
func signWith(t testing.TB, key *rsa.PrivateKey, kid, typ string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}
