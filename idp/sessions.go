package idp

import (
	"context"
	"time"

	"github.com/keyward/keyward/idp/audit"
)

// Ending every session of a user or a client is written once, here, for
// every place that does it: the CLI (users set-password and disable,
// clients disable), the admin API (PATCH of a user or a client, DELETE
// /admin/v1/users/{id}/sessions) and POST /account/password.

// UserSessionStore is the part of storage that ending a user's sessions
// needs.
type UserSessionStore interface {
	RevokeUserRefreshFamilies(ctx context.Context, userID, reason string, now time.Time) (int64, error)
}

// ClientSessionStore is the part of storage that ending a client's
// sessions needs.
type ClientSessionStore interface {
	RevokeClientRefreshFamilies(ctx context.Context, clientID, reason string, now time.Time) (int64, error)
}

// EndUserSessions revokes every live refresh-token family of the user with
// reason at now, which also ends the access tokens bound to them by sid,
// and, when any was live, records a token_revoked event with the user as
// subject and reason as its reason. by says who ended them (Actor,
// ClientID, UserAgent); its Type, Subject and Reason are set here. It
// returns how many families it revoked. On error it records nothing and
// returns the store's error as it is, for the caller to word.
func EndUserSessions(ctx context.Context, store UserSessionStore, aud *audit.Auditor, by audit.Event,
	userID, reason string, now time.Time) (int64, error) {
	n, err := store.RevokeUserRefreshFamilies(ctx, userID, reason, now)
	return recordEnded(ctx, aud, by, userID, reason, n, err)
}

// EndClientSessions is EndUserSessions for every live refresh-token family
// of a client (CA-09): the event's subject and client_id are the client,
// whoever ended them.
func EndClientSessions(ctx context.Context, store ClientSessionStore, aud *audit.Auditor, by audit.Event,
	clientID, reason string, now time.Time) (int64, error) {
	n, err := store.RevokeClientRefreshFamilies(ctx, clientID, reason, now)
	by.ClientID = clientID
	return recordEnded(ctx, aud, by, clientID, reason, n, err)
}

// recordEnded records the token_revoked event of a revocation that ended n
// families about subject, unless it failed or none was live.
func recordEnded(ctx context.Context, aud *audit.Auditor, by audit.Event, subject, reason string, n int64, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if n > 0 {
		by.Type, by.Subject, by.Reason = audit.TokenRevoked, subject, reason
		aud.Record(ctx, by)
	}
	return n, nil
}
