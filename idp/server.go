package idp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/admin"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
)

// Store is the part of storage the server needs. Each flow adds the small
// interface it uses; cmd/keyward asserts that *storage.DB satisfies it.
type Store interface {
	Ping(ctx context.Context) error
	oauth.Store // idp/oauth: clients, users, refresh families, revoked access tokens
	guard.Store
	audit.Store
	admin.Store   // idp/admin: what /admin/v1 reads
	account.Store // idp/account: what /account/* writes
	manage.Store  // the operations the admin API shares with the CLI
}

// KeySource is what the server needs of the signing keys (package keys).
type KeySource interface {
	// Sign returns a compact RS256 JWS of payload signed with the active key,
	// with typ in its header.
	Sign(typ string, payload []byte) (string, error)
	// JWKS returns the public key set document and its strong ETag.
	JWKS() (doc []byte, etag string)
	// Ready reports whether an active signing key is loaded.
	Ready() error
}

// Config configures a Server. Zero durations take the defaults documented
// on each field.
type Config struct {
	Issuer string // absolute URL, no trailing slash, no query or fragment
	Store  Store
	Keys   KeySource
	Log    *slog.Logger
	Now    func() time.Time // default time.Now

	JWKSMaxAge time.Duration // Cache-Control max-age of the JWKS; default 5m

	// TrustedProxies lists the networks whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// RequireForwardedHTTPS refuses plain-HTTP requests unless a trusted proxy says X-Forwarded-Proto: https (https.go, TE-01).
	RequireForwardedHTTPS bool
	// HSTSMaxAge is the Strict-Transport-Security max-age sent, with
	// includeSubDomains, on every answer to a request that came over TLS,
	// unless the issuer host is loopback (https.go, TH-02); default
	// DefaultHSTSMaxAge (one year), negative turns the header off.
	HSTSMaxAge time.Duration

	// OAuth endpoints (idp/oauth).
	Passwords           oauth.PasswordHasher // checks passwords for the password grant; nil turns the grant off
	AccessTokenTTL      time.Duration        // access and ID token lifetime; default 15m
	RefreshTokenTTL     time.Duration        // absolute lifetime of a refresh family; default 30 days
	RefreshTokenIdleTTL time.Duration        // lifetime of an unused refresh token; default 7 days
	RefreshReuseWindow  time.Duration        // retry window for a just-used refresh token; default 10s, negative turns it off
	// PasswordRefreshTokenTTL is the absolute lifetime of a refresh family
	// the password grant starts (TE-16); default RefreshTokenTTL, and a
	// longer one counts as RefreshTokenTTL.
	PasswordRefreshTokenTTL time.Duration
	// PasswordForbiddenScopes are scopes the password grant never gives,
	// beside ScopeAdmin, which it never gives anyway (TE-16): asked for, they
	// are invalid_scope even for a client registered for them; the default
	// scope leaves them out, and so does a refresh. client_credentials still
	// grants them.
	PasswordForbiddenScopes []string

	Throttle       guard.Policy            // brute-force limits; zero fields take defaults
	AuditRetention time.Duration           // how long audit rows are kept; default 90 days
	KeyAges        func() []metrics.KeyAge // feeds keyward_signing_key_age_seconds; may be nil
	// HideMetrics leaves /metrics off Routes (AD-09): keyward serve sets it
	// unless --public-metrics, and serves Metrics().Handler() on its own
	// listener. Routes serves Metrics().PublicHandler(), whose login
	// failure reasons are collapsed so no series tells accounts apart.
	HideMetrics bool

	KeyRotator admin.KeyRotator // the admin API's key rotation and revocation; nil: /admin/v1/keys answers 404
	// Account self-service (idp/account, docs/account.md).
	Policy       *password.Policy // vets new passwords at registration and change; nil: password.Policy defaults
	Registration bool             // serve POST /account/register
	// AccountFlows runs the steps behind the account pages (idp/ui):
	// GET and form POST /account/reset-password and /account/verify-email,
	// and /account/forgot-password when it is also a ui.ResetRequester.
	// nil: the pages are not served.
	AccountFlows ui.AccountFlows
}

// Server is the authorization server. Create it with New.
type Server struct {
	cfg    Config
	issuer *url.URL
	log    *slog.Logger
	now    func() time.Time

	throttle *guard.Throttler
	callers  *guard.Callers
	audit    *audit.Auditor
	oauth    *oauth.Provider // the OAuth and OIDC endpoints
	ops      *manage.Ops     // the user and client operations of the admin and account APIs
	account  *account.Handlers
	admin    *admin.API // /admin/v1
	ui       *ui.Pages  // the HTML pages; nil without Config.AccountFlows
	metrics  *metrics.Metrics
	hsts     string // the Strict-Transport-Security value; "" for none
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	u, err := ParseIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("idp: Store and Keys are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HSTSMaxAge == 0 {
		cfg.HSTSMaxAge = DefaultHSTSMaxAge
	}
	s := &Server{cfg: cfg, issuer: u, log: cfg.Log, now: cfg.Now, hsts: hstsHeader(u.Hostname(), cfg.HSTSMaxAge)}
	s.metrics = metrics.New(metrics.Options{
		KeyAges:       cfg.KeyAges,
		Grants:        []string{manage.GrantPassword, manage.GrantRefreshToken, manage.GrantClientCredentials},
		ThrottleKinds: []string{guard.KindAccountIP, guard.KindAccount, guard.KindIP, guard.KindClient, guard.KindCaller},
	})
	s.throttle = guard.NewThrottler(cfg.Store, cfg.Throttle, cfg.Now, cfg.Log, s.metrics)
	s.callers = guard.NewCallers(s.throttle.Policy(), cfg.Now, cfg.Log, s.metrics)
	s.audit = audit.New(cfg.Store, cfg.Log, cfg.Now, cfg.AuditRetention)
	s.oauth, err = oauth.New(oauth.Config{Issuer: cfg.Issuer, Store: cfg.Store, Keys: cfg.Keys, Throttle: s.throttle,
		Callers: s.callers, Audit: s.audit, Metrics: s.metrics, Log: cfg.Log, Now: cfg.Now, JWKSMaxAge: cfg.JWKSMaxAge,
		Passwords: cfg.Passwords, AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL,
		RefreshTokenIdleTTL: cfg.RefreshTokenIdleTTL, RefreshReuseWindow: cfg.RefreshReuseWindow,
		PasswordRefreshTokenTTL: cfg.PasswordRefreshTokenTTL, PasswordForbiddenScopes: cfg.PasswordForbiddenScopes})
	if err != nil {
		return nil, err
	}
	s.ops = manage.New(cfg.Store, s.audit, s.throttle, cfg.Now)
	s.account = account.New(account.Config{Store: cfg.Store, Tokens: accountTokens{s}, Passwords: cfg.Passwords,
		Policy: cfg.Policy, Throttle: s.throttle, Audit: s.audit, Metrics: s.metrics, Sessions: s.ops, Log: cfg.Log, Now: cfg.Now})
	s.admin = admin.New(admin.Config{Issuer: cfg.Issuer, Store: cfg.Store, Ops: s.ops,
		Tokens: admin.TokenValidatorFunc(s.adminToken), Keys: cfg.KeyRotator, Audit: s.audit, Log: cfg.Log,
		Hashes: hashChecker(cfg.Passwords), Scheme: password.Scheme})
	if cfg.AccountFlows != nil {
		requests, _ := cfg.AccountFlows.(ui.ResetRequester)
		s.ui, err = ui.New(ui.Config{Flows: cfg.AccountFlows, Requests: requests, Log: cfg.Log,
			MinPasswordLength: minPasswordLength(cfg.Policy), SecureCookies: u.Scheme == "https"})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// minPasswordLength is the minimum length p enforces, for the pages' hint.
func minPasswordLength(p *password.Policy) int {
	switch {
	case p == nil || p.MinLength == 0:
		return password.DefaultMinLength
	case p.MinLength < password.LowestMinLength:
		return password.LowestMinLength
	}
	return p.MinLength
}

// ParseIssuer checks that issuer is an absolute http(s) URL without query,
// fragment or trailing slash (OIDC Discovery §3, RFC 8414 §2).
func ParseIssuer(issuer string) (*url.URL, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(issuer, "/") {
		return nil, errors.New("issuer must be an absolute http(s) URL without query, fragment or trailing slash, as in https://id.example.com")
	}
	return u, nil
}

// Handler returns the server's routes wrapped in its middleware.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = s.metrics.Unmatched(web.Handle(s.log, func(http.ResponseWriter, *http.Request) error {
		return &web.Error{Code: "not_found", Status: http.StatusNotFound}
	}))
	r.MethodNotAllowedHandler = s.metrics.Unmatched(web.Handle(s.log, func(w http.ResponseWriter, req *http.Request) error {
		w.Header().Set("Allow", strings.Join(allowedMethods(r, req), ", ")) // RFC 9110 §15.5.6: MUST
		return &web.Error{Code: web.ErrInvalidRequest, Description: "method not allowed", Status: http.StatusMethodNotAllowed}
	}))
	r.Use(s.metrics.Middleware)
	s.Routes(r)
	return s.middleware(s.requireHTTPS(r))
}

// allowedMethods lists the methods the routes of req's path accept, for
// the Allow header of a 405: every route whose path matches and whose only
// failing condition is the method.
func allowedMethods(router *mux.Router, req *http.Request) []string {
	var out []string
	router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		var m mux.RouteMatch
		if !route.Match(req, &m) && !errors.Is(m.MatchErr, mux.ErrMethodMismatch) {
			return nil
		}
		methods, _ := route.GetMethods()
		for _, method := range methods {
			if !slices.Contains(out, method) {
				out = append(out, method)
			}
		}
		return nil
	})
	return out
}

// Routes binds every endpoint; this is the one place routes are listed.
func (s *Server) Routes(r *mux.Router) {
	r.Handle("/healthz", web.Handle(s.log, s.healthz)).Methods(http.MethodGet)
	r.Handle("/readyz", web.Handle(s.log, s.readyz)).Methods(http.MethodGet)
	r.Handle("/.well-known/openid-configuration", web.Handle(s.log, s.oauth.WellKnown)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/.well-known/oauth-authorization-server", web.Handle(s.log, s.oauth.WellKnown)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/.well-known/jwks.json", web.Handle(s.log, s.oauth.JWKS)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/oauth2/token", web.Handle(s.log, s.oauth.Token)).Methods(http.MethodPost)
	r.Handle("/oauth2/revoke", web.Handle(s.log, s.oauth.Revoke)).Methods(http.MethodPost)
	r.Handle("/oauth2/introspect", web.Handle(s.log, s.oauth.Introspect)).Methods(http.MethodPost)
	r.Handle("/userinfo", web.Handle(s.log, s.oauth.Userinfo)).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/account/password", web.Handle(s.log, s.account.ChangePassword)).Methods(http.MethodPost)
	if s.cfg.Registration {
		r.Handle("/account/register", web.Handle(s.log, s.account.Register)).Methods(http.MethodPost)
	}
	if p := s.ui; p != nil {
		// The pages behind the account mails (idp/ui, docs/account.md
		// "Pages"). GET never consumes a token. /account/verify-email is
		// also the account API's JSON POST: the page takes every POST that
		// is not application/json (formPost).
		r.Handle(ui.ResetPasswordPath, p.ShowResetPassword()).Methods(http.MethodGet, http.MethodHead)
		r.Handle(ui.ResetPasswordPath, p.SubmitResetPassword()).Methods(http.MethodPost)
		r.Handle(ui.VerifyEmailPath, p.ShowVerifyEmail()).Methods(http.MethodGet, http.MethodHead)
		r.Handle(ui.VerifyEmailPath, p.SubmitVerifyEmail()).Methods(http.MethodPost).MatcherFunc(formPost)
		if p.ServesForgotPassword() {
			r.Handle(ui.ForgotPasswordPath, p.ShowForgotPassword()).Methods(http.MethodGet, http.MethodHead)
			r.Handle(ui.ForgotPasswordPath, p.SubmitForgotPassword()).Methods(http.MethodPost)
		}
		r.Handle(ui.AssetPrefix+"{asset}", p.Asset()).Methods(http.MethodGet, http.MethodHead)
	}
	if !s.cfg.HideMetrics {
		r.Handle("/metrics", s.metrics.PublicHandler()).Methods(http.MethodGet)
	}

	// Admin API (idp/admin): a.Authorize authorizes every route (AD-01).
	a := s.admin
	r.Handle("/admin/v1/users", a.Authorize(a.ListUsers)).Methods(http.MethodGet)
	r.Handle("/admin/v1/users/import", a.Authorize(a.ImportUsers)).Methods(http.MethodPost)
	r.Handle("/admin/v1/users/{id}", a.Authorize(a.GetUser)).Methods(http.MethodGet)
	r.Handle("/admin/v1/users/{id}", a.Authorize(a.PatchUser)).Methods(http.MethodPatch)
	r.Handle("/admin/v1/users/{id}", a.Authorize(a.DeleteUser)).Methods(http.MethodDelete)
	r.Handle("/admin/v1/users/{id}/unlock", a.Authorize(a.UnlockUser)).Methods(http.MethodPost)
	r.Handle("/admin/v1/users/{id}/sessions", a.Authorize(a.ListSessions)).Methods(http.MethodGet)
	r.Handle("/admin/v1/users/{id}/sessions", a.Authorize(a.RevokeSessions)).Methods(http.MethodDelete)
	r.Handle("/admin/v1/clients", a.Authorize(a.ListClients)).Methods(http.MethodGet)
	r.Handle("/admin/v1/clients", a.Authorize(a.CreateClient)).Methods(http.MethodPost)
	r.Handle("/admin/v1/clients/{id}", a.Authorize(a.GetClient)).Methods(http.MethodGet)
	r.Handle("/admin/v1/clients/{id}", a.Authorize(a.PatchClient)).Methods(http.MethodPatch)
	r.Handle("/admin/v1/audit", a.Authorize(a.Audit)).Methods(http.MethodGet)
	r.Handle("/admin/v1/keys", a.Authorize(a.ListKeys)).Methods(http.MethodGet)
	r.Handle("/admin/v1/keys/rotate", a.Authorize(a.RotateKey)).Methods(http.MethodPost)
	r.Handle("/admin/v1/keys/{kid}/revoke", a.Authorize(a.RevokeKey)).Methods(http.MethodPost)
}

// hashChecker is the hasher's import check (*password.Hasher's CheckStored), or nil
// when there is no hasher or it has none.
func hashChecker(p oauth.PasswordHasher) manage.HashChecker {
	hc, _ := p.(manage.HashChecker)
	return hc
}

// formPost matches a request whose body is not JSON, so that a path the
// account API and a page share sends JSON to the API and forms to the page.
func formPost(r *http.Request, _ *mux.RouteMatch) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return !strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// adminToken validates an access token for the admin API
// (admin.TokenValidator).
func (s *Server) adminToken(ctx context.Context, raw string) (admin.Token, error) {
	c, err := s.oauth.ValidateAccessToken(ctx, raw)
	if errors.Is(err, oauth.ErrInvalidToken) {
		return admin.Token{}, admin.ErrInvalidToken
	}
	if err != nil {
		return admin.Token{}, err
	}
	return admin.Token{Subject: c.Subject, Audience: c.Audience, ClientID: c.ClientID, SessionID: c.SessionID, Scope: c.Scope}, nil
}

// OAuth returns the server's OAuth endpoints, for cmd/keyward to run their
// token cleanup.
func (s *Server) OAuth() *oauth.Provider { return s.oauth }

// Auditor returns the server's audit trail, for the flows that record
// events and for cmd/keyward to Run.
func (s *Server) Auditor() *audit.Auditor { return s.audit }

// Metrics returns the server's metrics, for the flows that observe them.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Throttler returns the server's brute-force throttle, for the grants and
// for cmd/keyward to Run.
func (s *Server) Throttler() *guard.Throttler { return s.throttle }
