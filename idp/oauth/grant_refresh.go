package oauth

import (
	"context"
	"errors"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// refreshGrant is RFC 6749 §6 with rotation on every use (RFC 9700
// §4.14.2): the presented token is used up and a successor returned. A
// retry of the just-used token within Config.RefreshReuseWindow gets the
// same successor while that successor is unused; any other reuse revokes
// the whole family.
type refreshGrant struct{ s *Provider }

// errBadRefresh is the one answer to every refresh token that cannot be
// used: unknown, another client's, expired, revoked, reused, or its user
// gone (RFC 6749 §5.2 invalid_grant).
func errBadRefresh() *web.Error {
	return &web.Error{Code: web.ErrInvalidGrant, Description: "the refresh token is invalid, expired or revoked"}
}

// refreshAudience is the audience of a refreshed access token: the one
// the family was granted, since a refresh is limited to the resources of
// the original grant (RFC 8707 §2, "Access Token Request"). Asking for
// another audience or resource is invalid_target, registered for the
// client or not; so is a refresh of a family whose audience the client is
// no longer registered for (a token for the issuer itself, the audience of
// a client without any, stays allowed).
func refreshAudience(f form, c storage.Client, granted, issuer string) (string, error) {
	aud, err := requestedAudience(f)
	switch {
	case err != nil:
		return "", err
	case aud != "" && aud != granted:
		return "", &web.Error{Code: web.ErrInvalidTarget, Description: "a refresh keeps the audience of the original grant"}
	case granted == "" || (granted != issuer && !c.Audiences.Has(granted)):
		return "", &web.Error{Code: web.ErrInvalidTarget, Description: "the audience of the original grant is no longer registered for this client"}
	}
	return granted, nil
}

func (g refreshGrant) exchange(ctx context.Context, c storage.Client, f form) (issuance, error) {
	s := g.s
	presented := f["refresh_token"]
	if presented == "" {
		return issuance{}, web.BadRequest("refresh_token is required")
	}
	requested, err := parseScope(f["scope"])
	if err != nil {
		return issuance{}, err
	}
	if !looksLikeRefreshToken(presented) {
		return issuance{}, errBadRefresh()
	}
	var scope []string
	var aud string
	now := s.now()
	res, err := s.cfg.Store.RotateRefreshToken(ctx, storage.Rotation{
		Hash: RefreshHash(presented), ClientID: c.ID, Now: now,
		IdleTTL: s.cfg.RefreshTokenIdleTTL, ReuseWindow: s.cfg.RefreshReuseWindow,
		Successor: func(salt []byte) []byte { return RefreshHash(successorToken(presented, salt)) },
		Check: func(fam storage.RefreshFamily) error {
			var err error
			if scope, err = narrowScope(requested, fam.Scope, c, fam.Grant, s.cfg.PasswordForbiddenScopes); err != nil {
				return err
			}
			aud, err = refreshAudience(f, c, fam.Audience, s.cfg.Issuer)
			return err
		},
	})
	if err != nil {
		var oe *web.Error
		if errors.As(err, &oe) {
			return issuance{}, oe
		}
		return issuance{}, err
	}
	fam := res.Family
	switch res.Outcome {
	case storage.Rotated:
	case storage.Replayed:
		s.metrics.RefreshReuse(metrics.ReuseReplayedInWindow)
	case storage.RefreshReuse:
		s.metrics.RefreshReuse(metrics.ReuseFamilyRevoked)
		s.log.WarnContext(ctx, "refresh token reuse detected", "family_id", fam.ID, "client_id", c.ID, "sub", fam.UserID)
		s.audit.Record(ctx, audit.Event{Type: audit.RefreshReuseDetected, Reason: "family_revoked", Actor: fam.UserID, Subject: fam.ID, ClientID: c.ID})
		return issuance{}, errBadRefresh()
	default:
		s.log.InfoContext(ctx, "refresh rejected", "client_id", c.ID, "family_id", fam.ID, "reason", res.Outcome.String())
		return issuance{}, errBadRefresh()
	}
	is := issuance{
		subject: fam.UserID, userGrant: true, scope: scope, audience: aud, authTime: fam.AuthTime.Time,
		familyID: fam.ID, refresh: successorToken(presented, res.Salt),
	}
	if hasScope(scope, ScopeOpenID) && (hasScope(scope, ScopeProfile) || hasScope(scope, ScopeEmail)) {
		u, err := s.cfg.Store.User(ctx, fam.UserID)
		if err != nil {
			return issuance{}, err
		}
		is.user = &u
	}
	s.log.InfoContext(ctx, "refresh token rotated", "client_id", c.ID, "family_id", fam.ID, "sub", fam.UserID, "replayed", res.Outcome == storage.Replayed)
	return is, nil
}
