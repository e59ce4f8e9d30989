package oauth

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
)

// discoveryMaxAge is how long clients may cache the metadata documents.
const discoveryMaxAge = 300

// metadata is the authorization server metadata (RFC 8414 §2) and the OIDC
// provider metadata (OIDC Discovery §3) in one document. Keyward has no
// authorization endpoint yet, so RFC 8414 is authoritative; the OIDC
// document is served for clients that need it (docs/security.md). With an
// Interaction configured, the authorization endpoint, end_session_endpoint
// and PKCE fields complete it (issue 15).
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	EndSessionEndpoint                string   `json:"end_session_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	AuthorizationResponseIss          bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	PromptValuesSupported             []string `json:"prompt_values_supported,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethods          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	AccessTokenSigningAlgValues       []string `json:"access_token_signing_alg_values_supported,omitempty"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ServiceDocumentation              string   `json:"service_documentation,omitempty"`
	UserinfoSigningAlgValuesSupported []string `json:"userinfo_signing_alg_values_supported,omitempty"`
}

// responseTypes is response_types_supported, REQUIRED and non-empty in
// RFC 8414 §2 and OIDC Discovery §3 (Authlib refuses metadata without it).
// Response types belong to the authorization endpoint, which Keyward does
// not have yet, so no value is true today. "code" is the one the
// authorization-code flow will make true, and the one every client
// library accepts; the document stays honest about the gap because it has
// no authorization_endpoint and grant_types_supported has no
// authorization_code (docs/security.md decision 4).
var responseTypes = []string{"code"}

// discoveryDoc returns the metadata document: built from the configuration
// once, and its signing algorithm lists again whenever the JWKS changes.
func (s *Provider) discoveryDoc() []byte {
	jwks, etag := s.cfg.Keys.JWKS()
	if c := s.discovery.Load(); c != nil && etag != "" && c.etag == etag {
		return c.doc
	}
	m := s.discoveryBase()
	// Every algorithm of a published key (docs/keys.md): during an
	// algorithm migration the old and the new one.
	algs := publishedAlgorithms(jwks)
	m.IDTokenSigningAlgValuesSupported = algs
	m.AccessTokenSigningAlgValues = algs
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a fixed struct of strings always marshals
	}
	s.discovery.Store(&cachedDiscovery{etag: etag, doc: b})
	return b
}

// signingAlgOrder is the order algorithms are listed in: the default first.
var signingAlgOrder = []string{"RS256", "ES256", "EdDSA"}

// publishedAlgorithms lists the distinct alg values of the keys in the JWKS
// document jwks, RS256 first; with none (no key loaded yet) it answers
// RS256, the default.
func publishedAlgorithms(jwks []byte) []string {
	var doc struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	_ = json.Unmarshal(jwks, &doc) // a malformed document lists the default
	var algs []string
	for _, k := range doc.Keys {
		if k.Alg != "" && k.Alg != "none" && !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	if len(algs) == 0 {
		return []string{"RS256"}
	}
	rank := func(a string) int {
		if i := slices.Index(signingAlgOrder, a); i >= 0 {
			return i
		}
		return len(signingAlgOrder)
	}
	slices.SortFunc(algs, func(a, b string) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return algs
}

// discoveryBase is the metadata of the configuration, built once.
func (s *Provider) discoveryBase() metadata {
	s.discoveryOnce.Do(func() {
		authMethods := []string{"client_secret_basic", "client_secret_post"}
		m := metadata{
			Issuer:                           s.cfg.Issuer,
			TokenEndpoint:                    s.url("/oauth2/token"),
			JWKSURI:                          s.url("/.well-known/jwks.json"),
			RevocationEndpoint:               s.url("/oauth2/revoke"),
			IntrospectionEndpoint:            s.url("/oauth2/introspect"),
			UserinfoEndpoint:                 s.url("/userinfo"),
			GrantTypesSupported:              manage.Grants,
			ResponseTypesSupported:           responseTypes,
			ScopesSupported:                  []string{"openid", "profile", "email"},
			TokenEndpointAuthMethods:         append(authMethods, "none"),
			RevocationEndpointAuthMethods:    append(authMethods, "none"), // public clients revoke their own tokens
			IntrospectionEndpointAuthMethods: authMethods,
			SubjectTypesSupported:            []string{"public"},
			ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "at_hash",
				"name", "preferred_username", "email", "email_verified"},
		}
		if s.cfg.Interaction != nil {
			// The authorization endpoint makes the OIDC document complete
			// (issue 15).
			m.AuthorizationEndpoint = s.url(AuthorizePath)
			m.EndSessionEndpoint = s.url(LogoutPath)
			m.ResponseModesSupported = []string{"query", "form_post"}
			m.CodeChallengeMethodsSupported = []string{"S256"}
			m.AuthorizationResponseIss = true
			m.PromptValuesSupported = []string{"none", "login", "consent"}
			m.ClaimsSupported = append(m.ClaimsSupported, "nonce", "amr", "sid")
		} else {
			m.GrantTypesSupported = slices.DeleteFunc(slices.Clone(m.GrantTypesSupported),
				func(g string) bool { return g == manage.GrantAuthorizationCode })
		}
		s.metadataBase = m
	})
	return s.metadataBase
}

// discoveryState caches the metadata document.
type discoveryState struct {
	discoveryOnce sync.Once
	metadataBase  metadata
	discovery     atomic.Pointer[cachedDiscovery]
}

// cachedDiscovery is the metadata document built for the JWKS of etag.
type cachedDiscovery struct {
	etag string
	doc  []byte
}

// WellKnown serves /.well-known/openid-configuration and
// /.well-known/oauth-authorization-server.
func (s *Provider) WellKnown(w http.ResponseWriter, r *http.Request) error {
	b := s.discoveryDoc()
	h := w.Header()
	h.Set("Content-Type", web.ContentTypeJSON)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(discoveryMaxAge))
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
	return nil
}
