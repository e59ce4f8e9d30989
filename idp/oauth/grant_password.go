package oauth

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// passwordGrant is the resource owner password credentials grant (RFC 6749
// §4.3), a legacy grant Keyward keeps for clients registered for it
// explicitly (SECURITY-REQUIREMENTS decision 1).
type passwordGrant struct{ s *Provider }

// errBadCredentials is the one answer to a wrong password, an unknown user
// and a disabled or locked account: byte-identical bodies (TE-11).
func errBadCredentials() *web.Error {
	return &web.Error{Code: web.ErrInvalidGrant, Description: "the username or password is incorrect"}
}

func (g passwordGrant) exchange(ctx context.Context, c storage.Client, f form) (issuance, error) {
	s := g.s
	if c.Public {
		return issuance{}, &web.Error{Code: web.ErrUnauthorizedClient, Description: "the password grant is for confidential clients only"}
	}
	username, pw := f["username"], f["password"]
	if username == "" || pw == "" {
		return issuance{}, web.BadRequest("username and password are required")
	}
	if len(pw) > password.MaxBytes {
		return issuance{}, web.BadRequest("password is too long")
	}
	requested, err := parseScope(f["scope"])
	if err != nil {
		return issuance{}, err
	}
	scope, err := grantScope(requested, c, manage.GrantPassword, s.cfg.PasswordForbiddenScopes)
	if err != nil {
		return issuance{}, err
	}
	aud, err := resolveAudience(f, c, s.cfg.Issuer)
	if err != nil {
		return issuance{}, err
	}
	u, err := s.checkPassword(ctx, c.ID, username, pw)
	if err != nil {
		return issuance{}, err
	}
	ip := web.ClientIP(ctx)
	// A user with a second factor signs in only where it is asked for (the
	// login pages of the authorization endpoint): the password grant cannot
	// ask, so it would let the password alone through (RR-08, ASVS 6.4.3).
	// The answer is a wrong password's; the password was right, so it is
	// not counted as a guess.
	switch cred, err := s.cfg.Store.TOTPCredential(ctx, u.ID); {
	case err == nil && !cred.ConfirmedAt.IsZero():
		return issuance{}, s.loginFailed(ctx, c.ID, u.ID, "mfa_required", "", ip)
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return issuance{}, err
	}
	// u is the row whose hash was just verified. The family is stored only
	// if that is still the account's password and the account is still
	// enabled and there (RT-08): a change, disable or delete that committed
	// since the lookup refuses it, and one that commits after it revokes it.
	// The loser of that race gets what a request a moment later would get,
	// the answer to a wrong password; it is not counted as a guess.
	is := issuance{subject: u.ID, user: &u, userGrant: true, scope: scope, audience: aud, authTime: s.now(),
		signIn: storage.SignInOf(u)}
	if err := s.startFamily(ctx, c, &is, s.cfg.PasswordRefreshTokenTTL, manage.GrantPassword); err != nil {
		if errors.Is(err, storage.ErrSignInStale) {
			return issuance{}, s.loginFailed(ctx, c.ID, u.ID, "account_changed", "", ip)
		}
		return issuance{}, err
	}
	s.loginSucceeded(ctx, c.ID, username, ip, u)
	return is, nil
}

// AuthenticatePassword checks username and password exactly as the
// password grant does (throttle, timing floor, rehash, audit
// login_succeeded or login_failed with clientID) and returns the user: the
// login page's check (idp/login's Passwords). Errors are *web.Error:
// invalid_grant 400 for a wrong username or password, a disabled or an
// unknown account (one answer), temporarily_unavailable 429 with
// RetryAfter when throttled, 503 when hashing is overloaded.
func (s *Provider) AuthenticatePassword(ctx context.Context, clientID, username, pw string) (storage.User, error) {
	if s.cfg.Passwords == nil {
		return storage.User{}, errors.New("oauth: no password hasher configured")
	}
	if username == "" || pw == "" {
		return storage.User{}, errBadCredentials()
	}
	if utf8.RuneCountInString(username) > MaxUsernameChars || passwordTooLong(pw) {
		return storage.User{}, errBadCredentials()
	}
	u, err := s.checkPassword(ctx, clientID, username, pw)
	if err != nil {
		return storage.User{}, err
	}
	s.loginSucceeded(ctx, clientID, username, web.ClientIP(ctx), u)
	return u, nil
}

// loginSucceeded records a successful login for the throttle and the audit.
func (s *Provider) loginSucceeded(ctx context.Context, clientID, username, ip string, u storage.User) {
	if err := s.throttle.LoginSucceeded(ctx, username, ip); err != nil {
		s.log.ErrorContext(ctx, "login throttle: record success", "err", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Actor: u.ID, Subject: u.ID, ClientID: clientID})
}

// checkPassword is the password check of every login: throttle, lookup,
// verification at a timing floor, rehash. It returns the account whose
// hash it verified, or the one answer every failure gets.
func (s *Provider) checkPassword(ctx context.Context, clientID, username, pw string) (storage.User, error) {

	// Brute force (DESIGN "Accounts and protection"): a throttled attempt is
	// 429 before any hashing; a denied one is answered as a wrong password
	// after a dummy verification, and guesses nothing.
	ip := web.ClientIP(ctx)
	dec, err := s.throttle.CheckLogin(ctx, username, ip)
	if err != nil {
		return storage.User{}, err
	}
	// The user is looked up on every path, refused ones included: a denied
	// attempt then costs the queries a checked one costs (TE-21), and its
	// audit event names the account it was made against, so an operator
	// sees it under the user (u.ID is "" for an unknown user).
	u, known, err := s.loginUser(ctx, username)
	if err != nil {
		return storage.User{}, err
	}
	switch dec.Verdict {
	case guard.Throttle:
		s.throttle.Report(ctx, s.audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, Subject: u.ID, ClientID: clientID})
		return storage.User{}, dec.Err()
	case guard.Deny:
		if err := s.cfg.Passwords.VerifyDummy(ctx, pw); err != nil {
			return storage.User{}, guard.HashingError(err)
		}
		// The password was not checked, so this is a throttled attempt,
		// not a failed one (reason account_ip or account). LoginDenied
		// counts nothing but costs the write a failure costs (TE-21).
		if err := s.throttle.LoginDenied(ctx, username, ip); err != nil {
			s.log.ErrorContext(ctx, "login throttle: record refusal", "err", err)
		}
		s.metrics.LoginFailure("throttled")
		s.throttle.Report(ctx, s.audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, Subject: u.ID, ClientID: clientID})
		return storage.User{}, errBadCredentials()
	}

	// Every failure below costs one password verification and one failure
	// count, and gets the same answer, so neither timing nor body tells an
	// unknown user (TE-11, TE-21).
	if !known {
		if err := s.cfg.Passwords.VerifyDummy(ctx, pw); err != nil {
			return storage.User{}, guard.HashingError(err)
		}
		return storage.User{}, s.loginFailed(ctx, clientID, "", "unknown_user", username, ip)
	}
	ok, rehash, err := s.cfg.Passwords.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		if errors.Is(err, password.ErrOverloaded) || errors.Is(err, password.ErrTooLong) {
			return storage.User{}, guard.HashingError(err)
		}
		// A stored hash that cannot be checked (corrupt, or peppered with a
		// key this server lacks): the operator must fix it; the client sees
		// an ordinary failure. It is not counted toward the throttle: no
		// guess can succeed against it, and a server started without its
		// pepper must not lock every account out.
		s.log.ErrorContext(ctx, "password hash cannot be checked", "sub", u.ID, "err", err)
		reason := "bad_hash"
		if errors.Is(err, password.ErrWrongPepper) {
			reason = "wrong_pepper"
		}
		return storage.User{}, s.loginFailed(ctx, clientID, u.ID, reason, "", ip)
	}
	switch {
	case !ok:
		return storage.User{}, s.loginFailed(ctx, clientID, u.ID, "bad_password", username, ip)
	case u.Disabled:
		return storage.User{}, s.loginFailed(ctx, clientID, u.ID, "disabled", username, ip)
	case s.cfg.RequireVerifiedEmail && !u.EmailVerified:
		// The password was right: not a guess, not counted.
		return storage.User{}, s.loginFailed(ctx, clientID, u.ID, "email_unverified", "", ip)
	}
	if rehash {
		s.rehash(ctx, u, pw, clientID)
	}
	return u, nil
}

// loginUser looks up the account a login names. A name no account can have
// is not looked up.
func (s *Provider) loginUser(ctx context.Context, username string) (storage.User, bool, error) {
	if _, err := manage.NormalizeUsername(username); err != nil {
		return storage.User{}, false, nil
	}
	u, err := s.cfg.Store.UserByUsername(ctx, username)
	switch {
	case err == nil:
		return u, true, nil
	case errors.Is(err, storage.ErrNotFound):
		return storage.User{}, false, nil
	}
	return storage.User{}, false, err
}

// loginFailed records a failed login (audit event with the reason, and, when
// account is set, a count for the throttle) and returns the one answer
// every failure gets.
func (s *Provider) loginFailed(ctx context.Context, clientID, sub, reason, account, ip string) error {
	if account != "" {
		if err := s.throttle.LoginFailed(ctx, account, ip); err != nil {
			s.log.ErrorContext(ctx, "login throttle: record failure", "err", err)
		}
	}
	s.metrics.LoginFailure(reason)
	s.audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Reason: reason, Subject: sub, ClientID: clientID})
	return errBadCredentials()
}

// rehash replaces u's stored hash with one at the current parameters (PW-03;
// imported hashes, bcrypt, Werkzeug's, Django's, become argon2id) and records
// user_updated with reason password_rehashed. It is not a password change:
// PasswordChangedAt stays, so refresh families live on. A failure is logged
// and the login goes ahead.
func (s *Provider) rehash(ctx context.Context, u storage.User, pw, clientID string) {
	h, err := s.cfg.Passwords.Hash(ctx, pw)
	if err != nil {
		s.log.WarnContext(ctx, "password rehash failed", "sub", u.ID, "err", err)
		return
	}
	old := u.PasswordHash
	changed := false
	_, err = s.cfg.Store.UpdateUser(ctx, u.ID, func(cur *storage.User) error {
		if cur.PasswordHash == old { // not changed meanwhile
			cur.PasswordHash, changed = h, true
		}
		return nil
	})
	if err != nil {
		s.log.WarnContext(ctx, "password rehash failed", "sub", u.ID, "err", err)
		return
	}
	if !changed {
		return
	}
	s.log.InfoContext(ctx, "password rehashed", "sub", u.ID)
	s.audit.Record(ctx, audit.Event{Type: audit.UserUpdated, Reason: "password_rehashed", Actor: u.ID, Subject: u.ID, ClientID: clientID})
}
