package manage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/storage"
)

// UserSessionStore is the part of storage that ending a user's sessions
// needs.
type UserSessionStore interface {
	RevokeUserRefreshFamilies(ctx context.Context, userID, reason string, now time.Time) (int64, error)
}

// LoginSessionStore is the part of storage that ends a user's browser
// login sessions (idp/login, issue 15). When the Store has it (as
// *storage.DB does), ending a user's sessions ends these too, and
// records session_ended.
type LoginSessionStore interface {
	RevokeUserLoginSessions(ctx context.Context, userID string, now time.Time) (int64, error)
}

// ClientSessionStore is the part of storage that ending a client's
// sessions needs.
type ClientSessionStore interface {
	RevokeClientRefreshFamilies(ctx context.Context, clientID, reason string, now time.Time) (int64, error)
}

// Store is the part of storage the operations need.
type Store interface {
	CreateUser(ctx context.Context, u *storage.User) error
	UpdateUser(ctx context.Context, id string, update func(*storage.User) error) (storage.User, error)
	DeleteUser(ctx context.Context, id string) error
	CreateClient(ctx context.Context, c *storage.Client) error
	UpdateClient(ctx context.Context, id string, update func(*storage.Client) error) (storage.Client, error)
	DeleteClient(ctx context.Context, id string) error
	UserSessionStore
	ClientSessionStore
	TokenStore
}

// Recorder is the part of the audit trail the operations need
// (*audit.Auditor).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Unlocker clears an account's failed-login counts (*guard.Throttler).
type Unlocker interface {
	Unlock(ctx context.Context, account string) error
}

// Ops performs the operations. Every one takes by, the audit event of who
// acts (Actor, and UserAgent or ClientID where the caller records them: the
// admin API names the client it changes as ClientID, the CLI does not);
// the operation sets its Type and Subject, and keeps by's Reason where it
// has none of its own. The token_revoked event of ending a client's
// sessions always names the client as ClientID.
type Ops struct {
	store  Store
	audit  Recorder
	unlock Unlocker
	now    func() time.Time
	mail   MailConfig // SetMail; the zero Sender mails nothing
}

// New returns the operations on store, recording on rec. unlock may be nil
// when Unlock is not used; now may be nil (time.Now).
func New(store Store, rec Recorder, unlock Unlocker, now func() time.Time) *Ops {
	if now == nil {
		now = time.Now
	}
	o := &Ops{store: store, audit: rec, unlock: unlock, now: now}
	o.SetMail(MailConfig{})
	return o
}

// SessionsError is the error of an operation that made its change but could
// not end the sessions it had to (the store failed). The change stands;
// running the operation again ends what is left.
type SessionsError struct{ Err error }

func (e *SessionsError) Error() string { return "sessions not ended: " + e.Err.Error() }

func (e *SessionsError) Unwrap() error { return e.Err }

// record records by as an event of type typ about subject.
func (o *Ops) record(ctx context.Context, by audit.Event, typ audit.Type, subject string) {
	by.Type, by.Subject = typ, subject
	o.audit.Record(ctx, by)
}

// reason is the audit reason of a list of changes.
func reason(changes []string) string {
	if len(changes) == 0 {
		return "unchanged"
	}
	return strings.Join(changes, " ")
}

// CreateUser stores u (its ID filled in) and records user_created. A taken
// or look-alike username is the store's error (storage.ErrConflict,
// storage.ErrLookalike), for the caller to word.
func (o *Ops) CreateUser(ctx context.Context, by audit.Event, u *storage.User) error {
	if err := o.store.CreateUser(ctx, u); err != nil {
		return err
	}
	o.record(ctx, by, audit.UserCreated, u.ID)
	return nil
}

// UpdateUser changes the user id with update, which returns the names of
// what it changed (the audit reason; none is "unchanged"), and records
// user_updated. When the user is disabled afterwards, it ends their
// sessions, so enabling them again brings no old session back; that
// failing is a *SessionsError, with the updated user. It returns the user
// and how many sessions it ended.
func (o *Ops) UpdateUser(ctx context.Context, by audit.Event, id string,
	update func(*storage.User) ([]string, error)) (storage.User, int64, error) {
	var changes []string
	u, err := o.store.UpdateUser(ctx, id, func(u *storage.User) error {
		var err error
		changes, err = update(u)
		return err
	})
	if err != nil {
		return u, 0, err
	}
	by.Reason = reason(changes)
	o.record(ctx, by, audit.UserUpdated, u.ID)
	if !u.Disabled {
		return u, 0, nil
	}
	n, err := o.EndUserSessions(ctx, by, u.ID, storage.RevokeUserDisabled)
	if err != nil {
		return u, 0, &SessionsError{err}
	}
	return u, n, nil
}

// SetUserDisabled disables or enables the user id (UpdateUser), recording
// "disabled" or "enabled" as the reason whether or not it changed.
func (o *Ops) SetUserDisabled(ctx context.Context, by audit.Event, id string, disabled bool) (storage.User, int64, error) {
	return o.UpdateUser(ctx, by, id, func(u *storage.User) ([]string, error) {
		u.Disabled = disabled
		return []string{map[bool]string{true: "disabled", false: "enabled"}[disabled]}, nil
	})
}

// SetPassword stores hash (a new password the caller has checked against
// the policy and hashed) as the password of the user id, records
// password_changed (with by's Reason), and ends the user's sessions: a
// password change ends every session (DESIGN "Accounts and protection").
// It also ends every reset link of the user and mails the password_changed
// notice to a verified address. check, when not nil, sees the stored user
// inside the update and may refuse it (a change that raced another).
// Ending the sessions or the links failing is a *SessionsError, with the
// updated user.
func (o *Ops) SetPassword(ctx context.Context, by audit.Event, id, hash string,
	check func(cur *storage.User) error) (storage.User, int64, error) {
	return o.setPassword(ctx, by, id, hash, check, mail.KindPasswordChanged)
}

// setPassword is SetPassword mailing the notice kind.
func (o *Ops) setPassword(ctx context.Context, by audit.Event, id, hash string,
	check func(cur *storage.User) error, notice mail.Kind) (storage.User, int64, error) {
	now := o.now()
	u, err := o.store.UpdateUser(ctx, id, func(cur *storage.User) error {
		if check != nil {
			if err := check(cur); err != nil {
				return err
			}
		}
		cur.PasswordHash = hash
		cur.PasswordChangedAt = storage.At(now)
		return nil
	})
	if err != nil {
		return u, 0, err
	}
	o.record(ctx, by, audit.PasswordChanged, u.ID)
	o.notify(ctx, u, notice)
	_, terr := o.store.EndAccountTokens(ctx, u.ID, storage.TokenReset, storage.TokenRevoked, now)
	n, err := o.endUserSessions(ctx, by, u.ID, storage.RevokePassword, now)
	if err = errors.Join(err, terr); err != nil {
		return u, 0, &SessionsError{err}
	}
	return u, n, nil
}

// DeleteUser deletes the user id, whose sessions go with them, and records
// user_deleted.
func (o *Ops) DeleteUser(ctx context.Context, by audit.Event, id string) error {
	if err := o.store.DeleteUser(ctx, id); err != nil {
		return err
	}
	o.record(ctx, by, audit.UserDeleted, id)
	return nil
}

// Unlock clears u's failed-login counts from every address (BF-04) and
// records user_unlocked.
func (o *Ops) Unlock(ctx context.Context, by audit.Event, u storage.User) error {
	if err := o.unlock.Unlock(ctx, u.Username); err != nil {
		return err
	}
	o.record(ctx, by, audit.UserUnlocked, u.ID)
	return nil
}

// EndUserSessions revokes every live refresh-token family of the user with
// reason, which also ends the access tokens bound to them by sid, and,
// when any was live, records a token_revoked event with the user as
// subject and reason as its reason. It returns how many families it
// revoked. On error it records nothing and returns the store's error as it
// is, for the caller to word.
func (o *Ops) EndUserSessions(ctx context.Context, by audit.Event, userID, reason string) (int64, error) {
	return o.endUserSessions(ctx, by, userID, reason, o.now())
}

func (o *Ops) endUserSessions(ctx context.Context, by audit.Event, userID, reason string, now time.Time) (int64, error) {
	n, err := o.store.RevokeUserRefreshFamilies(ctx, userID, reason, now)
	if ls, ok := o.store.(LoginSessionStore); ok && err == nil {
		var m int64
		if m, err = ls.RevokeUserLoginSessions(ctx, userID, now); err == nil && m > 0 {
			e := by
			e.Reason = reason
			o.record(ctx, e, audit.SessionEnded, userID)
		}
	}
	return o.recordEnded(ctx, by, userID, reason, n, err)
}

// EndClientSessions is EndUserSessions for every live refresh-token family
// of a client (CA-09): the event's subject and client_id are the client,
// whoever ended them.
func (o *Ops) EndClientSessions(ctx context.Context, by audit.Event, clientID, reason string) (int64, error) {
	n, err := o.store.RevokeClientRefreshFamilies(ctx, clientID, reason, o.now())
	by.ClientID = clientID
	return o.recordEnded(ctx, by, clientID, reason, n, err)
}

// recordEnded records the token_revoked event of a revocation that ended n
// families about subject, unless it failed or none was live.
func (o *Ops) recordEnded(ctx context.Context, by audit.Event, subject, reason string, n int64, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if n > 0 {
		by.Reason = reason
		o.record(ctx, by, audit.TokenRevoked, subject)
	}
	return n, nil
}

// CreateClient stores c (checked by NewClient and CheckClient) and records
// client_created with reason. A taken id is storage.ErrConflict.
func (o *Ops) CreateClient(ctx context.Context, by audit.Event, c *storage.Client, reason string) error {
	if err := o.store.CreateClient(ctx, c); err != nil {
		return err
	}
	by.Reason = reason
	o.record(ctx, by, audit.ClientCreated, c.ID)
	return nil
}

// UpdateClient changes the client id with update, which returns the names
// of what it changed (the audit reason; none is "unchanged"), checks the
// result with CheckClient (an error of update, or of the check as an
// *InvalidError, leaves the client as it was) and records client_updated. When the client is
// disabled afterwards, its sessions end for good: enabling it again does
// not revive them (CA-09); that failing is a *SessionsError, with the
// updated client.
func (o *Ops) UpdateClient(ctx context.Context, by audit.Event, id string,
	update func(*storage.Client) ([]string, error)) (storage.Client, int64, error) {
	var changes []string
	c, err := o.store.UpdateClient(ctx, id, func(c *storage.Client) error {
		var err error
		if changes, err = update(c); err != nil {
			return err
		}
		if err := CheckClient(c); err != nil {
			return &InvalidError{err}
		}
		return nil
	})
	if err != nil {
		return c, 0, err
	}
	by.Reason = reason(changes)
	o.record(ctx, by, audit.ClientUpdated, c.ID)
	if !c.Disabled {
		return c, 0, nil
	}
	n, err := o.EndClientSessions(ctx, by, c.ID, storage.RevokeClient)
	if err != nil {
		return c, 0, &SessionsError{err}
	}
	return c, n, nil
}

// SetClientDisabled disables or enables the client id (UpdateClient),
// recording "disabled" or "enabled" as the reason whether or not it
// changed.
func (o *Ops) SetClientDisabled(ctx context.Context, by audit.Event, id string, disabled bool) (storage.Client, int64, error) {
	return o.UpdateClient(ctx, by, id, func(c *storage.Client) ([]string, error) {
		c.Disabled = disabled
		return []string{map[bool]string{true: "disabled", false: "enabled"}[disabled]}, nil
	})
}

// RotateSecret gives the confidential client id a new secret, which it
// returns to be shown once; the old one stops working at once. It records
// client_updated with the reason secret_rotated.
func (o *Ops) RotateSecret(ctx context.Context, by audit.Event, id string) (storage.Client, string, error) {
	secret, hash := NewClientSecret()
	c, err := o.store.UpdateClient(ctx, id, func(c *storage.Client) error {
		if c.Public {
			return fmt.Errorf("client %q is public and has no secret", c.ID)
		}
		c.SecretHash = hash
		return nil
	})
	if err != nil {
		return c, "", err
	}
	by.Reason = "secret_rotated"
	o.record(ctx, by, audit.ClientUpdated, c.ID)
	return c, secret, nil
}

// DeleteClient deletes the client id with its refresh tokens and records
// client_deleted.
func (o *Ops) DeleteClient(ctx context.Context, by audit.Event, id string) error {
	if err := o.store.DeleteClient(ctx, id); err != nil {
		return err
	}
	o.record(ctx, by, audit.ClientDeleted, id)
	return nil
}
