package oauth

import (
	"errors"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Revoke serves POST /oauth2/revoke (RFC 7009). The client must
// authenticate (CA-10). A refresh token revokes its whole family, an access
// token's jti is refused at introspection and /userinfo until it expires.
// Unknown, malformed and expired tokens answer 200 (§2.2); a token of
// another client is refused with unauthorized_client and stays valid.
// token_type_hint is only a hint: the token's shape decides.
func (s *Provider) Revoke(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	if err := s.callers.Allow(ctx, c); err != nil {
		return err
	}
	tok := f["token"]
	if tok == "" {
		return web.BadRequest("token is required")
	}
	notYours := &web.Error{Code: web.ErrUnauthorizedClient, Description: "the token was not issued to this client"}
	switch {
	case looksLikeRefreshToken(tok):
		_, fam, err := s.cfg.Store.RefreshToken(ctx, RefreshHash(tok))
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		case fam.ClientID != c.ID:
			return notYours
		default:
			if err := s.cfg.Store.RevokeRefreshFamily(ctx, fam.ID, storage.RevokeByClient, s.now()); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			s.log.InfoContext(ctx, "token revoked", "token_type", "refresh_token", "client_id", c.ID, "sub", fam.UserID, "family_id", fam.ID)
			s.audit.Record(ctx, audit.Event{Type: audit.TokenRevoked, Reason: "refresh_token", Actor: c.ID, Subject: fam.ID, ClientID: c.ID})
		}
	default:
		claims, err := s.ValidateAccessToken(ctx, tok)
		switch {
		case errors.Is(err, ErrInvalidToken):
		case err != nil:
			return err
		case claims.ClientID != c.ID:
			return notYours
		default:
			if err := s.cfg.Store.RevokeAccessToken(ctx, claims.ID, time.Unix(claims.Expiry, 0)); err != nil {
				return err
			}
			s.log.InfoContext(ctx, "token revoked", "token_type", "access_token", "client_id", c.ID, "sub", claims.Subject, "jti", claims.ID)
			s.audit.Record(ctx, audit.Event{Type: audit.TokenRevoked, Reason: "access_token", Actor: c.ID, Subject: claims.ID, ClientID: c.ID})
		}
	}
	web.NoStore(w)
	w.WriteHeader(http.StatusOK)
	return nil
}
