package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// sessionView is one refresh-token family: one sign-in on one client.
type sessionView struct {
	ID           string    `json:"id"`
	ClientID     string    `json:"client_id"`
	Scope        string    `json:"scope"`
	Audience     string    `json:"audience"`
	AuthTime     time.Time `json:"auth_time"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
	Grant        string    `json:"grant"` // the grant that started it: password, authorization_code
}

// Admin list page sizes.
const (
	defaultAdminLimit = 100
	maxAdminLimit     = 1000
)

// user finds the user named by the route, or the one 404.
func (a *API) user(r *http.Request) (storage.User, error) {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return storage.User{}, err
	}
	u, err := a.store.User(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, notFound("user")
	}
	return u, err
}

// ListUsers serves GET /admin/v1/users?limit=&offset=, ordered by
// username.
func (a *API) ListUsers(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := query(r, "limit", "offset")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", defaultAdminLimit, 1, maxAdminLimit)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset", 0, 0, 1<<31-1)
	if err != nil {
		return err
	}
	us, err := a.store.Users(r.Context(), offset, limit)
	if err != nil {
		return err
	}
	views := make([]manage.UserView, len(us))
	for i, u := range us {
		views[i] = manage.ViewUser(u)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"users": views, "limit": limit, "offset": offset})
	return nil
}

// GetUser serves GET /admin/v1/users/{id}.
func (a *API) GetUser(w http.ResponseWriter, r *http.Request, _ string) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, manage.ViewUser(u))
	return nil
}

// userPatch is the body of PATCH /admin/v1/users/{id}. There is no
// password field, and one is refused by name (AD-06, decision 6).
type userPatch struct {
	Disabled      *bool   `json:"disabled"`
	Email         *string `json:"email"`
	EmailVerified *bool   `json:"email_verified"`
}

var userPatchFields = []string{"disabled", "email", "email_verified"}

// PatchUser serves PATCH /admin/v1/users/{id}. A new email given with
// "email_verified": true is set verified at once (the administrator vouches
// for it); otherwise it goes through manage.Ops.SetEmail, as `keyward users
// set-email` does: a verified address stays until the new one, pending, is
// verified through the link mailed to it, and an account without one takes
// the new address unverified and gets a link. Disabling revokes the user's
// sessions, as `keyward users disable` does, so enabling them again brings
// no old session back.
func (a *API) PatchUser(w http.ResponseWriter, r *http.Request, actor string) error {
	ctx := r.Context()
	u, err := a.user(r)
	if err != nil {
		return err
	}
	var p userPatch
	if err := decodeJSON(r, userPatchFields, &p, false); err != nil {
		return err
	}
	if p == (userPatch{}) {
		return web.BadRequest("give at least one of " + strings.Join(userPatchFields, ", "))
	}
	var email string
	if p.Email != nil {
		if email, err = manage.NormalizeEmail(*p.Email); err != nil {
			return web.BadRequest("email is not a valid address")
		}
	}
	vouched := p.EmailVerified != nil && *p.EmailVerified
	by := audit.Event{Actor: actor, UserAgent: r.UserAgent()}
	if p.Disabled != nil || p.EmailVerified != nil {
		u, _, err = a.ops.UpdateUser(ctx, by, u.ID, func(u *storage.User) ([]string, error) {
			var changed []string
			if p.Disabled != nil && *p.Disabled != u.Disabled {
				u.Disabled = *p.Disabled
				changed = append(changed, map[bool]string{true: "disabled", false: "enabled"}[u.Disabled])
			}
			if p.Email != nil && vouched && email != u.Email {
				u.Email = email
				changed = append(changed, "email")
			}
			if p.Email != nil && vouched {
				u.EmailPending = ""
			}
			if p.EmailVerified != nil && *p.EmailVerified != u.EmailVerified {
				u.EmailVerified = *p.EmailVerified
				changed = append(changed, "email_verified")
			}
			return changed, nil
		})
		if err = userChangeError(u, err); err != nil {
			return err
		}
	}
	if p.Email != nil && !vouched {
		u, err = a.ops.SetEmail(ctx, by, u.ID, email)
		if err = userChangeError(u, err); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, manage.ViewUser(u))
	return nil
}

// userChangeError words the error of a change to the user u.
func userChangeError(u storage.User, err error) error {
	var se *manage.SessionsError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("user %s disabled, sessions not revoked: %w", u.ID, se.Err)
	case errors.Is(err, storage.ErrNotFound):
		return notFound("user")
	}
	return err
}

// SendReset serves POST /admin/v1/users/{id}/send-reset: it mails the
// user a password-reset link, as `keyward users send-reset` does, and
// answers 202. A user without a verified address gets none: 409
// email_unverified.
func (a *API) SendReset(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := noBody(r); err != nil {
		return err
	}
	u, err := a.user(r)
	if err != nil {
		return err
	}
	err = a.ops.SendReset(r.Context(), audit.Event{Actor: actor, UserAgent: r.UserAgent()}, u)
	switch {
	case errors.Is(err, manage.ErrEmailUnverified):
		return &web.Error{Code: "email_unverified", Description: "the user has no verified e-mail address to send a link to",
			Status: http.StatusConflict}
	case errors.Is(err, storage.ErrNotFound):
		return notFound("user")
	case err != nil:
		return err
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"id": u.ID, "sent": true})
	return nil
}

// DeleteUser serves DELETE /admin/v1/users/{id}; the user's sessions
// go with them (by cascade), and with them their access tokens' sid.
func (a *API) DeleteUser(w http.ResponseWriter, r *http.Request, actor string) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	err = a.ops.DeleteUser(r.Context(), audit.Event{Actor: actor, UserAgent: r.UserAgent()}, u.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("user")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// UnlockUser serves POST /admin/v1/users/{id}/unlock: it clears the
// user's failed-login counts from every address (BF-04), as `keyward users
// unlock` does.
func (a *API) UnlockUser(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := noBody(r); err != nil {
		return err
	}
	u, err := a.user(r)
	if err != nil {
		return err
	}
	if err := a.ops.Unlock(r.Context(), audit.Event{Actor: actor, UserAgent: r.UserAgent()}, u); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"id": u.ID, "unlocked": true})
	return nil
}

// ListSessions serves GET /admin/v1/users/{id}/sessions, newest first.
func (a *API) ListSessions(w http.ResponseWriter, r *http.Request, _ string) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	fs, err := a.store.RefreshFamilies(r.Context(), u.ID)
	if err != nil {
		return err
	}
	views := make([]sessionView, len(fs))
	for i, f := range fs {
		views[i] = sessionView{ID: f.ID, ClientID: f.ClientID, Scope: strings.Join(f.Scope, " "), Audience: f.Audience,
			AuthTime: f.AuthTime.UTC(), CreatedAt: f.CreatedAt.UTC(), ExpiresAt: f.ExpiresAt.UTC(),
			RevokedAt: f.RevokedAt.Time, RevokeReason: f.RevokeReason, Grant: f.Grant}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"sessions": views})
	return nil
}

// RevokeSessions serves DELETE /admin/v1/users/{id}/sessions: sign
// out everywhere (AD-08). Access tokens of those sessions stop working at
// Keyward's own endpoints at once (their sid is revoked) and at resource
// servers when they expire.
func (a *API) RevokeSessions(w http.ResponseWriter, r *http.Request, actor string) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	by := audit.Event{Actor: actor, UserAgent: r.UserAgent()}
	n, err := a.ops.EndUserSessions(r.Context(), by, u.ID, storage.RevokeSignOut)
	if err != nil {
		return err
	}
	if n == 0 {
		// Nothing was live; the action is still recorded.
		a.record(r, actor, audit.Event{Type: audit.TokenRevoked, Subject: u.ID, Reason: storage.RevokeSignOut + " none_live"})
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"id": u.ID, "revoked": n})
	return nil
}
