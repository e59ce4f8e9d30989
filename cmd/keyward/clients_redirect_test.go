package main

import (
	"slices"
	"testing"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestClientsCLIRedirects: `clients create --redirect-uri
// --post-logout-redirect-uri --first-party` registers an authorization-code
// client, shown in JSON and stored; a public client with PKCE is allowed,
// a client of the grant without a redirect URI, or with a bad one, is not.
func TestClientsCLIRedirects(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, "", "clients", "create", "--id", "web", "--grant", "authorization_code", "--grant", "refresh_token",
			"--scope", "openid", "--redirect-uri", "https://app.example/cb", "--redirect-uri", "http://127.0.0.1/cb",
			"--post-logout-redirect-uri", "https://app.example/bye", "--first-party", "--output", "json")
		c := decode[map[string]any](t, out)
		if got, _ := c["redirect_uris"].([]any); len(got) != 2 || got[0] != "https://app.example/cb" || c["first_party"] != true {
			t.Fatalf("create printed %s", out)
		}
		mustRun(t, dsn, "", "clients", "create", "--id", "spa", "--public", "--grant", "authorization_code", "--redirect-uri", "http://[::1]/cb")
		db := storagetest.Open(t, dsn)
		web, err := db.Client(t.Context(), "web")
		if err != nil || !slices.Equal(web.PostLogoutRedirectURIs, []string{"https://app.example/bye"}) || !web.FirstParty ||
			!web.GrantTypes.Has("authorization_code") {
			t.Fatalf("stored %+v %v", web, err)
		}
		for _, args := range [][]string{
			{"--id", "x1", "--grant", "authorization_code"},
			{"--id", "x2", "--grant", "authorization_code", "--redirect-uri", "https://app.example/*"},
			{"--id", "x3", "--grant", "authorization_code", "--redirect-uri", "http://app.example/cb"},
			{"--id", "x4", "--grant", "authorization_code", "--redirect-uri", "https://app.example/cb#frag"},
		} {
			if _, err := run(t, dsn, "", append([]string{"clients", "create"}, args...)...); err == nil {
				t.Errorf("clients create %v succeeded", args)
			}
		}
	})
}
