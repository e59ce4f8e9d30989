package idp

import (
	"context"
	"errors"
	"strings"

	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/storage"
)

// accountTokens is account.Tokens over the token endpoint's access-token
// validation: the self-service endpoints (package account) take a user's
// access token and never see the token code.
type accountTokens struct{ s *Server }

// TokenUser validates raw as /userinfo does (oauth's ValidateAccessToken) and
// returns its client and the user it speaks for (oauth's TokenUser).
func (a accountTokens) TokenUser(ctx context.Context, raw string) (string, storage.User, error) {
	claims, err := a.s.oauth.ValidateAccessToken(ctx, raw)
	if errors.Is(err, oauth.ErrInvalidToken) {
		return "", storage.User{}, account.ErrInvalidToken
	}
	if err != nil {
		return "", storage.User{}, err
	}
	if strings.HasPrefix(claims.Subject, manage.ClientSubjectPrefix) {
		return "", storage.User{}, account.ErrNotUserToken
	}
	u, ok, err := a.s.oauth.TokenUser(ctx, claims)
	if err != nil {
		return "", storage.User{}, err
	}
	if !ok {
		return "", storage.User{}, account.ErrInvalidToken
	}
	return claims.ClientID, u, nil
}
