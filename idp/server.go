package idp

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/admin"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/login"
	"github.com/keyward/keyward/idp/mail"
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
	login.Store   // idp/login: login sessions, consents, TOTP
	login.AuthRequests
}

// KeySource is what the server needs of the signing keys (package keys).
type KeySource interface {
	// Sign returns a compact JWS of payload signed with the active key, by
	// the algorithm that key is bound to (RS256, ES256 or EdDSA), with typ
	// in its header.
	Sign(typ string, payload []byte) (string, error)
	// JWKS returns the public key set document and its strong ETag. The
	// discovery metadata lists the alg of every key in it.
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
	// Interaction is the browser side of the authorization endpoint
	// (idp/login's handlers); nil leaves /oauth2/authorize, its resume,
	// /oauth2/logout and the authorization_code grant off (issue 15).
	Interaction oauth.Interaction
	// SessionIdle and SessionLifetime bound a browser login session
	// (idp/login): it ends after SessionIdle without use, and
	// SessionLifetime after the login in any case; 0: 30 min and 12 h.
	SessionIdle, SessionLifetime time.Duration
	// SecretKey (32 bytes or more, the same on every replica) signs the
	// pages' CSRF tokens and the cookie between password and TOTP, and
	// seals TOTP secrets at rest; keyward serve derives it from the
	// key-encryption key. nil: random per process, TOTP secrets unsealed.
	SecretKey           []byte
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
	// nil: the account endpoints' own (account.Handlers), the default.
	AccountFlows ui.AccountFlows

	// Account mail (issue 14): reset and verification links, notices.
	PublicURL string      // base of the links in mail (absolute, no trailing slash); default Issuer
	Mail      mail.Sender // queues account mail; nil: none is sent, and the log says "mail disabled" once
	// ResetTokenLifetime is how long a password-reset link stays valid;
	// default 30m.
	ResetTokenLifetime time.Duration
	// RequireVerifiedEmail refuses the password grant to a user whose
	// address is not verified (PW-16), as a generic invalid_grant.
	RequireVerifiedEmail bool
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
	admin    *admin.API     // /admin/v1
	ui       *ui.Pages      // the HTML pages
	login    *login.Handler // browser sign-in; nil without Passwords or with Config.Interaction
	metrics  *metrics.Metrics
	hsts     string      // the Strict-Transport-Security value; "" for none
	draining atomic.Bool // set by Drain: /readyz answers 503 from then on
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
	if cfg.PublicURL == "" {
		cfg.PublicURL = cfg.Issuer
	}
	if _, err := ParseIssuer(strings.TrimRight(cfg.PublicURL, "/")); err != nil {
		return nil, errors.New("public URL must be an absolute http(s) URL without query or fragment, as in https://id.example.com")
	}
	if cfg.Mail == nil {
		cfg.Log.Info("mail disabled: no reset, verification or notice mail is sent")
		cfg.Mail = noMail{}
	}
	s := &Server{cfg: cfg, issuer: u, log: cfg.Log, now: cfg.Now, hsts: hstsHeader(u.Hostname(), cfg.HSTSMaxAge)}
	s.metrics = metrics.New(metrics.Options{
		KeyAges:       cfg.KeyAges,
		Grants:        []string{manage.GrantAuthorizationCode, manage.GrantPassword, manage.GrantRefreshToken, manage.GrantClientCredentials},
		ThrottleKinds: []string{guard.KindAccountIP, guard.KindAccount, guard.KindIP, guard.KindClient, guard.KindCaller},
	})
	s.throttle = guard.NewThrottler(cfg.Store, cfg.Throttle, cfg.Now, cfg.Log, s.metrics)
	s.callers = guard.NewCallers(s.throttle.Policy(), cfg.Now, cfg.Log, s.metrics)
	s.audit = audit.New(cfg.Store, cfg.Log, cfg.Now, cfg.AuditRetention)
	s.oauth, err = oauth.New(oauth.Config{Issuer: cfg.Issuer, Store: cfg.Store, Keys: cfg.Keys, Throttle: s.throttle,
		Callers: s.callers, Audit: s.audit, Metrics: s.metrics, Log: cfg.Log, Now: cfg.Now, JWKSMaxAge: cfg.JWKSMaxAge,
		Passwords: cfg.Passwords, AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL,
		RefreshTokenIdleTTL: cfg.RefreshTokenIdleTTL, RefreshReuseWindow: cfg.RefreshReuseWindow,
		PasswordRefreshTokenTTL: cfg.PasswordRefreshTokenTTL, PasswordForbiddenScopes: cfg.PasswordForbiddenScopes,
		RequireVerifiedEmail: cfg.RequireVerifiedEmail, Interaction: cfg.Interaction})
	if err != nil {
		return nil, err
	}
	s.ops = manage.New(cfg.Store, s.audit, s.throttle, cfg.Now)
	s.ops.SetMail(manage.MailConfig{Sender: cfg.Mail, PublicURL: cfg.PublicURL, ResetLifetime: cfg.ResetTokenLifetime, Log: cfg.Log})
	s.account = account.New(account.Config{Store: cfg.Store, Tokens: accountTokens{s}, Passwords: cfg.Passwords,
		Policy: cfg.Policy, Throttle: s.throttle, Audit: s.audit, Metrics: s.metrics, Sessions: s.ops, Links: s.ops,
		Log: cfg.Log, Now: cfg.Now})
	s.admin = admin.New(admin.Config{Issuer: cfg.Issuer, Store: cfg.Store, Ops: s.ops,
		Tokens: admin.TokenValidatorFunc(s.adminToken), Keys: cfg.KeyRotator, Audit: s.audit, Log: cfg.Log,
		Hashes: hashChecker(cfg.Passwords), Scheme: password.Scheme})
	flows := cfg.AccountFlows
	if flows == nil {
		flows = s.account
	}
	requests, _ := flows.(ui.ResetRequester)
	pub, _ := url.Parse(cfg.PublicURL)
	s.ui, err = ui.New(ui.Config{Flows: flows, Requests: requests, Log: cfg.Log,
		MinPasswordLength: minPasswordLength(cfg.Policy), SecureCookies: pub.Scheme == "https", CSRFKey: subKey(cfg.SecretKey, "csrf")})
	if err != nil {
		return nil, err
	}
	if cfg.Interaction == nil && cfg.Passwords != nil {
		s.login, err = login.New(login.Config{Pages: s.ui, Passwords: s.oauth, AuthRequests: cfg.Store, Store: cfg.Store,
			Throttle: s.throttle, Audit: s.audit, Log: cfg.Log, Now: cfg.Now, Idle: cfg.SessionIdle, Lifetime: cfg.SessionLifetime,
			SecureCookies: pub.Scheme == "https", Key: subKey(cfg.SecretKey, "login")})
		if err != nil {
			return nil, err
		}
		s.oauth.SetInteraction(s.login)
	}
	return s, nil
}

// subKey derives the key of one use from the server's secret key
// (HKDF-SHA256), so no two uses share a key; nil without one.
func subKey(secret []byte, use string) []byte {
	if secret == nil {
		return nil
	}
	k, err := hkdf.Key(sha256.New, secret, nil, "keyward "+use, 32)
	if err != nil {
		panic(err) // only for a length HKDF cannot give
	}
	return k
}

// Login returns the browser sign-in handlers, for cmd/keyward to run their
// cleanup; nil when the server has none.
func (s *Server) Login() *login.Handler { return s.login }

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
	if s.oauth.AuthorizationEnabled() { // issue 15: the authorization endpoint (idp/oauth)
		r.Handle(oauth.AuthorizePath, http.HandlerFunc(s.oauth.Authorize)).Methods(http.MethodGet, http.MethodPost)
		r.Handle(oauth.ResumePath, http.HandlerFunc(s.oauth.Resume)).Methods(http.MethodGet)
		r.Handle(oauth.LogoutPath, http.HandlerFunc(s.oauth.Logout)).Methods(http.MethodGet, http.MethodPost)
	}
	r.Handle("/account/password", web.Handle(s.log, s.account.ChangePassword)).Methods(http.MethodPost)
	if s.cfg.Registration {
		r.Handle("/account/register", web.Handle(s.log, s.account.Register)).Methods(http.MethodPost)
	}
	r.Handle("/account/password/forgot", web.Handle(s.log, s.account.Forgot)).Methods(http.MethodPost)
	r.Handle("/account/password/reset", web.Handle(s.log, s.account.ResetPasswordAPI)).Methods(http.MethodPost)
	r.Handle("/account/email", web.Handle(s.log, s.account.ChangeEmail)).Methods(http.MethodPost)
	if p := s.ui; p != nil {
		// The pages behind the account mails (idp/ui, docs/account.md
		// "Pages"). GET never consumes a token. /account/verify-email is
		// also the account API's JSON POST: one route takes both, the form
		// POSTs for the page, every other body for the API (byBody).
		r.Handle(ui.ResetPasswordPath, p.ShowResetPassword()).Methods(http.MethodGet, http.MethodHead)
		r.Handle(ui.ResetPasswordPath, p.SubmitResetPassword()).Methods(http.MethodPost)
		r.Handle(ui.VerifyEmailPath, p.ShowVerifyEmail()).Methods(http.MethodGet, http.MethodHead)
		r.Handle(ui.VerifyEmailPath, byBody(p.SubmitVerifyEmail(), web.Handle(s.log, s.account.VerifyEmailAPI))).Methods(http.MethodPost)
		if p.ServesForgotPassword() {
			r.Handle(ui.ForgotPasswordPath, p.ShowForgotPassword()).Methods(http.MethodGet, http.MethodHead)
			r.Handle(ui.ForgotPasswordPath, p.SubmitForgotPassword()).Methods(http.MethodPost)
		}
		r.Handle(ui.AssetPrefix+"{asset}", p.Asset()).Methods(http.MethodGet, http.MethodHead)
	}
	if l := s.login; l != nil {
		// Browser sign-in (idp/login, docs/login.md): the pages the
		// authorization endpoint sends the browser to.
		for _, p := range []struct {
			path       string
			show, post http.Handler
		}{
			{login.LoginPath, l.ShowLogin(), l.SubmitLogin()},
			{login.TOTPPath, l.ShowTOTP(), l.SubmitTOTP()},
			{login.ConsentPath, l.ShowConsent(), l.SubmitConsent()},
			{login.LogoutPath, l.ShowLogout(), l.SubmitLogout()},
			{login.TOTPEnrolPath, l.ShowTOTPEnrol(), l.SubmitTOTPEnrol()},
		} {
			r.Handle(p.path, p.show).Methods(http.MethodGet, http.MethodHead)
			r.Handle(p.path, p.post).Methods(http.MethodPost)
		}
		r.Handle(login.LogoutDonePath, l.LogoutDone()).Methods(http.MethodGet, http.MethodHead)
		r.Handle(login.TOTPQRPath, l.TOTPQR()).Methods(http.MethodGet)
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
	r.Handle("/admin/v1/users/{id}/send-reset", a.Authorize(a.SendReset)).Methods(http.MethodPost)
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
	if l := s.login; l != nil {
		r.Handle("/admin/v1/users/{id}/login-sessions", a.Authorize(l.ListLoginSessions)).Methods(http.MethodGet)
		r.Handle("/admin/v1/users/{id}/login-sessions", a.Authorize(l.RevokeLoginSessions)).Methods(http.MethodDelete)
		r.Handle("/admin/v1/users/{id}/consents", a.Authorize(l.ListConsents)).Methods(http.MethodGet)
		r.Handle("/admin/v1/users/{id}/consents/{client_id}", a.Authorize(l.RevokeConsent)).Methods(http.MethodDelete)
		r.Handle("/admin/v1/users/{id}/totp", a.Authorize(l.ResetTOTP)).Methods(http.MethodDelete)
	}
}

// hashChecker is the hasher's import check (*password.Hasher's CheckStored), or nil
// when there is no hasher or it has none.
func hashChecker(p oauth.PasswordHasher) manage.HashChecker {
	hc, _ := p.(manage.HashChecker)
	return hc
}

// byBody serves a path that a page and the account API share: a request
// whose body is an HTML form's (application/x-www-form-urlencoded or
// multipart/form-data) goes to page, every other to api. One route, not
// two with matchers, so that a wrong method still gets 405 with Allow.
func byBody(page, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		switch strings.ToLower(strings.TrimSpace(ct)) {
		case "application/x-www-form-urlencoded", "multipart/form-data":
			page.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// noMail is the mail.Sender of a server without one: it drops every
// message (New logged "mail disabled" once).
type noMail struct{}

func (noMail) Send(context.Context, mail.Message) error { return nil }

// Account returns the account endpoints, whose ResetPassword, VerifyEmail
// and CheckResetToken the pages behind the mailed links call.
func (s *Server) Account() *account.Handlers { return s.account }

// Ops returns the user and client operations, for cmd/keyward and tests.
func (s *Server) Ops() *manage.Ops { return s.ops }

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
