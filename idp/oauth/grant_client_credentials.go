package oauth

import (
	"context"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// clientCredentialsGrant is RFC 6749 §4.4: a confidential client acting for
// itself. It gets no refresh token (§4.4.3) and no ID token, and its sub is
// manage.ClientSubjectPrefix + client id, which no user id can equal (AT-05).
type clientCredentialsGrant struct{ s *Provider }

func (g clientCredentialsGrant) exchange(ctx context.Context, c storage.Client, f form) (issuance, error) {
	if c.Public {
		return issuance{}, &web.Error{Code: web.ErrUnauthorizedClient, Description: "client_credentials is for confidential clients only"}
	}
	requested, err := parseScope(f["scope"])
	if err != nil {
		return issuance{}, err
	}
	scope, err := grantScope(requested, c, manage.GrantClientCredentials, nil)
	if err != nil {
		return issuance{}, err
	}
	aud, err := resolveAudience(f, c, g.s.cfg.Issuer)
	if err != nil {
		return issuance{}, err
	}
	return issuance{subject: manage.ClientSubjectPrefix + c.ID, scope: scope, audience: aud}, nil
}
