package manage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/storage"
)

// The account links (issue 14): a password-reset link (kwpr_) and an
// address-verification link (kwev_), each a single-use token of 32 random
// bytes stored only as its SHA-256 (RR-02, RR-12), and the notices of
// account changes, all mailed through Mailer. None of the token, the link or
// a password ever reaches a log line, an audit row or an error.

// Mailer queues account mail (mail.Sender); it never blocks on the network.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// TokenStore is the part of storage the account links need.
type TokenStore interface {
	User(ctx context.Context, id string) (storage.User, error)
	IssueAccountToken(ctx context.Context, t storage.AccountToken) error
	ConsumeAccountToken(ctx context.Context, kind string, hash []byte, now time.Time) (storage.AccountToken, error)
	EndAccountTokens(ctx context.Context, userID, kind, reason string, now time.Time) (int64, error)
}

// Token prefixes, so a token found somewhere says what it is (and secret
// scanners can find them).
const (
	ResetTokenPrefix  = "kwpr_"
	VerifyTokenPrefix = "kwev_"
)

// Default lifetimes of the links.
const (
	DefaultResetTokenLifetime  = 30 * time.Minute
	DefaultVerifyTokenLifetime = 24 * time.Hour
)

// Paths of the pages the links open (idp/ui serves them).
const (
	ResetPagePath  = "/account/reset-password"
	VerifyPagePath = "/account/verify-email"
)

// ErrEmailUnverified refuses to mail a reset link to an account without a
// verified address.
var ErrEmailUnverified = errors.New("the account has no verified e-mail address")

// ErrInvalidAccountToken is the one refusal of a link that is unknown,
// used, superseded, revoked, expired or no longer matches the account; the
// audit event says which.
var ErrInvalidAccountToken = errors.New("the link is invalid or has expired")

// MailConfig is how the operations mail: the sender, the base URL of links
// and the lifetimes. A nil Sender mails nothing.
type MailConfig struct {
	Sender         Mailer
	PublicURL      string        // absolute base URL of links, without a trailing slash
	ResetLifetime  time.Duration // default DefaultResetTokenLifetime
	VerifyLifetime time.Duration // default DefaultVerifyTokenLifetime
	Log            *slog.Logger  // where a mail that could not be queued is logged; default discard
}

// SetMail configures the mail of o; call it before o is used.
func (o *Ops) SetMail(c MailConfig) {
	if c.ResetLifetime <= 0 {
		c.ResetLifetime = DefaultResetTokenLifetime
	}
	if c.VerifyLifetime <= 0 {
		c.VerifyLifetime = DefaultVerifyTokenLifetime
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	o.mail = c
}

// ResetLifetime is how long a reset link stays valid.
func (o *Ops) ResetLifetime() time.Duration { return o.mail.ResetLifetime }

// NewAccountToken returns a new token with prefix (ResetTokenPrefix or
// VerifyTokenPrefix): 32 bytes from crypto/rand in unpadded base64url, and
// the SHA-256 the store keeps.
func NewAccountToken(prefix string) (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashAccountToken(token)
}

// HashAccountToken is the SHA-256 of token, as the store keeps it.
func HashAccountToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

type langKey struct{}

// WithLang returns ctx carrying lang ("en" or "zh-CN"), the language of
// the mail sent under it.
func WithLang(ctx context.Context, lang string) context.Context {
	return context.WithValue(ctx, langKey{}, lang)
}

func langOf(ctx context.Context) string {
	if l, ok := ctx.Value(langKey{}).(string); ok && l != "" {
		return l
	}
	return "en"
}

// link is the absolute link to page carrying token.
func (o *Ops) link(page, token string) string {
	return o.mail.PublicURL + page + "?token=" + url.QueryEscape(token)
}

// send queues m for the user userID. A mail that cannot be queued is
// logged with its kind and the user, never its link or address, and
// changes nothing else (the HTTP answer does not depend on it).
func (o *Ops) send(ctx context.Context, userID string, m mail.Message) {
	c := o.mail
	if c.Sender == nil || m.To == "" {
		return
	}
	m.Lang = langOf(ctx)
	if err := c.Sender.Send(ctx, m); err != nil {
		c.Log.WarnContext(ctx, "mail not queued", "kind", string(m.Kind), "sub", userID, "err", err)
	}
}

// notify mails the notice kind to u's address if it is verified.
func (o *Ops) notify(ctx context.Context, u storage.User, kind mail.Kind) {
	if u.Email == "" || !u.EmailVerified {
		return
	}
	o.send(ctx, u.ID, mail.Message{Kind: kind, To: u.Email, Username: u.Username})
}

// SendReset mails u a new password-reset link, which supersedes any older
// one, and records password_reset_sent. An account without a verified
// address gets none: ErrEmailUnverified. A mail that cannot be queued is
// logged; the link still exists and the answer is the same.
func (o *Ops) SendReset(ctx context.Context, by audit.Event, u storage.User) error {
	if u.Email == "" || !u.EmailVerified {
		return ErrEmailUnverified
	}
	c := o.mail
	token, hash := NewAccountToken(ResetTokenPrefix)
	now := o.now()
	if err := o.store.IssueAccountToken(ctx, storage.AccountToken{Hash: hash, Kind: storage.TokenReset, UserID: u.ID,
		Email: u.Email, CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(c.ResetLifetime))}); err != nil {
		return err
	}
	o.send(ctx, u.ID, mail.Message{Kind: mail.KindPasswordReset, To: u.Email, Username: u.Username,
		Link: o.link(ResetPagePath, token), Expires: c.ResetLifetime})
	o.record(ctx, by, audit.PasswordResetSent, u.ID)
	return nil
}

// SendVerification mails a new verification link for email, an address of
// u (its email or its pending one), superseding any older link, and
// records email_verification_sent.
func (o *Ops) SendVerification(ctx context.Context, by audit.Event, u storage.User, email string) error {
	c := o.mail
	token, hash := NewAccountToken(VerifyTokenPrefix)
	now := o.now()
	if err := o.store.IssueAccountToken(ctx, storage.AccountToken{Hash: hash, Kind: storage.TokenVerify, UserID: u.ID,
		Email: email, CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(c.VerifyLifetime))}); err != nil {
		return err
	}
	o.send(ctx, u.ID, mail.Message{Kind: mail.KindVerifyEmail, To: email, Username: u.Username,
		Link: o.link(VerifyPagePath, token), Expires: c.VerifyLifetime})
	o.record(ctx, by, audit.EmailVerificationSent, u.ID)
	return nil
}

// awaitingVerification is the address of u a verification link is for: the
// pending one, else an unverified email; "" when there is none.
func awaitingVerification(u storage.User) string {
	switch {
	case u.EmailPending != "":
		return u.EmailPending
	case u.Email != "" && !u.EmailVerified:
		return u.Email
	}
	return ""
}

// SetEmail sets the address of the user id to email (checked by
// NormalizeEmail) and records user_updated with the reason "email". When
// the account has a verified address, a different one becomes pending: the
// account keeps its verified address until the new one is verified
// (ConfirmEmail). Otherwise it replaces the address, unverified. Setting the
// current address cancels a pending change. Whatever address then awaits
// verification gets a link. "" removes the address.
func (o *Ops) SetEmail(ctx context.Context, by audit.Event, id, email string) (storage.User, error) {
	u, err := o.store.UpdateUser(ctx, id, func(u *storage.User) error {
		switch {
		case email == u.Email:
			u.EmailPending = ""
		case u.Email != "" && u.EmailVerified && email != "":
			u.EmailPending = email
		default:
			u.Email, u.EmailVerified, u.EmailPending = email, false, ""
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	by.Reason = "email"
	o.record(ctx, by, audit.UserUpdated, u.ID)
	if addr := awaitingVerification(u); addr != "" {
		by.Reason = ""
		if err := o.SendVerification(ctx, by, u, addr); err != nil {
			return u, err
		}
	}
	return u, nil
}

// errStaleVerification is a verification link for an address the account
// no longer has, neither as its email nor as its pending one.
var errStaleVerification = errors.New("the address changed since the link was sent")

// ConfirmEmail consumes the verification token and marks its address
// verified: a pending address becomes the account's email, and the old
// verified address is told (mail.KindEmailChanged). It records
// email_verified, or email_verification_failed with the reason, and answers
// every refusal with ErrInvalidAccountToken.
func (o *Ops) ConfirmEmail(ctx context.Context, by audit.Event, token string) (storage.User, error) {
	at, err := o.store.ConsumeAccountToken(ctx, storage.TokenVerify, HashAccountToken(token), o.now())
	if reason := storage.TokenReason(err); reason != "" {
		by.Reason, by.Outcome = reason, audit.OutcomeFailure
		o.record(ctx, by, audit.EmailVerificationFailed, at.UserID)
		return storage.User{}, ErrInvalidAccountToken
	}
	if err != nil {
		return storage.User{}, err
	}
	var old storage.User
	u, err := o.store.UpdateUser(ctx, at.UserID, func(u *storage.User) error {
		old = *u
		switch {
		case u.EmailPending != "" && strings.EqualFold(at.Email, u.EmailPending):
			u.Email, u.EmailPending, u.EmailVerified = u.EmailPending, "", true
		case u.Email != "" && strings.EqualFold(at.Email, u.Email):
			u.EmailVerified = true
		default:
			return errStaleVerification
		}
		return nil
	})
	switch {
	case errors.Is(err, errStaleVerification), errors.Is(err, storage.ErrNotFound):
		by.Reason, by.Outcome = "stale", audit.OutcomeFailure
		o.record(ctx, by, audit.EmailVerificationFailed, at.UserID)
		return storage.User{}, ErrInvalidAccountToken
	case err != nil:
		return storage.User{}, err
	}
	o.record(ctx, by, audit.EmailVerified, u.ID)
	if old.Email != u.Email && old.EmailVerified {
		o.send(ctx, u.ID, mail.Message{Kind: mail.KindEmailChanged, To: old.Email, Username: u.Username,
			NewEmail: MaskEmail(u.Email)})
	}
	return u, nil
}

// ResetPassword consumes the reset token and stores hash (the new
// password, checked against the policy and hashed by the caller) as the
// password of its user, as SetPassword does: every session ends, every
// other reset link too. It also clears the account's failed-login counts
// (BF-04), mails mail.KindPasswordWasReset, and records
// password_reset_used. A token that cannot be used records
// password_reset_failed with the reason and is ErrInvalidAccountToken.
func (o *Ops) ResetPassword(ctx context.Context, by audit.Event, token, hash string) (storage.User, error) {
	at, err := o.store.ConsumeAccountToken(ctx, storage.TokenReset, HashAccountToken(token), o.now())
	if reason := storage.TokenReason(err); reason != "" {
		o.ResetFailed(ctx, by, at.UserID, reason)
		return storage.User{}, ErrInvalidAccountToken
	}
	if err != nil {
		return storage.User{}, err
	}
	u, _, err := o.setPassword(ctx, by, at.UserID, hash, nil, mail.KindPasswordWasReset)
	var se *SessionsError
	switch {
	case errors.Is(err, storage.ErrNotFound): // deleted since the link was sent
		o.ResetFailed(ctx, by, at.UserID, "unknown")
		return storage.User{}, ErrInvalidAccountToken
	case err != nil && !errors.As(err, &se):
		return u, err
	}
	if o.unlock != nil {
		if uerr := o.unlock.Unlock(ctx, u.Username); uerr != nil {
			o.mail.Log.ErrorContext(ctx, "password reset: failed-login counts not cleared", "sub", u.ID, "err", uerr)
		}
	}
	o.record(ctx, by, audit.PasswordResetUsed, u.ID)
	return u, err
}

// ResetFailed records password_reset_failed for a refused reset link with
// reason (storage.TokenReason: unknown, expired, used, superseded,
// revoked); subject is its user, "" when unknown.
func (o *Ops) ResetFailed(ctx context.Context, by audit.Event, subject, reason string) {
	by.Reason, by.Outcome = reason, audit.OutcomeFailure
	o.record(ctx, by, audit.PasswordResetFailed, subject)
}

// MaskEmail hides most of an address's local part: alice@example.com is
// a***@example.com.
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return "***"
	}
	r := []rune(email[:at])
	return string(r[0]) + "***" + email[at:]
}
