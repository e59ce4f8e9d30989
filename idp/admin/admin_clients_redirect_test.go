package admin_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAdminClientRedirects: the admin API registers, shows and patches the
// authorization endpoint's fields (redirect_uris, post_logout_redirect_uris,
// first_party), under CheckClient's redirect URI rules.
func TestAdminClientRedirects(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		type view struct {
			Redirects   []string `json:"redirect_uris"`
			PostLogout  []string `json:"post_logout_redirect_uris"`
			FirstParty  bool     `json:"first_party"`
			GrantTypes  []string `json:"grant_types"`
			ClientID    string   `json:"client_id"`
			Public      bool     `json:"public"`
			AuthMethod  string   `json:"token_endpoint_auth_method"`
			Description string   `json:"error_description"`
		}
		parse := func(r idptest.Response) view {
			var v view
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatalf("%s: %v", r.Body, err)
			}
			return v
		}
		r := e.Call("POST", "/admin/v1/clients", ops, `{"client_id":"spa","public":true,"grant_types":["authorization_code","refresh_token"],
			"redirect_uris":["http://127.0.0.1/cb","http://127.0.0.1/cb"],"post_logout_redirect_uris":["http://127.0.0.1/bye"],"first_party":true}`)
		idptest.Want(t, r, 201, "")
		if v := parse(r); !slices.Equal(v.Redirects, []string{"http://127.0.0.1/cb"}) || !v.FirstParty || v.AuthMethod != "none" ||
			!slices.Equal(v.PostLogout, []string{"http://127.0.0.1/bye"}) {
			t.Errorf("created %s", r.Body)
		}
		r = e.Call("PATCH", "/admin/v1/clients/spa", ops, `{"redirect_uris":["https://spa.example/cb"],"first_party":false}`)
		idptest.Want(t, r, 200, "")
		if v := parse(e.Call("GET", "/admin/v1/clients/spa", ops, "")); !slices.Equal(v.Redirects, []string{"https://spa.example/cb"}) || v.FirstParty {
			t.Errorf("after patch %+v", v)
		}
		for _, body := range []string{
			`{"redirect_uris":[]}`,                           // the grant needs one
			`{"redirect_uris":["http://spa.example/cb"]}`,    // plain http off loopback
			`{"redirect_uris":["https://spa.example/*"]}`,    // wildcard
			`{"post_logout_redirect_uris":["javascript:x"]}`, // not a redirect URI
		} {
			idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/spa", ops, body), 400, "invalid_request")
		}
		if v := parse(e.Call("GET", "/admin/v1/clients/C1", ops, "")); v.Redirects == nil || len(v.Redirects) != 0 {
			t.Errorf("C1 redirect_uris %v, want []", v.Redirects)
		}
	})
}
