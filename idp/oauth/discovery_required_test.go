package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/manage"
)

// TestDiscoveryRequiredFields validates the whole metadata document against
// RFC 8414 §2 and OIDC Discovery 1.0 §3, as a strict client library does
// (Authlib's AuthorizationServerMetadata.validate and
// OpenIDProviderMetadata.validate): every REQUIRED member present and
// well-formed, every *_supported member a non-empty array of strings, every
// endpoint an https URL under the issuer. The one known gap is
// authorization_endpoint, which OIDC Discovery requires and RFC 8414
// requires only of a server offering a grant that uses it: Keyward offers
// none, and says so (docs/security.md decision 4).
func TestDiscoveryRequiredFields(t *testing.T) {
	const issuer = "https://id.example.test"
	h, _ := idptest.KeyedServer(t, issuer)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		t.Run(path, func(t *testing.T) {
			w := idptest.Serve(h, http.MethodGet, path)
			if w.Code != http.StatusOK {
				t.Fatalf("%d", w.Code)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			strs := func(k string) []string {
				t.Helper()
				arr, ok := m[k].([]any)
				if !ok || len(arr) == 0 {
					t.Errorf("%s = %v: want a non-empty JSON array", k, m[k])
					return nil
				}
				var out []string
				for _, v := range arr {
					s, ok := v.(string)
					if !ok || s == "" {
						t.Errorf("%s holds %v, not a string", k, v)
					}
					out = append(out, s)
				}
				return out
			}

			// issuer: REQUIRED, https, no query or fragment (RFC 8414 §2).
			iss, _ := m["issuer"].(string)
			if u, err := url.Parse(iss); iss != issuer || err != nil || u.Scheme != "https" || u.RawQuery != "" || u.Fragment != "" {
				t.Errorf("issuer %q", iss)
			}
			// Endpoints: token_endpoint REQUIRED (no implicit-only server),
			// jwks_uri REQUIRED by OIDC; all https under the issuer.
			for _, k := range []string{"token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint", "introspection_endpoint"} {
				s, _ := m[k].(string)
				if u, err := url.Parse(s); err != nil || u.Scheme != "https" || !strings.HasPrefix(s, issuer+"/") {
					t.Errorf("%s = %v: want an https URL under the issuer", k, m[k])
				}
			}
			// response_types_supported: REQUIRED in both; values of RFC 7591
			// §2 and OAuth 2.0 Multiple Response Types, never an implicit one.
			for _, rt := range strs("response_types_supported") {
				if rt != "code" {
					t.Errorf("response type %q: only code is ever to be offered (RFC 9700 §2.1.2)", rt)
				}
			}
			// OIDC REQUIRED: subject_types_supported within public and
			// pairwise; id_token_signing_alg_values_supported with RS256.
			for _, st := range strs("subject_types_supported") {
				if st != "public" && st != "pairwise" {
					t.Errorf("subject type %q", st)
				}
			}
			if algs := strs("id_token_signing_alg_values_supported"); !slices.Contains(algs, "RS256") || slices.Contains(algs, "none") {
				t.Errorf("id_token_signing_alg_values_supported %q", algs)
			}
			// RECOMMENDED and OPTIONAL arrays, when present, are well-formed.
			for _, k := range []string{"scopes_supported", "claims_supported", "grant_types_supported",
				"token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported",
				"introspection_endpoint_auth_methods_supported"} {
				strs(k)
			}
			if !slices.Contains(strs("scopes_supported"), "openid") {
				t.Error("scopes_supported lacks openid (OIDC Discovery §3: MUST)")
			}
			// The grants offered are exactly the implemented ones, none of
			// them needing an authorization endpoint, so its absence agrees
			// with RFC 8414 §2 (the OIDC Discovery gap of decision 4).
			// (Without an Interaction the server has no authorization
			// endpoint; authorization_code is then left out.)
			grants := strs("grant_types_supported")
			want := slices.DeleteFunc(slices.Clone(manage.Grants), func(g string) bool { return g == manage.GrantAuthorizationCode })
			if !slices.Equal(grants, want) {
				t.Errorf("grant_types_supported %q, want %q", grants, want)
			}
			for _, g := range grants {
				if g == "authorization_code" || g == "implicit" {
					t.Errorf("grant %q offered without an authorization_endpoint", g)
				}
			}
			if _, has := m["authorization_endpoint"]; has {
				t.Error("authorization_endpoint published: update decision 4 and this test")
			}
		})
	}
}
