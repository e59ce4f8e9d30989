package account

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// The account self-service API (docs/account.md): POST /account/register
// (register.go) and POST /account/password (password.go). Both take strict
// JSON bodies (IN-06) and vet new passwords with the password policy (PW-05
// to PW-08).

// Store is the part of storage the account endpoints need.
type Store interface {
	CreateUser(ctx context.Context, u *storage.User) error
	User(ctx context.Context, id string) (storage.User, error)
	UserByUsername(ctx context.Context, username string) (storage.User, error)
	UserByVerifiedEmail(ctx context.Context, email string) (storage.User, error)
	CheckAccountToken(ctx context.Context, kind string, hash []byte, now time.Time) (storage.AccountToken, error)
}

// Tokens checks the access token of an account request; the assembly
// implements it over the token endpoint's validation.
type Tokens interface {
	// TokenUser validates raw and returns the client it was issued to and
	// the user it speaks for. It answers ErrInvalidToken for a token that is
	// invalid, expired or revoked or whose user or client is gone or
	// disabled, ErrNotUserToken for a client's own token (client
	// credentials), and any other error for a failure of the server.
	TokenUser(ctx context.Context, raw string) (clientID string, u storage.User, err error)
}

// ErrInvalidToken and ErrNotUserToken are the refusals of Tokens.TokenUser.
var (
	ErrInvalidToken = errors.New("invalid access token")
	ErrNotUserToken = errors.New("access token is not a user's")
)

// Hasher hashes and checks passwords (*password.Hasher).
type Hasher interface {
	Hash(ctx context.Context, pw string) (string, error)
	Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error)
	VerifyDummy(ctx context.Context, pw string) error
}

// Throttle is the part of the brute-force throttle the account endpoints
// use (*guard.Throttler): the login counters, shared with the password
// grant, and the per-IP registration limit.
type Throttle interface {
	CheckLogin(ctx context.Context, account, ip string) (guard.Decision, error)
	LoginFailed(ctx context.Context, account, ip string) error
	LoginDenied(ctx context.Context, account, ip string) error
	LoginSucceeded(ctx context.Context, account, ip string) error
	Report(ctx context.Context, rec guard.Recorder, d guard.Decision, e audit.Event)
	CountRegistration(ctx context.Context, ip string) error
	CountForgot(ctx context.Context, account, ip string) (mail bool, err error)
	CheckLink(ctx context.Context, ip string) error
	LinkFailed(ctx context.Context, ip string) error
}

// Recorder is the part of the audit trail the endpoints need (*audit.Auditor).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Metrics is what the endpoints count (*metrics.Metrics).
type Metrics interface {
	LoginFailure(reason string)
}

// PasswordSetter replaces a user's password hash and ends their sessions
// (*manage.Ops, the operation the admin API and the CLI share).
type PasswordSetter interface {
	SetPassword(ctx context.Context, by audit.Event, id, hash string,
		check func(cur *storage.User) error) (storage.User, int64, error)
}

// Links issues, mails and consumes the account links, and sets a pending
// address (*manage.Ops, shared with the admin API and the CLI).
type Links interface {
	SendReset(ctx context.Context, by audit.Event, u storage.User) error
	SendVerification(ctx context.Context, by audit.Event, u storage.User, email string) error
	SetEmail(ctx context.Context, by audit.Event, id, email string) (storage.User, error)
	ConfirmEmail(ctx context.Context, by audit.Event, token string) (storage.User, error)
	ResetPassword(ctx context.Context, by audit.Event, token, hash string) (storage.User, error)
	ResetFailed(ctx context.Context, by audit.Event, subject, reason string)
}

// Config is what the account endpoints need of the server. Every field but
// Passwords, Policy, Log and Now is required.
type Config struct {
	Store     Store
	Tokens    Tokens
	Passwords Hasher           // nil: the endpoints answer 404
	Policy    *password.Policy // vets new passwords; nil: password.Policy defaults
	Throttle  Throttle
	Audit     Recorder
	Metrics   Metrics
	Sessions  PasswordSetter
	Links     Links
	Log       *slog.Logger     // default: discard
	Now       func() time.Time // default time.Now
}

// Handlers serves the account endpoints. Create it with New; the assembly
// binds its methods to routes.
type Handlers struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns the account endpoints over cfg.
func New(cfg Config) *Handlers {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handlers{cfg: cfg, log: cfg.Log, now: cfg.Now}
}

// ErrInvalidPassword is the error code of a new password the policy refuses;
// the body names the rule (a password.Rule* constant or RuleSameAsCurrent).
const ErrInvalidPassword = "invalid_password"

// RuleSameAsCurrent is the rule a password change breaks when the new
// password equals the current one (after NFKC normalisation).
const RuleSameAsCurrent = "same_as_current"

// passwordRejected is a new password the policy refused: 400
// {"error":"invalid_password","rule":...}. message is fit for the user and
// never contains the password.
func passwordRejected(rule, message string) *web.Error {
	return &web.Error{Code: ErrInvalidPassword, Description: message, Rule: rule, Status: http.StatusBadRequest}
}

// checkNewPassword applies the password policy (Config.Policy) to a new
// password for the account named username with email.
func (h *Handlers) checkNewPassword(pw, username, email string) error {
	pol := h.cfg.Policy
	if pol == nil {
		pol = &password.Policy{}
	}
	err := pol.Check(pw, username, email)
	var pe *password.PolicyError
	if errors.As(err, &pe) {
		return passwordRejected(pe.Rule, pe.Message)
	}
	return err
}

// errAccountsOff answers a request to an account endpoint when the server
// has no password hasher: the endpoint does not exist.
func errAccountsOff() *web.Error { return &web.Error{Code: "not_found", Status: http.StatusNotFound} }
