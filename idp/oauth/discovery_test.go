package oauth_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/idptest"
)

// TestDiscoveryMetadata checks KM-09: both documents agree, the issuer is
// exact, endpoints hang off it, and nothing advertises "none".
func TestDiscoveryMetadata(t *testing.T) {
	const issuer = "https://id.example.test"
	h, _ := idptest.KeyedServer(t, issuer)
	docs := map[string]map[string]any{}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		w := idptest.Serve(h, http.MethodGet, path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("%s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
			t.Fatalf("%s: Cache-Control %q", path, cc)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		docs[path] = m
	}
	oidc, rfc := docs["/.well-known/openid-configuration"], docs["/.well-known/oauth-authorization-server"]
	if oidc["issuer"] != issuer {
		t.Fatalf("issuer %v", oidc["issuer"])
	}
	for k, v := range oidc {
		if b, _ := json.Marshal(v); string(b) != mustJSON(rfc[k]) {
			t.Errorf("field %s differs between the two documents", k)
		}
	}
	for _, k := range []string{"token_endpoint", "jwks_uri", "revocation_endpoint", "introspection_endpoint", "userinfo_endpoint"} {
		if s, _ := oidc[k].(string); !strings.HasPrefix(s, issuer+"/") {
			t.Errorf("%s = %v, not under the issuer", k, oidc[k])
		}
	}
	for _, k := range []string{"token_endpoint_auth_signing_alg_values_supported", "authorization_endpoint"} {
		if _, has := oidc[k]; has {
			t.Errorf("metadata advertises %s, which Keyward does not support", k)
		}
	}
	if got := mustJSON(oidc["grant_types_supported"]); got != `["password","refresh_token","client_credentials"]` {
		t.Errorf("grant_types_supported %s", got)
	}
	if got := mustJSON(oidc["response_types_supported"]); got != `["code"]` {
		t.Errorf("response_types_supported %s, want [\"code\"]: never an implicit response type (docs/security.md decision 4)", got)
	}
	if got := mustJSON(oidc["id_token_signing_alg_values_supported"]); got != `["RS256"]` {
		t.Errorf("id_token_signing_alg_values_supported %s", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestJWKSHandler checks KM-03 and the caching contract: public members
// only, a strong ETag, public max-age, and 304 for a matching
// If-None-Match in any of its forms.
func TestJWKSHandler(t *testing.T) {
	h, km := idptest.KeyedServer(t, "http://localhost:8080")
	w := idptest.Serve(h, http.MethodGet, "/.well-known/jwks.json")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || w.Header().Get("Cache-Control") != "public, max-age=120" {
		t.Fatalf("ETag %q Cache-Control %q", etag, w.Header().Get("Cache-Control"))
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys published, want active and next", len(set.Keys))
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, has := k[private]; has {
				t.Fatalf("JWKS key has private member %q", private)
			}
		}
		if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("key %v", k)
		}
	}
	tests := []struct {
		name, inm string
		want      int
	}{
		{"same tag", etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"in a list", `"other", ` + etag, http.StatusNotModified},
		{"star", "*", http.StatusNotModified},
		{"other tag", `"other"`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := idptest.Serve(h, http.MethodGet, "/.well-known/jwks.json", "If-None-Match", tt.inm)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == http.StatusNotModified && (w.Body.Len() != 0 || w.Header().Get("ETag") != etag) {
				t.Fatalf("304 with body %d bytes, ETag %q", w.Body.Len(), w.Header().Get("ETag"))
			}
		})
	}
	// A rotation changes the document and its tag.
	if _, err := km.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if w := idptest.Serve(h, http.MethodGet, "/.well-known/jwks.json", "If-None-Match", etag); w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Fatalf("after rotation: %d, ETag %q", w.Code, w.Header().Get("ETag"))
	}
}

// BenchmarkJWKSHandler measures the JWKS endpoint through the full handler
// stack (middleware, router, metrics), answering 200 and 304.
func BenchmarkJWKSHandler(b *testing.B) {
	h, km := idptest.KeyedServer(b, "http://localhost:8080")
	_, etag := km.JWKS()
	for _, bc := range []struct {
		name   string
		header []string
	}{{"200", nil}, {"304", []string{"If-None-Match", etag}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if w := idptest.Serve(h, http.MethodGet, "/.well-known/jwks.json", bc.header...); w.Code >= 400 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}
