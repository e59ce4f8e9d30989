package oauth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/storage"
)

// Keys is what the endpoints need of the signing keys (*keys.Manager).
type Keys interface {
	// Sign returns a compact JWS of payload signed with the active key, by
	// the algorithm that key is bound to (RS256, ES256 or EdDSA), with typ
	// in its header.
	Sign(typ string, payload []byte) (string, error)
	// JWKS returns the public key set document and its strong ETag. The
	// discovery metadata lists the alg of every key in it.
	JWKS() (doc []byte, etag string)
}

// PasswordHasher checks passwords (package idp/password's *Hasher).
type PasswordHasher interface {
	Hash(ctx context.Context, pw string) (string, error)
	Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error)
	VerifyDummy(ctx context.Context, pw string) error
}

// Throttle is the part of the brute-force throttle the password grant and
// client authentication use (*guard.Throttler).
type Throttle interface {
	CheckLogin(ctx context.Context, account, ip string) (guard.Decision, error)
	LoginFailed(ctx context.Context, account, ip string) error
	LoginDenied(ctx context.Context, account, ip string) error
	LoginSucceeded(ctx context.Context, account, ip string) error
	CheckClient(ctx context.Context, clientID, ip string) (guard.Decision, error)
	ClientAuthFailed(ctx context.Context, clientID, ip string) error
	Report(ctx context.Context, rec guard.Recorder, d guard.Decision, e audit.Event)
}

// Callers limits the rate of revocation and introspection per
// authenticated caller (*guard.Callers).
type Callers interface {
	Allow(ctx context.Context, c storage.Client) error
}

// Recorder is the audit trail (*audit.Auditor).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
	RecordAsync(ctx context.Context, e audit.Event)
}

// Metrics is what the endpoints count (*metrics.Metrics).
type Metrics interface {
	TokenRequest(grantType, outcome string)
	LoginFailure(reason string)
	Throttled(kind string)
	RefreshReuse(result string)
}

// Config is what the OAuth endpoints need of the server. Issuer, Store,
// Keys, Throttle, Callers, Audit and Metrics are required; zero durations
// take the defaults documented on each field.
type Config struct {
	Issuer   string // absolute URL, no trailing slash (idp.ParseIssuer checked it)
	Store    Store
	Keys     Keys
	Throttle Throttle
	Callers  Callers
	Audit    Recorder
	Metrics  Metrics
	Log      *slog.Logger     // default: discard
	Now      func() time.Time // default time.Now

	JWKSMaxAge time.Duration // Cache-Control max-age of the JWKS; default 5m

	Passwords           PasswordHasher // checks passwords for the password grant; nil turns the grant off
	AccessTokenTTL      time.Duration  // access and ID token lifetime; default 15m
	RefreshTokenTTL     time.Duration  // absolute lifetime of a refresh family; default 30 days
	RefreshTokenIdleTTL time.Duration  // lifetime of an unused refresh token; default 7 days
	RefreshReuseWindow  time.Duration  // retry window for a just-used refresh token; default 10s, negative turns it off
	// PasswordRefreshTokenTTL is the absolute lifetime of a refresh family
	// the password grant starts (TE-16); default RefreshTokenTTL, and a
	// longer one counts as RefreshTokenTTL.
	PasswordRefreshTokenTTL time.Duration
	// PasswordForbiddenScopes are scopes the password grant never gives,
	// beside manage.ScopeAdmin, which it never gives anyway (TE-16).
	PasswordForbiddenScopes []string
	// RequireVerifiedEmail refuses the password grant to a user whose
	// address is not verified (PW-16), as a generic invalid_grant audited
	// with the reason email_unverified.
	RequireVerifiedEmail bool

	// Interaction is the browser side of the authorization endpoint
	// (idp/login); nil turns the authorization endpoint, the
	// authorization_code grant and the logout endpoint off.
	Interaction Interaction
}

// Provider serves the OAuth 2.0 and OpenID Connect endpoints. Create it
// with New; the assembly binds its handlers (Token, Revoke, Introspect,
// Userinfo, WellKnown, JWKS).
type Provider struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	discoveryState
	tokenState // tokens_jwt.go

	throttle Throttle
	callers  Callers
	audit    Recorder
	metrics  Metrics
}

// New checks cfg, fills in its defaults and returns a Provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.Store == nil || cfg.Keys == nil || cfg.Throttle == nil || cfg.Callers == nil ||
		cfg.Audit == nil || cfg.Metrics == nil {
		return nil, errors.New("oauth: Issuer, Store, Keys, Throttle, Callers, Audit and Metrics are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = 5 * time.Minute
	}
	cfg.tokenDefaults()
	return &Provider{cfg: cfg, log: cfg.Log, now: cfg.Now,
		throttle: cfg.Throttle, callers: cfg.Callers, audit: cfg.Audit, metrics: cfg.Metrics}, nil
}

// url returns the absolute URL of an issuer-relative path.
func (s *Provider) url(path string) string {
	return strings.TrimSuffix(s.cfg.Issuer, "/") + path
}

// SetInteraction sets Config.Interaction after New, for an assembly whose
// login pages need the Provider first (idp/login's Passwords is the
// Provider's AuthenticatePassword). Call it before the Provider serves
// anything; it is not safe concurrently with requests.
func (s *Provider) SetInteraction(i Interaction) { s.cfg.Interaction = i }

// AuthorizationEnabled reports whether the authorization endpoint, its
// resume, the logout endpoint and the authorization_code grant are on (an
// Interaction is set): the assembly routes them only then.
func (s *Provider) AuthorizationEnabled() bool { return s.cfg.Interaction != nil }
