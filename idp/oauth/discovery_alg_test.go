package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestDiscoveryListsPublishedAlgorithms: the signing algorithm lists of the
// metadata name every algorithm of a published key, and follow the key set:
// RS256 alone, RS256 and ES256 while a migration publishes an ES256 key
// (another replica started with --key-algorithm ES256), and an EdDSA server
// lists EdDSA. An ID token hint signed with an ES256 key ends the session
// like an RS256 one (logout accepts the algorithms in use).
func TestDiscoveryListsPublishedAlgorithms(t *testing.T) {
	const issuer = "https://id.example.test"
	db := storagetest.OpenSQLite(t)
	kek := keys.NewKEK()
	clock := testsupport.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	km, err := keys.NewManager(t.Context(), db, kek, keys.Policy{}, nil, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := idp.New(idp.Config{Issuer: issuer, Store: db, Keys: km})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	algs := func() (oidc, rfc string) {
		t.Helper()
		get := func(path string) string {
			w := idptest.Serve(h, http.MethodGet, path)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if string(m["id_token_signing_alg_values_supported"]) != string(m["access_token_signing_alg_values_supported"]) {
				t.Fatalf("%s: ID token algorithms %s, access token algorithms %s", path, m["id_token_signing_alg_values_supported"], m["access_token_signing_alg_values_supported"])
			}
			return string(m["id_token_signing_alg_values_supported"])
		}
		return get("/.well-known/openid-configuration"), get("/.well-known/oauth-authorization-server")
	}
	want := func(what, list string) {
		t.Helper()
		if oidc, rfc := algs(); oidc != list || rfc != list {
			t.Fatalf("%s: algorithms %s and %s, want %s", what, oidc, rfc, list)
		}
	}
	want("RS256 keys", `["RS256"]`)

	// A replica starts with ES256: an ES256 key is published next to the
	// RS256 one, and this server lists both once it reloads.
	if _, err := keys.NewManager(t.Context(), db, kek, keys.Policy{Algorithm: keys.AlgES256}, nil, clock.Now); err != nil {
		t.Fatal(err)
	}
	want("before the reload", `["RS256"]`)
	if err := km.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	want("migrating to ES256", `["RS256","ES256"]`)

	// Once the ES256 key may sign it does; RS256 stays listed while its key
	// is published.
	clock.Advance(keys.DefaultJWKSMaxAge + keys.DefaultPublishMargin)
	if _, err := km.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	want("ES256 signs, RS256 retired", `["RS256","ES256"]`)
	idTok, err := km.Sign("JWT", []byte(`{"iss":"`+issuer+`","sub":"u1","aud":"C1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if hdr, _ := idptest.JWTParts(t, idTok); hdr["alg"] != "ES256" {
		t.Fatalf("ID token alg %v, want ES256", hdr["alg"])
	}
	w := idptest.Serve(h, http.MethodGet, "/oauth2/logout?id_token_hint="+url.QueryEscape(idTok))
	if w.Code >= 500 {
		t.Fatalf("logout with an ES256 hint: %d %s", w.Code, w.Body)
	}

	ed, err := keys.NewManager(t.Context(), storagetest.OpenSQLite(t), kek, keys.Policy{Algorithm: keys.AlgEdDSA}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err = idp.New(idp.Config{Issuer: issuer, Store: db, Keys: ed})
	if err != nil {
		t.Fatal(err)
	}
	h = srv.Handler()
	want("EdDSA keys", `["EdDSA"]`)
}

// TestLogoutHintOfEachAlgorithm: an ID token signed by an ES256 or EdDSA
// key is a valid id_token_hint (it ends the session), and a forged one is
// not.
func TestLogoutHintOfEachAlgorithm(t *testing.T) {
	for _, alg := range []string{keys.AlgES256, keys.AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			e, ti := authzEnv(t, storagetest.Backends[0], func(c *idp.Config) {
				km, err := keys.NewManager(t.Context(), storagetest.OpenSQLite(t), keys.NewKEK(), keys.Policy{Algorithm: alg}, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				c.Keys = km
			})
			code := getCode(t, e, authQuery("web", webRedirect))
			tr := e.Token("web", codeForm(code, webRedirect, testVerifier))
			if tr.Status != 200 {
				t.Fatalf("token: %d %s", tr.Status, tr.Body)
			}
			hint := tr.Str("id_token")
			if hdr, _ := idptest.JWTParts(t, hint); hdr["alg"] != alg {
				t.Fatalf("ID token alg %v, want %s", hdr["alg"], alg)
			}
			if u := location(t, logout(e, url.Values{"id_token_hint": {hint[:len(hint)-4] + "AAAA"}}, "alice")); u.String() != oauth.LogoutPagePath {
				t.Fatalf("forged hint: redirected to %s", u)
			}
			if u := location(t, logout(e, url.Values{"id_token_hint": {hint}}, "alice")); u.String() != oauth.LogoutDonePath {
				t.Fatalf("valid hint: redirected to %s, want %s", u, oauth.LogoutDonePath)
			}
			if ended := ti.endedSessions(); len(ended) != 1 || ended[0] != "alice" {
				t.Fatalf("ended sessions %v, want alice", ended)
			}
		})
	}
}
