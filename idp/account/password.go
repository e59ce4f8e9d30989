package account

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// errWrongCurrentPassword is the one answer to a wrong current password and
// to an attempt the brute-force throttle refused (BF-03): the same status
// and body, so the caller cannot tell them apart.
func errWrongCurrentPassword() *web.Error {
	return &web.Error{Code: web.ErrInvalidGrant, Description: "the current password is incorrect"}
}

// errChangedMeanwhile stops a change whose current password was verified
// against a hash another request has replaced since.
var errChangedMeanwhile = errors.New("password changed by another request")

// ChangePassword serves POST /account/password: a signed-in user changes
// their password (PW-13). It needs a user's access token in the
// Authorization header and the JSON body {"current_password",
// "new_password"}. The current password is checked behind the same
// brute-force throttle as the password grant, and a wrong one counts as a
// failed login (BF-01); the new one must pass the policy and differ from
// the current one. On success the hash is replaced, PasswordChangedAt set,
// every refresh family of the user revoked, and the answer is 204.
func (h *Handlers) ChangePassword(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if h.cfg.Passwords == nil {
		return errAccountsOff()
	}
	clientID, u, err := h.accountUser(w, r)
	if err != nil {
		return err
	}
	in, err := web.DecodeStrict(r, "current_password", "new_password")
	if err != nil {
		return err
	}
	current, next := in["current_password"], in["new_password"]
	if current == "" || next == "" {
		return web.BadRequest("current_password and new_password are required")
	}
	if len(current) > password.MaxBytes {
		return web.BadRequest("current_password is too long")
	}
	// The policy is public and the check is pure: a new password it refuses
	// is answered before the current one is looked at, which guesses nothing.
	if err := h.checkNewPassword(next, u.Username, u.Email); err != nil {
		return err
	}
	if err := h.verifyCurrent(ctx, u, clientID, current); err != nil {
		return err
	}
	if password.Normalize(next) == password.Normalize(current) {
		return passwordRejected(RuleSameAsCurrent, "the new password must differ from the current one")
	}

	hash, err := h.cfg.Passwords.Hash(ctx, next)
	if err != nil {
		return guard.HashingError(err)
	}
	// The change records password_changed and ends the user's sessions:
	// refresh already refuses a family older than PasswordChangedAt, and the
	// revocation also ends the access tokens bound to those families (sid)
	// at once. The password is changed whatever happens to the sessions, so
	// a failure there is logged, not answered.
	by := audit.Event{Actor: u.ID, ClientID: clientID, UserAgent: r.UserAgent()}
	_, _, err = h.cfg.Sessions.SetPassword(ctx, by, u.ID, hash, func(cur *storage.User) error {
		if cur.PasswordHash != u.PasswordHash || cur.Disabled {
			return errChangedMeanwhile
		}
		return nil
	})
	var se *manage.SessionsError
	switch {
	case errors.As(err, &se):
		h.log.ErrorContext(ctx, "password changed, but refresh families not revoked", "sub", u.ID, "err", se.Err)
	case errors.Is(err, errChangedMeanwhile):
		// Another change (or a lock) won the race: the verified password
		// is no longer the current one.
		return errWrongCurrentPassword()
	case errors.Is(err, storage.ErrNotFound):
		return web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized)
	case err != nil:
		return err
	}
	web.NoStore(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// verifyCurrent checks current, the signed-in user u's current password,
// behind the same brute-force throttle as the password grant (BF-01,
// BF-03), keyed on the account's username and the client IP: a wrong one
// counts as a failed login, and a throttled attempt answers as a wrong
// password would. nil means the password is right.
func (h *Handlers) verifyCurrent(ctx context.Context, u storage.User, clientID, current string) error {
	ip := web.ClientIP(ctx)
	dec, err := h.cfg.Throttle.CheckLogin(ctx, u.Username, ip)
	if err != nil {
		return err
	}
	switch dec.Verdict {
	case guard.Throttle:
		h.cfg.Throttle.Report(ctx, h.cfg.Audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, Actor: u.ID, Subject: u.ID, ClientID: clientID})
		return dec.Err()
	case guard.Deny:
		if err := h.cfg.Passwords.VerifyDummy(ctx, current); err != nil {
			return guard.HashingError(err)
		}
		if err := h.cfg.Throttle.LoginDenied(ctx, u.Username, ip); err != nil {
			h.log.ErrorContext(ctx, "login throttle: record refusal", "err", err)
		}
		h.cfg.Metrics.LoginFailure("throttled")
		h.cfg.Throttle.Report(ctx, h.cfg.Audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, Actor: u.ID, Subject: u.ID, ClientID: clientID})
		return errWrongCurrentPassword()
	}
	ok, _, err := h.cfg.Passwords.Verify(ctx, current, u.PasswordHash)
	if err != nil {
		if errors.Is(err, password.ErrOverloaded) || errors.Is(err, password.ErrTooLong) {
			return guard.HashingError(err)
		}
		h.log.ErrorContext(ctx, "password hash cannot be checked", "sub", u.ID, "err", err)
		return h.currentPasswordFailed(ctx, u, clientID, "bad_hash", ip)
	}
	if !ok {
		return h.currentPasswordFailed(ctx, u, clientID, "bad_password", ip)
	}
	if err := h.cfg.Throttle.LoginSucceeded(ctx, u.Username, ip); err != nil {
		h.log.ErrorContext(ctx, "login throttle: record success", "err", err)
	}
	return nil
}

// currentPasswordFailed records a wrong current password as a failed login
// (throttle count, metric, audit event with the reason) and returns the
// answer every such failure gets.
func (h *Handlers) currentPasswordFailed(ctx context.Context, u storage.User, clientID, reason, ip string) error {
	if err := h.cfg.Throttle.LoginFailed(ctx, u.Username, ip); err != nil {
		h.log.ErrorContext(ctx, "login throttle: record failure", "err", err)
	}
	h.cfg.Metrics.LoginFailure(reason)
	h.cfg.Audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Reason: reason, Actor: u.ID, Subject: u.ID, ClientID: clientID})
	return errWrongCurrentPassword()
}

// accountUser authenticates an account request: a Bearer access token in
// the Authorization header (RFC 6750 §2.1; the body is JSON, so not in a
// form, and never in the query) issued to a user, who must exist and be
// enabled (Config.Tokens). It returns the token's client and its user. A
// missing or bad token is 401 invalid_token; a token without a user behind
// it (client credentials) is 403 insufficient_scope.
func (h *Handlers) accountUser(w http.ResponseWriter, r *http.Request) (string, storage.User, error) {
	ctx := r.Context()
	if r.URL.Query().Has("access_token") {
		return "", storage.User{}, web.BearerError(w, web.ErrInvalidRequest, "send the access token in the Authorization header", http.StatusBadRequest)
	}
	auths := r.Header.Values("Authorization")
	switch {
	case len(auths) == 0:
		return "", storage.User{}, web.BearerError(w, "", "an access token is required", http.StatusUnauthorized)
	case len(auths) > 1:
		return "", storage.User{}, web.BearerError(w, web.ErrInvalidRequest, "send one Authorization header", http.StatusBadRequest)
	}
	scheme, tok, _ := strings.Cut(auths[0], " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,") {
		return "", storage.User{}, web.BearerError(w, web.ErrInvalidToken, "the Authorization header must be Bearer and one token", http.StatusUnauthorized)
	}
	clientID, u, err := h.cfg.Tokens.TokenUser(ctx, tok)
	switch {
	case errors.Is(err, ErrInvalidToken):
		return "", storage.User{}, web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized)
	case errors.Is(err, ErrNotUserToken):
		return "", storage.User{}, web.BearerError(w, web.ErrInsufficientScope, "the access token must be a user's", http.StatusForbidden)
	case err != nil:
		return "", storage.User{}, err
	}
	return clientID, u, nil
}
