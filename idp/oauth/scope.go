package oauth

import (
	"slices"
	"strings"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// OpenID Connect scopes (OIDC Core §5.4) every client may ask for in a user
// grant. The scope of the admin API, manage.ScopeAdmin, the password grant
// never gets (SECURITY-REQUIREMENTS decision 1).
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
)

// Limits on a requested scope (IN-03). checkLengths refuses a longer one
// as invalid_request before parseScope sees it.
const (
	MaxScopeTokens = 64
	MaxScopeBytes  = 1024
)

func isOIDCScope(s string) bool {
	return s == ScopeOpenID || s == ScopeProfile || s == ScopeEmail
}

func invalidScope(description string) *web.Error {
	return &web.Error{Code: web.ErrInvalidScope, Description: description}
}

// parseScope splits a scope parameter (RFC 6749 §3.3: scope-tokens separated
// by single spaces) and drops repeats. An empty parameter is nil. Its
// length is checkLengths' to bound, before client authentication.
func parseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, " ")
	var out []string
	for _, p := range parts {
		if !manage.ValidScopeToken(p) {
			return nil, invalidScope("scope must be scope-tokens separated by single spaces (RFC 6749 §3.3)")
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// passwordForbidden reports whether the password grant may never give the
// scope s: manage.ScopeAdmin always, and the operator's
// Config.PasswordForbiddenScopes (TE-16, RFC 6749 §10.7).
func passwordForbidden(s string, forbidden []string) bool {
	return s == manage.ScopeAdmin || slices.Contains(forbidden, s)
}

// scopeAllowed reports whether grantType may give client the scope s;
// forbidden is Config.PasswordForbiddenScopes, which binds the password
// grant only. A refresh is held to the rule of the grant that started its
// family (storage.RefreshFamily.Grant): a scope added to the list later
// leaves existing password sessions at their next refresh (TE-16), and
// leaves authorization-code sessions alone.
func scopeAllowed(s string, c storage.Client, grantType string, forbidden []string) bool {
	switch {
	case grantType == manage.GrantClientCredentials && isOIDCScope(s):
		return false // no user, so nothing for OIDC to describe
	case grantType == manage.GrantPassword && passwordForbidden(s, forbidden):
		return false // never through a user's password (TE-16)
	case grantType != manage.GrantClientCredentials && s == manage.ScopeAdmin:
		return false // never to a user's grant
	case isOIDCScope(s):
		return true
	}
	return c.Scopes.Has(s)
}

// grantScope decides the scope of a new grant; forbidden is
// Config.PasswordForbiddenScopes. A requested scope must be allowed in full
// (invalid_scope otherwise, RFC 6749 §5.2); one the password grant never
// gives is refused whether or not the client is registered for it (TE-16).
// No scope gives the client's registered scopes that the grant allows,
// without openid: an ID token is issued only when openid is asked for (OIDC
// Core §3.1.2.1), as Keycloak and Hydra do.
func grantScope(requested []string, c storage.Client, grantType string, forbidden []string) ([]string, error) {
	if requested == nil {
		var out []string
		for _, s := range c.Scopes {
			if s != ScopeOpenID && scopeAllowed(s, c, grantType, forbidden) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, s := range requested {
		if grantType == manage.GrantPassword && passwordForbidden(s, forbidden) {
			return nil, invalidScope("the requested scope is not available through the password grant")
		}
		if grantType == manage.GrantClientCredentials && isOIDCScope(s) {
			return nil, invalidScope("scope " + s + " describes a user, and client_credentials has none " +
				"(the client acts for itself): leave it out, or use a grant with a user")
		}
		if !scopeAllowed(s, c, grantType, forbidden) {
			return nil, invalidScope("the requested scope is not allowed for this client")
		}
	}
	return requested, nil
}

// narrowScope decides the scope of a refresh: the requested scope must lie
// within the original grant (RFC 6749 §6); no scope means the original, so
// a refresh never gains a scope. Scopes the client has since lost, or that
// forbidden (Config.PasswordForbiddenScopes) has since gained, are dropped
// from a default and refused when asked for.
func narrowScope(requested []string, granted storage.List, c storage.Client, familyGrant string, forbidden []string) ([]string, error) {
	if requested == nil {
		var out []string
		for _, s := range granted {
			if scopeAllowed(s, c, familyGrant, forbidden) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, s := range requested {
		if !granted.Has(s) || !scopeAllowed(s, c, familyGrant, forbidden) {
			return nil, invalidScope("a refresh can only keep or narrow the original scope")
		}
	}
	return requested, nil
}

// requestedAudience is the audience or RFC 8707 resource parameter, ""
// when neither is given; both with different values are invalid_request.
func requestedAudience(f form) (string, error) {
	aud, res := f["audience"], f["resource"]
	if aud != "" && res != "" && aud != res {
		return "", web.BadRequest("send one of audience and resource")
	}
	if aud == "" {
		aud = res
	}
	return aud, nil
}

// resolveAudience picks the audience of an access token of a new grant:
// the audience or RFC 8707 resource parameter when given (it must be
// registered for the client, else invalid_target), else the client's first
// audience, else the issuer itself. A refresh keeps its grant's audience
// instead (refreshAudience).
func resolveAudience(f form, c storage.Client, issuer string) (string, error) {
	aud, err := requestedAudience(f)
	switch {
	case err != nil:
		return "", err
	case aud != "":
		if !c.Audiences.Has(aud) {
			return "", &web.Error{Code: web.ErrInvalidTarget, Description: "the requested audience is not registered for this client"}
		}
		return aud, nil
	case len(c.Audiences) > 0:
		return c.Audiences[0], nil
	}
	return issuer, nil
}

func hasScope(scope []string, s string) bool { return slices.Contains(scope, s) }
