package login

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/storage"
)

// Default session lifetimes (--session-idle, --session-lifetime).
const (
	DefaultIdle     = 30 * time.Minute
	DefaultLifetime = 12 * time.Hour
)

// pendingTTL bounds the time between the password and the TOTP step.
const pendingTTL = 5 * time.Minute

// Cookie names: __Host- over https (ui's Config.SecureCookies), plain
// names on http, where browsers refuse __Host-.
const (
	sessionCookieSecure = "__Host-keyward-session"
	sessionCookiePlain  = "keyward-session"
	pendingCookieSecure = "__Host-keyward-login"
	pendingCookiePlain  = "keyward-login"
)

// Passwords checks a username and password as the password grant does
// (*oauth.Provider). Errors are *web.Error: invalid_grant 400 (wrong
// username or password, disabled, unknown: one answer),
// temporarily_unavailable 429 with RetryAfter (throttled), 503.
type Passwords interface {
	AuthenticatePassword(ctx context.Context, clientID, username, password string) (storage.User, error)
}

// AuthRequests is the authorization requests the pages serve (*storage.DB).
type AuthRequests interface {
	AuthRequest(ctx context.Context, id string) (storage.AuthRequest, error)
	MarkAuthRequestLogin(ctx context.Context, id, sessionID string, at time.Time) error
	MarkAuthRequestConsent(ctx context.Context, id string, at time.Time, denied bool) error
}

// Store is the part of storage the package needs (*storage.DB).
type Store interface {
	User(ctx context.Context, id string) (storage.User, error)
	Client(ctx context.Context, id string) (storage.Client, error)

	CreateLoginSession(ctx context.Context, s storage.LoginSession) error
	LoginSession(ctx context.Context, id string) (storage.LoginSession, error)
	LoginSessions(ctx context.Context, userID string, now time.Time) ([]storage.LoginSession, error)
	TouchLoginSession(ctx context.Context, id string, now, idleExpires time.Time) error
	RevokeLoginSession(ctx context.Context, id string, now time.Time) (bool, error)
	RevokeUserLoginSessions(ctx context.Context, userID string, now time.Time) (int64, error)
	DeleteExpiredLoginSessions(ctx context.Context, before time.Time) (int64, error)

	Consent(ctx context.Context, userID, clientID string) (storage.Consent, error)
	Consents(ctx context.Context, userID string) ([]storage.Consent, error)
	GrantConsent(ctx context.Context, userID, clientID string, scope []string, now time.Time) (storage.Consent, error)
	RevokeConsent(ctx context.Context, userID, clientID string) error

	TOTPCredential(ctx context.Context, userID string) (storage.TOTPCredential, error)
	StartTOTPEnrolment(ctx context.Context, c storage.TOTPCredential) error
	ConfirmTOTP(ctx context.Context, userID string, step int64, codeHashes []string, now time.Time) error
	UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
	UseRecoveryCode(ctx context.Context, userID, codeHash string) (bool, error)
	DeleteTOTP(ctx context.Context, userID string) (bool, error)
}

// Throttle limits TOTP guesses like password guesses (*guard.Throttler);
// the account is "totp:" and the user id.
type Throttle interface {
	CheckLogin(ctx context.Context, account, ip string) (guard.Decision, error)
	LoginFailed(ctx context.Context, account, ip string) error
	LoginSucceeded(ctx context.Context, account, ip string) error
}

// Recorder is the audit trail (*audit.Auditor).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Config configures the Handler.
type Config struct {
	Pages        *ui.Pages    // renders the pages (required)
	Passwords    Passwords    // required
	AuthRequests AuthRequests // required
	Store        Store        // required
	Throttle     Throttle     // required
	Audit        Recorder     // required
	Log          *slog.Logger // nil: discard
	Now          func() time.Time
	// Idle and Lifetime bound a login session: it ends after Idle without
	// use, and Lifetime after the login in any case. 0: the defaults.
	Idle, Lifetime time.Duration
	// SecureCookies: the site is served over https (as ui.Config's).
	SecureCookies bool
	// Key signs the short-lived cookie between the password and the TOTP
	// step and, when set, seals TOTP secrets at rest (AES-256-GCM under a
	// key derived from it). At least 32 bytes; every replica shares it.
	// nil: a random signing key per process, and secrets stored unsealed.
	Key []byte
	// Issuer is the name authenticator apps show for the TOTP entry; "":
	// "Keyward".
	Issuer string
}

// Handler serves the login pages and implements oauth.Interaction.
type Handler struct {
	cfg     Config
	pages   *ui.Pages
	signKey []byte
	sealKey []byte // nil: secrets stored unsealed
}

// New returns the Handler of cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Pages == nil || cfg.Passwords == nil || cfg.AuthRequests == nil || cfg.Store == nil ||
		cfg.Throttle == nil || cfg.Audit == nil {
		return nil, errors.New("login: Pages, Passwords, AuthRequests, Store, Throttle and Audit are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "Keyward"
	}
	h := &Handler{cfg: cfg, pages: cfg.Pages}
	switch {
	case cfg.Key == nil:
		h.signKey = make([]byte, 32)
		rand.Read(h.signKey)
	case len(cfg.Key) < 32:
		return nil, errors.New("login: Config.Key must be at least 32 bytes")
	default:
		h.signKey = derive(cfg.Key, "keyward login pending v1")
		h.sealKey = derive(cfg.Key, "keyward totp seal v1")
	}
	return h, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (h *Handler) now() time.Time { return h.cfg.Now() }

func (h *Handler) secure(r *http.Request) bool { return h.cfg.SecureCookies || r.TLS != nil }

func (h *Handler) sessionCookieName(r *http.Request) string {
	if h.secure(r) {
		return sessionCookieSecure
	}
	return sessionCookiePlain
}

func (h *Handler) pendingCookieName(r *http.Request) string {
	if h.secure(r) {
		return pendingCookieSecure
	}
	return pendingCookiePlain
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: h.secure(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// sessionID is the row id of a cookie value: its SHA-256 in hex.
func sessionID(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// cookieSessionID returns the row id of r's session cookie, "" for none.
func (h *Handler) cookieSessionID(r *http.Request) string {
	c, err := r.Cookie(h.sessionCookieName(r))
	if err != nil || len(c.Value) != 43 {
		return ""
	}
	return sessionID(c.Value)
}

// Session returns the valid login session of r's browser; ok is false
// when there is none: no cookie, unknown, revoked, idle or past its
// lifetime, its user gone or disabled, or their password changed after it
// began. A session in use has its idle expiry moved on.
func (h *Handler) Session(r *http.Request) (storage.LoginSession, bool, error) {
	ctx := r.Context()
	id := h.cookieSessionID(r)
	if id == "" {
		return storage.LoginSession{}, false, nil
	}
	s, err := h.cfg.Store.LoginSession(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.LoginSession{}, false, nil
	}
	if err != nil {
		return storage.LoginSession{}, false, err
	}
	now := h.now()
	if !s.Live(now) {
		return storage.LoginSession{}, false, nil
	}
	u, err := h.cfg.Store.User(ctx, s.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.LoginSession{}, false, nil
	}
	if err != nil {
		return storage.LoginSession{}, false, err
	}
	if u.Disabled || u.PasswordChangedAt.After(s.CreatedAt.Time) {
		return storage.LoginSession{}, false, nil
	}
	// Move the idle expiry on at most once a minute: one write per minute
	// of use, not per request.
	if now.Sub(s.LastSeenAt.Time) >= time.Minute {
		idle := now.Add(h.cfg.Idle)
		if err := h.cfg.Store.TouchLoginSession(ctx, id, now, idle); err != nil {
			return storage.LoginSession{}, false, err
		}
		s.LastSeenAt = storage.At(now)
		s.IdleExpiresAt = storage.At(idle)
		if s.IdleExpiresAt.After(s.ExpiresAt.Time) {
			s.IdleExpiresAt = s.ExpiresAt
		}
	}
	return s, true, nil
}

// startSession begins a login session for u with amr, replacing (and
// revoking) the browser's current one, so a session id fixed before the
// login is never the one after it. It returns the new session.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, u storage.User, amr []string) (storage.LoginSession, error) {
	ctx := r.Context()
	now := h.now()
	if old := h.cookieSessionID(r); old != "" {
		if _, err := h.cfg.Store.RevokeLoginSession(ctx, old, now); err != nil {
			return storage.LoginSession{}, err
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	value := base64.RawURLEncoding.EncodeToString(b)
	at := storage.At(now)
	s := storage.LoginSession{ID: sessionID(value), UserID: u.ID, AuthTime: at, AMR: amr, CreatedAt: at,
		LastSeenAt: at, IdleExpiresAt: storage.At(now.Add(min(h.cfg.Idle, h.cfg.Lifetime))),
		ExpiresAt: storage.At(now.Add(h.cfg.Lifetime))}
	if err := h.cfg.Store.CreateLoginSession(ctx, s); err != nil {
		return storage.LoginSession{}, err
	}
	// The cookie is a session cookie (no Max-Age): the row's expiries
	// decide, and closing the browser forgets it.
	h.setCookie(w, r, h.sessionCookieName(r), value, 0)
	h.setCookie(w, r, h.pendingCookieName(r), "", -1)
	h.cfg.Audit.Record(ctx, audit.Event{Type: audit.SessionStarted, Actor: u.ID, Subject: u.ID,
		Reason: strings.Join(amr, "_"), UserAgent: r.UserAgent()})
	return s, nil
}

// EndSession ends r's browser's login session, if any, clears its cookie
// and returns the session's user id ("" when there was none).
func (h *Handler) EndSession(w http.ResponseWriter, r *http.Request) (string, error) {
	h.setCookie(w, r, h.sessionCookieName(r), "", -1)
	id := h.cookieSessionID(r)
	if id == "" {
		return "", nil
	}
	ctx := r.Context()
	s, err := h.cfg.Store.LoginSession(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	revoked, err := h.cfg.Store.RevokeLoginSession(ctx, id, h.now())
	if err != nil {
		return "", err
	}
	if revoked {
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.SessionEnded, Actor: s.UserID, Subject: s.UserID,
			Reason: "logout", UserAgent: r.UserAgent()})
	}
	return s.UserID, nil
}

// ConsentGiven reports whether userID has a remembered consent to every
// scope for clientID.
func (h *Handler) ConsentGiven(ctx context.Context, userID, clientID string, scope []string) (bool, error) {
	c, err := h.cfg.Store.Consent(ctx, userID, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, s := range scope {
		if !c.Scope.Has(s) {
			return false, nil
		}
	}
	return true, nil
}

// ErrorPage renders the authorization error page with status; description
// is generic and safe to show.
func (h *Handler) ErrorPage(w http.ResponseWriter, r *http.Request, status int, description string) {
	v := &ui.View{Lang: ui.Lang(r), Root: rootOf(r.URL.Path), Title: "authorize.error.title",
		Data: errorData{Description: description}}
	h.pages.Render(w, r, status, "authorize_error", v)
}

type errorData struct{ Description string }

// rootOf is ui's View.Root of the page at path.
func rootOf(path string) string {
	return strings.Repeat("../", max(strings.Count(path, "/")-1, 0))
}

// pending is what the browser carries, signed, between a correct password
// and the TOTP step.
type pending struct {
	UserID  string `json:"u"`
	Req     string `json:"r,omitempty"`
	Expires int64  `json:"e"` // Unix milliseconds
}

func (h *Handler) sign(b []byte) string {
	m := hmac.New(sha256.New, h.signKey)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) setPending(w http.ResponseWriter, r *http.Request, p pending) {
	b, _ := json.Marshal(p)
	h.setCookie(w, r, h.pendingCookieName(r), base64.RawURLEncoding.EncodeToString(b)+"."+h.sign(b), int(pendingTTL/time.Second))
}

// pendingOf returns r's valid pending login for req.
func (h *Handler) pendingOf(r *http.Request, req string) (pending, bool) {
	c, err := r.Cookie(h.pendingCookieName(r))
	if err != nil {
		return pending{}, false
	}
	body, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return pending{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || !hmac.Equal([]byte(sig), []byte(h.sign(b))) {
		return pending{}, false
	}
	var p pending
	if json.Unmarshal(b, &p) != nil || p.UserID == "" || p.Req != req || h.now().UnixMilli() >= p.Expires {
		return pending{}, false
	}
	return p, true
}
