package oauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/idptest"

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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		login := e.Login("scope", "openid read", "audience", "https://rs1.test")
		at, rt := login.Str("access_token"), login.Str("refresh_token")
		cc := e.Token("CC", idptest.CCForm()).Str("access_token")
		alice := e.Users["alice"]

		// Attacker-signed token with our kid, an expired token and a
		// wrong-typ token, all re-signed in the test.
		attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
		_, p := idptest.JWTParts(t, at)
		forged := signWith(t, attacker, e.Kid, "at+jwt", p)
		idToken := login.Str("id_token")
		p2 := clone(p)
		p2["exp"] = time.Now().Add(-time.Minute).Unix()
		expired := e.SignClaims("at+jwt", p2)
		wrongTyp := e.SignClaims("JWT", p)
		p3 := clone(p)
		p3["iss"] = e.URL + "/"
		wrongIss := e.SignClaims("at+jwt", p3)

		tests := []struct {
			name, caller, token string
			wantActive          bool
			want                map[string]any
		}{
			{"own access token", "C1", at, true, map[string]any{"sub": alice.ID, "client_id": "C1", "scope": "openid read",
				"aud": "https://rs1.test", "iss": e.URL, "token_type": "Bearer"}},
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
				r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic(tt.caller), Body: "token=" + tt.token})
				if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != web.ContentTypeJSON {
					t.Fatalf("%d %v %s", r.Status, r.Header, r.Body)
				}
				if !tt.wantActive {
					if string(r.Body) != "{\"active\":false}\n" {
						t.Fatalf("body %s, want exactly {\"active\":false}", r.Body)
					}
					return
				}
				if r.JSON["active"] != true {
					t.Fatalf("inactive: %s", r.Body)
				}
				for k, v := range tt.want {
					if r.JSON[k] != v {
						t.Errorf("%s = %v, want %v", k, r.JSON[k], v)
					}
				}
				for _, k := range []string{"exp", "iat"} {
					if _, ok := r.JSON[k].(float64); !ok {
						t.Errorf("%s missing", k)
					}
				}
			})
		}
		// CA-10: authentication required; public clients may not.
		idptest.CheckE1(t, e.Do(idptest.Request{Path: "/oauth2/introspect", Body: "token=" + at}), 401, web.ErrInvalidClient)
		idptest.CheckE1(t, e.Do(idptest.Request{Path: "/oauth2/introspect", Body: "client_id=pub1&token=" + at}), 401, web.ErrInvalidClient)
		idptest.CheckE1(t, e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("C1")}), 400, web.ErrInvalidRequest)
		// A used refresh token, and a disabled user's tokens, are inactive.
		e.Token("C1", idptest.RefreshForm(rt))
		if r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("C1"), Body: "token=" + rt}); r.JSON["active"] != false {
			t.Errorf("used refresh token: %s", r.Body)
		}
		// A disabled client's user tokens are inactive too, even to a
		// resource server asking about them.
		if r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("RS"), Body: "token=" + at}); r.JSON["active"] != true {
			t.Fatalf("resource server introspecting C1's token: %s", r.Body)
		}
		if _, err := e.DB.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("RS"), Body: "token=" + at}); r.JSON["active"] != false {
			t.Errorf("disabled client's user token: %s", r.Body)
		}
		if _, err := e.DB.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Disabled = false; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.DB.UpdateUser(context.Background(), alice.ID, func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("C1"), Body: "token=" + at}); r.JSON["active"] != false {
			t.Errorf("disabled user's access token: %s", r.Body)
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
