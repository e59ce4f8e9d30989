package login

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// clock is the tests' time, moved by hand (testsupport.Clock).
type clock = testsupport.Clock

// passwords is the in-test Passwords: plain passwords by username, the
// one invalid_grant for a wrong one, an unknown or a disabled user, and
// the 429 of a throttled caller when throttled is set.
type passwords struct {
	db        *storage.DB
	mu        sync.Mutex
	pw        map[string]string
	throttled bool
	clients   []string // the client ids it was called with
}

func (p *passwords) AuthenticatePassword(ctx context.Context, clientID, username, password string) (storage.User, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients = append(p.clients, clientID)
	if p.throttled {
		return storage.User{}, &web.Error{Code: web.ErrTemporarilyUnavail, Description: "too many failed attempts; retry later",
			Status: http.StatusTooManyRequests, RetryAfter: 42 * time.Second}
	}
	bad := &web.Error{Code: web.ErrInvalidGrant, Description: "wrong username or password", Status: http.StatusBadRequest}
	u, err := p.db.UserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, bad
	}
	if err != nil {
		return storage.User{}, err
	}
	if u.Disabled || p.pw[username] != password {
		return storage.User{}, bad
	}
	return u, nil
}

// authRequests is the in-test AuthRequests over a map.
type authRequests struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]storage.AuthRequest
}

func (a *authRequests) AuthRequest(_ context.Context, id string) (storage.AuthRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.m[id]
	if !ok || !a.now().Before(r.ExpiresAt.Time) {
		return storage.AuthRequest{}, storage.ErrNotFound
	}
	return r, nil
}

func (a *authRequests) MarkAuthRequestLogin(_ context.Context, id, sessionID string, at time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.m[id]
	if !ok {
		return storage.ErrNotFound
	}
	r.SessionID, r.LoginAt = sessionID, storage.At(at)
	a.m[id] = r
	return nil
}

func (a *authRequests) MarkAuthRequestConsent(_ context.Context, id string, at time.Time, denied bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.m[id]
	if !ok {
		return storage.ErrNotFound
	}
	r.ConsentAt, r.Denied = storage.At(at), denied
	a.m[id] = r
	return nil
}

func (a *authRequests) get(id string) storage.AuthRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[id]
}

// recorder keeps the audit events.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) has(typ audit.Type, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == typ && (reason == "" || e.Reason == reason) {
			return true
		}
	}
	return false
}

type noFlows struct{}

func (noFlows) CheckResetToken(context.Context, string) error       { return nil }
func (noFlows) ResetPassword(context.Context, string, string) error { return nil }
func (noFlows) VerifyEmail(context.Context, string) error           { return nil }
func (noFlows) RequestPasswordReset(context.Context, string, string, string) error {
	return nil
}

// env is a Handler on a real database behind a loopback server.
type env struct {
	t     *testing.T
	db    *storage.DB
	clock *clock
	pw    *passwords
	reqs  *authRequests
	audit *recorder
	h     *Handler
	srv   *httptest.Server
	alice storage.User
}

const alicePassword = "correct horse battery staple"

func newEnv(t *testing.T, b storagetest.Backend) *env {
	t.Helper()
	db := storagetest.Open(t, b.DSN(t))
	ctx := context.Background()
	c := testsupport.NewClock(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
	alice := &storage.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x",
		PasswordChangedAt: storage.At(c.Now().Add(-time.Hour))}
	if err := db.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateClient(ctx, &storage.Client{ID: "photos", Name: "Photo Album", Public: true,
		AuthMethod: storage.AuthNone, GrantTypes: storage.List{"authorization_code"}, Scopes: storage.List{"openid", "profile", "email"}}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, clock: c, audit: &recorder{},
		pw:   &passwords{db: db, pw: map[string]string{"alice": alicePassword}},
		reqs: &authRequests{now: c.Now, m: map[string]storage.AuthRequest{}}}
	e.alice, _ = db.User(ctx, alice.ID)
	pages, err := ui.New(ui.Config{Flows: noFlows{}, Requests: noFlows{}})
	if err != nil {
		t.Fatal(err)
	}
	th := guard.NewThrottler(db, guard.Policy{FreeFailures: 3}, c.Now, nil, nil)
	e.h, err = New(Config{Pages: pages, Passwords: e.pw, AuthRequests: e.reqs, Store: db, Throttle: th,
		Audit: e.audit, Now: c.Now, Key: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.routes())
	t.Cleanup(e.srv.Close)
	return e
}

// routes binds the pages as the assembly does, the admin handlers through
// web.Handle (the assembly wraps them in admin.API.Authorize), and a stub
// of PROTOCOL's resume endpoint that reports the session it sees.
func (e *env) routes() http.Handler {
	h := e.h
	r := mux.NewRouter()
	get := []string{http.MethodGet, http.MethodHead}
	r.Handle(LoginPath, h.ShowLogin()).Methods(get...)
	r.Handle(LoginPath, h.SubmitLogin()).Methods(http.MethodPost)
	r.Handle(TOTPPath, h.ShowTOTP()).Methods(get...)
	r.Handle(TOTPPath, h.SubmitTOTP()).Methods(http.MethodPost)
	r.Handle(ConsentPath, h.ShowConsent()).Methods(get...)
	r.Handle(ConsentPath, h.SubmitConsent()).Methods(http.MethodPost)
	r.Handle(LogoutPath, h.ShowLogout()).Methods(get...)
	r.Handle(LogoutPath, h.SubmitLogout()).Methods(http.MethodPost)
	r.Handle(LogoutDonePath, h.LogoutDone()).Methods(get...)
	r.Handle(TOTPEnrolPath, h.ShowTOTPEnrol()).Methods(get...)
	r.Handle(TOTPEnrolPath, h.SubmitTOTPEnrol()).Methods(http.MethodPost)
	r.Handle(TOTPQRPath, h.TOTPQR()).Methods(get...)
	r.Handle(ResumePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := h.Session(r)
		if err != nil || !ok {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "resume "+s.UserID+" "+strings.Join(s.AMR, ","))
	}))
	r.Handle("/oauth2/error", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ErrorPage(w, r, http.StatusBadRequest, "unknown client")
	}))
	adm := func(f func(http.ResponseWriter, *http.Request, string) error) http.Handler {
		return web.Handle(nil, func(w http.ResponseWriter, r *http.Request) error { return f(w, r, "client:ops") })
	}
	r.Handle("/admin/v1/users/{id}/login-sessions", adm(h.ListLoginSessions)).Methods(http.MethodGet)
	r.Handle("/admin/v1/users/{id}/login-sessions", adm(h.RevokeLoginSessions)).Methods(http.MethodDelete)
	r.Handle("/admin/v1/users/{id}/consents", adm(h.ListConsents)).Methods(http.MethodGet)
	r.Handle("/admin/v1/users/{id}/consents/{client_id}", adm(h.RevokeConsent)).Methods(http.MethodDelete)
	r.Handle("/admin/v1/users/{id}/totp", adm(h.ResetTOTP)).Methods(http.MethodDelete)
	r.Handle(ui.AssetPrefix+"{asset}", h.pages.Asset()).Methods(get...)
	return r
}

// newRequest stores an authorization request for client photos.
func (e *env) newRequest(id string, scope ...string) string {
	e.reqs.mu.Lock()
	defer e.reqs.mu.Unlock()
	now := e.clock.Now()
	e.reqs.m[id] = storage.AuthRequest{ID: id, ClientID: "photos", RedirectURI: "https://photos.example/cb",
		Scope: scope, LoginHint: "alice", MaxAge: -1, CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(10 * time.Minute))}
	return id
}

// browser is one cookie jar; it follows no redirect.
type browser struct {
	e    *env
	c    *http.Client
	csrf string // the last page's form token
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if m := csrfRe.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page { b.e.t.Helper(); return b.do(http.MethodGet, path, nil) }

// post sends form with the last page's CSRF token.
func (b *browser) post(path string, form url.Values) page {
	b.e.t.Helper()
	form.Set(ui.CSRFField, b.csrf)
	return b.do(http.MethodPost, path, form)
}

// cookie returns the browser's cookie name for the server, "" for none.
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// session asks the Handler for the session of the browser's cookies.
func (b *browser) session() (storage.LoginSession, bool) {
	b.e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, b.e.srv.URL+"/", nil)
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	s, ok, err := b.e.h.Session(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return s, ok
}

// login signs the browser in with alice's password for request req ("":
// none) and returns the answer to the form POST.
func (b *browser) login(req, password string) page {
	b.e.t.Helper()
	path := LoginPath
	if req != "" {
		path += "?req=" + req
	}
	if p := b.get(path); p.status != http.StatusOK {
		b.e.t.Fatalf("GET %s: %d", path, p.status)
	}
	form := url.Values{"username": {"alice"}, "password": {password}}
	if req != "" {
		form.Set("req", req)
	}
	return b.post(LoginPath, form)
}

func wantStatus(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, status, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Errorf("body lacks %q:\n%s", c, p.body)
		}
	}
}

func wantRedirect(t *testing.T, p page, to string) {
	t.Helper()
	if p.status != http.StatusFound {
		t.Fatalf("status %d, want 302 to %s; body:\n%s", p.status, to, p.body)
	}
	if got := p.header.Get("Location"); got != to {
		t.Fatalf("Location %q, want %q", got, to)
	}
}

func backends(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) { f(t, newEnv(t, b)) })
	}
}
