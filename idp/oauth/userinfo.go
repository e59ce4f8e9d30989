package oauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
)

// userinfoResponse is OIDC Core §5.3.2.
type userinfoResponse struct {
	Subject           string `json:"sub"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// Userinfo serves GET and POST /userinfo (OIDC Core §5.3). The access token
// comes in the Authorization header or, on POST, the form field
// access_token (RFC 6750 §2.1, §2.2), never both and never the query. It
// needs the openid scope and a user behind it.
func (s *Provider) Userinfo(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	tok, err := bearerToken(w, r)
	if err != nil {
		return err
	}
	if tok == "" {
		return web.BearerError(w, "", "an access token is required", http.StatusUnauthorized)
	}
	claims, err := s.ValidateAccessToken(ctx, tok)
	if errors.Is(err, ErrInvalidToken) {
		return web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized)
	}
	if err != nil {
		return err
	}
	scope := strings.Fields(claims.Scope)
	if !hasScope(scope, ScopeOpenID) || strings.HasPrefix(claims.Subject, manage.ClientSubjectPrefix) {
		return web.BearerError(w, web.ErrInsufficientScope, "the access token lacks the openid scope", http.StatusForbidden)
	}
	u, ok, err := s.TokenUser(ctx, claims)
	if err != nil {
		return err
	}
	if !ok {
		return web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized)
	}
	var c idClaims
	c.addUser(&u, scope)
	web.NoStore(w)
	web.WriteJSON(w, http.StatusOK, userinfoResponse{Subject: u.ID, Name: c.Name, PreferredUsername: c.PreferredUsername,
		Email: c.Email, EmailVerified: c.EmailVerified})
	return nil
}

// bearerToken finds the one access token of a request: the Authorization
// Bearer header (scheme case-insensitive) or a POST form access_token. Two
// transports, two headers or a query access_token are 400 invalid_request
// (RFC 6750 §2, §3.1).
func bearerToken(w http.ResponseWriter, r *http.Request) (string, error) {
	malformed := func(d string) error { return web.BearerError(w, web.ErrInvalidRequest, d, http.StatusBadRequest) }
	if r.URL.Query().Has("access_token") {
		return "", malformed("send the access token in the Authorization header")
	}
	auths := r.Header.Values("Authorization")
	if len(auths) > 1 {
		return "", malformed("send one Authorization header")
	}
	var tok string
	if len(auths) == 1 {
		scheme, val, _ := strings.Cut(auths[0], " ")
		if !strings.EqualFold(scheme, "Bearer") || val == "" || strings.ContainsAny(val, " \t,") {
			return "", web.BearerError(w, web.ErrInvalidToken, "the Authorization header must be Bearer and one token", http.StatusUnauthorized)
		}
		tok = val
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "" {
		f, err := parseForm(r)
		if err != nil {
			return "", malformed("the request body must be application/x-www-form-urlencoded")
		}
		if f["access_token"] != "" {
			if tok != "" {
				return "", malformed("send the access token once")
			}
			tok = f["access_token"]
		}
	}
	return tok, nil
}
