package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// introspection is an RFC 7662 §2.2 response. Inactive is exactly
// {"active":false}.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  string `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	ID        string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"` // Bearer, or refresh_token
	TokenUse  string `json:"token_use,omitempty"`  // access_token or refresh_token
	AuthTime  int64  `json:"auth_time,omitempty"`
	SessionID string `json:"sid,omitempty"`
}

// Introspect serves POST /oauth2/introspect (RFC 7662). Only confidential
// clients may call it (CA-10). A token is active only if it is valid now
// and the caller's business (mayIntrospect): an access token issued to the
// caller or for an audience the caller is the resource server of, a
// refresh token of the caller's own.
func (s *Provider) Introspect(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	if c.Public {
		return errClientAuth()
	}
	if err := s.callers.Allow(ctx, c); err != nil {
		return err
	}
	tok := f["token"]
	if tok == "" {
		return web.BadRequest("token is required")
	}
	var resp introspection
	if looksLikeRefreshToken(tok) {
		resp, err = s.introspectRefresh(ctx, c, tok)
	} else {
		resp, err = s.introspectAccess(ctx, c, tok)
	}
	if err != nil {
		return err
	}
	web.NoStore(w)
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Provider) introspectAccess(ctx context.Context, c storage.Client, tok string) (introspection, error) {
	claims, err := s.ValidateAccessToken(ctx, tok)
	if errors.Is(err, ErrInvalidToken) {
		return introspection{}, nil
	}
	if err != nil {
		return introspection{}, err
	}
	if !mayIntrospect(c, claims) {
		return introspection{}, nil
	}
	active, err := s.subjectActive(ctx, claims.Subject)
	if !strings.HasPrefix(claims.Subject, manage.ClientSubjectPrefix) {
		_, active, err = s.TokenUser(ctx, claims)
	}
	if err != nil || !active {
		return introspection{}, err
	}
	return introspection{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Subject: claims.Subject,
		Audience: claims.Audience, Issuer: claims.Issuer, Expiry: claims.Expiry, IssuedAt: claims.IssuedAt,
		ID: claims.ID, TokenType: "Bearer", TokenUse: "access_token", AuthTime: claims.AuthTime, SessionID: claims.SessionID,
	}, nil
}

// mayIntrospect reports whether the caller c may learn about an access
// token: it was issued to c, or c holds the resource-server role for its
// audience (IntrospectAudiences). Being registered to request tokens for an
// audience (Audiences) is not that role: an app calling an API is not the
// API. Anything else is answered {"active":false} (RFC 7662 §2.2), as for a
// token that does not exist.
func mayIntrospect(c storage.Client, claims AccessClaims) bool {
	return claims.ClientID == c.ID || c.IntrospectAudiences.Has(claims.Audience)
}

// TokenUser returns the user a user's access token speaks for, and false
// when that user or the token's client is gone or disabled: a user token
// dies with its client too (CA-09), even one with no refresh family whose
// revocation would have ended it.
func (s *Provider) TokenUser(ctx context.Context, claims AccessClaims) (storage.User, bool, error) {
	if ok, err := s.subjectActive(ctx, manage.ClientSubjectPrefix+claims.ClientID); err != nil || !ok {
		return storage.User{}, false, err
	}
	u, err := s.cfg.Store.User(ctx, claims.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, false, nil
	}
	if err != nil {
		return storage.User{}, false, err
	}
	return u, !u.Disabled, nil
}

// subjectActive reports whether the user or client a token speaks for can
// still use it: it exists and is not disabled.
func (s *Provider) subjectActive(ctx context.Context, sub string) (bool, error) {
	var disabled bool
	var err error
	if id, ok := strings.CutPrefix(sub, manage.ClientSubjectPrefix); ok {
		var c storage.Client
		c, err = s.cfg.Store.Client(ctx, id)
		disabled = c.Disabled
	} else {
		var u storage.User
		u, err = s.cfg.Store.User(ctx, sub)
		disabled = u.Disabled
	}
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil && !disabled, err
}

func (s *Provider) introspectRefresh(ctx context.Context, c storage.Client, tok string) (introspection, error) {
	t, fam, err := s.cfg.Store.RefreshToken(ctx, RefreshHash(tok))
	if errors.Is(err, storage.ErrNotFound) {
		return introspection{}, nil
	}
	if err != nil {
		return introspection{}, err
	}
	now := s.now()
	if fam.ClientID != c.ID || !fam.RevokedAt.IsZero() || !t.UsedAt.IsZero() ||
		!now.Before(fam.ExpiresAt.Time) || !now.Before(t.IdleExpiresAt.Time) {
		return introspection{}, nil
	}
	u, err := s.cfg.Store.User(ctx, fam.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return introspection{}, nil
	}
	if err != nil {
		return introspection{}, err
	}
	if u.Disabled || u.PasswordChangedAt.After(fam.AuthTime.Time) {
		return introspection{}, nil
	}
	return introspection{
		Active: true, Scope: strings.Join(t.Scope, " "), ClientID: fam.ClientID, Subject: fam.UserID,
		Audience: fam.Audience, Issuer: s.cfg.Issuer, Expiry: t.IdleExpiresAt.Unix(), IssuedAt: t.CreatedAt.Unix(),
		TokenType: "refresh_token", TokenUse: "refresh_token", AuthTime: fam.AuthTime.Unix(), SessionID: fam.ID,
	}, nil
}
