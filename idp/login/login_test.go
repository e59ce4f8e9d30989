package login

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/internal/browsertest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestLogin: the form prefills login_hint and links to forgot-password
// when that page is served; a wrong password, an unknown user and a
// disabled user get one generic message and no session; the right
// password starts a session (cookie attributes), marks the request and
// goes back to the authorization endpoint.
func TestLogin(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		req := e.newRequest("req-1", "openid")
		b := e.browser()
		p := b.get(LoginPath + "?req=" + req)
		wantStatus(t, p, http.StatusOK, `value="alice"`, `name="req" value="req-1"`, `autocomplete="current-password"`,
			`href="account/forgot-password"`)
		if got := p.header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("CSP %q", got)
		}
		generic := ui.T("en", "login.error.failed")
		for _, bad := range []url.Values{
			{"username": {"alice"}, "password": {"wrong password"}},
			{"username": {"nobody"}, "password": {alicePassword}},
		} {
			bad.Set("req", req)
			p := b.post(LoginPath, bad)
			wantStatus(t, p, http.StatusBadRequest, generic)
			if strings.Contains(p.body, "wrong password") || strings.Contains(p.body, alicePassword) {
				t.Error("the page echoes the password")
			}
		}
		if b.cookie(sessionCookiePlain) != "" {
			t.Fatal("a failed login set a session cookie")
		}

		p = b.login(req, alicePassword)
		wantRedirect(t, p, "oauth2/authorize/resume?req=req-1")
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == sessionCookiePlain {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure || ck.MaxAge != 0 {
			t.Fatalf("session cookie %+v", ck)
		}
		s, ok := b.session()
		if !ok || s.UserID != e.alice.ID || strings.Join(s.AMR, ",") != "pwd" || s.ID == ck.Value {
			t.Fatalf("session %+v ok=%v", s, ok)
		}
		if ar := e.reqs.get(req); ar.SessionID != s.ID || ar.LoginAt.IsZero() {
			t.Fatalf("request not marked: %+v", ar)
		}
		if got := e.pw.clients[len(e.pw.clients)-1]; got != "photos" {
			t.Errorf("Passwords saw client %q", got)
		}
		if r := b.get("/oauth2/authorize/resume?req=req-1"); !strings.Contains(r.body, "resume "+e.alice.ID+" pwd") {
			t.Errorf("resume: %d %s", r.status, r.body)
		}
		if !e.audit.has(audit.SessionStarted, "pwd") {
			t.Error("no session_started event")
		}

		// Disabled: the same message.
		if _, err := e.db.UpdateUser(context.Background(), e.alice.ID, func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, e.browser().login("", alicePassword), http.StatusBadRequest, generic)
	})
}

// TestLoginDirect: /login without a request ends on the "signed in" page;
// an expired request gets the expired page.
func TestLoginDirect(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		wantStatus(t, b.login("", alicePassword), http.StatusOK, ui.T("en", "login.done.title"))
		if _, ok := b.session(); !ok {
			t.Fatal("no session")
		}
		e.newRequest("old")
		e.clock.Advance(11 * time.Minute)
		wantStatus(t, b.get(LoginPath+"?req=old"), http.StatusBadRequest, ui.T("en", "login.expired.title"))
	})
}

// TestLoginThrottled: a throttled password check is the 429 page with
// Retry-After, and no session.
func TestLoginThrottled(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.pw.throttled = true
		b := e.browser()
		p := b.login("", alicePassword)
		wantStatus(t, p, http.StatusTooManyRequests, ui.T("en", "error.too_many.title"))
		if got := p.header.Get("Retry-After"); got != "42" {
			t.Errorf("Retry-After %q", got)
		}
		if _, ok := b.session(); ok {
			t.Fatal("throttled login has a session")
		}
	})
}

// TestCSRF: each form POST without the token is 403 and changes nothing.
func TestCSRF(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		b.get(LoginPath)
		for _, path := range []string{LoginPath, TOTPPath, ConsentPath, LogoutPath, TOTPEnrolPath} {
			p := b.do(http.MethodPost, path, url.Values{"username": {"alice"}, "password": {alicePassword}})
			wantStatus(t, p, http.StatusForbidden, ui.T("en", "error.csrf.title"))
		}
		if _, ok := b.session(); ok {
			t.Fatal("a POST without a CSRF token signed in")
		}
	})
}

// TestSessionRotated: signing in again replaces the session: a new cookie
// value, and the old session no longer counts (session fixation).
func TestSessionRotated(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		b.login("", alicePassword)
		first := b.cookie(sessionCookiePlain)
		old, _ := b.session()
		b.login("", alicePassword)
		if second := b.cookie(sessionCookiePlain); second == "" || second == first {
			t.Fatal("the session cookie was not rotated")
		}
		s, err := e.db.LoginSession(context.Background(), old.ID)
		if err != nil || s.RevokedAt.IsZero() {
			t.Fatalf("old session not revoked: %+v %v", s, err)
		}
		// A planted cookie with the old value does not sign anyone in.
		planted := e.browser()
		u, _ := url.Parse(e.srv.URL)
		planted.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookiePlain, Value: first, Path: "/"}})
		if _, ok := planted.session(); ok {
			t.Fatal("the old cookie still opens a session")
		}
	})
}

// TestSessionExpiry: a session ends after Idle without use, and after
// Lifetime however much it is used.
func TestSessionExpiry(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		b.login("", alicePassword)
		e.clock.Advance(20 * time.Minute)
		if _, ok := b.session(); !ok {
			t.Fatal("ended before the idle timeout")
		}
		e.clock.Advance(20 * time.Minute) // 40 min after login, 20 after use
		if _, ok := b.session(); !ok {
			t.Fatal("use did not move the idle timeout on")
		}
		e.clock.Advance(DefaultIdle + time.Second)
		if _, ok := b.session(); ok {
			t.Fatal("alive after the idle timeout")
		}

		b2 := e.browser()
		b2.login("", alicePassword)
		for range int(DefaultLifetime/(20*time.Minute)) - 1 {
			e.clock.Advance(20 * time.Minute)
			if _, ok := b2.session(); !ok {
				t.Fatalf("ended early, at %v", e.clock.Now())
			}
		}
		e.clock.Advance(21 * time.Minute)
		if _, ok := b2.session(); ok {
			t.Fatal("alive after the lifetime")
		}
	})
}

// TestSessionEndedBy: a password change, disabling and deleting the user
// (manage.Ops, as the admin API and the CLI do) end the session.
func TestSessionEndedBy(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ops := manage.New(e.db, e.audit, nil, e.clock.Now)
		ctx := context.Background()
		by := audit.Event{Actor: "client:ops"}
		for _, c := range []struct {
			name string
			end  func() error
		}{
			{"password", func() error {
				_, _, err := ops.SetPassword(ctx, by, e.alice.ID, "new-hash", nil)
				return err
			}},
			{"disable", func() error {
				_, _, err := ops.SetUserDisabled(ctx, by, e.alice.ID, true)
				return err
			}},
			// Written to the store directly, not through manage.Ops: the
			// session check alone refuses the session.
			{"password-store-only", func() error {
				_, err := e.db.UpdateUser(ctx, e.alice.ID, func(u *storage.User) error {
					u.PasswordChangedAt = storage.At(e.clock.Now())
					return nil
				})
				return err
			}},
			{"disable-store-only", func() error {
				_, err := e.db.UpdateUser(ctx, e.alice.ID, func(u *storage.User) error { u.Disabled = true; return nil })
				return err
			}},
			{"delete", func() error { return ops.DeleteUser(ctx, by, e.alice.ID) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := e.db.UpdateUser(ctx, e.alice.ID, func(u *storage.User) error { u.Disabled = false; return nil }); err != nil {
					t.Fatal(err)
				}
				e.clock.Advance(time.Second)
				b := e.browser()
				b.login("", alicePassword)
				if _, ok := b.session(); !ok {
					t.Fatal("no session")
				}
				e.clock.Advance(time.Second)
				if err := c.end(); err != nil {
					t.Fatal(err)
				}
				if _, ok := b.session(); ok {
					t.Fatalf("session survives %s", c.name)
				}
				if strings.HasSuffix(c.name, "store-only") {
					return
				}
				// manage.Ops revokes the rows too (the session check
				// alone would already refuse them).
				if ss, err := e.db.LoginSessions(ctx, e.alice.ID, e.clock.Now()); err != nil || len(ss) != 0 {
					t.Fatalf("live login sessions after %s: %v %v", c.name, ss, err)
				}
			})
		}
	})
}

// TestLogout: GET /logout only asks; the POST (with its token) ends the
// session, clears the cookie and shows the signed-out page.
func TestLogout(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		b.login("", alicePassword)
		wantStatus(t, b.get(LogoutPath), http.StatusOK, ui.T("en", "logout.submit"))
		if _, ok := b.session(); !ok {
			t.Fatal("GET /logout ended the session")
		}
		wantRedirect(t, b.post(LogoutPath, url.Values{}), "logout/done")
		if _, ok := b.session(); ok {
			t.Fatal("session survives logout")
		}
		if b.cookie(sessionCookiePlain) != "" {
			t.Error("cookie not cleared")
		}
		wantStatus(t, b.get(LogoutDonePath), http.StatusOK, ui.T("en", "logout.done.title"))
		if !e.audit.has(audit.SessionEnded, "logout") {
			t.Error("no session_ended event")
		}
	})
}

// TestErrorPage: the authorization error page shows the generic
// description, in the page's language, with the page headers.
func TestErrorPage(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		p := e.browser().get("/oauth2/error")
		wantStatus(t, p, http.StatusBadRequest, ui.T("en", "authorize.error.title"), "unknown client")
		if p.header.Get("X-Frame-Options") != "DENY" {
			t.Error("no X-Frame-Options")
		}
	})
}

// TestCleanup: expired and revoked sessions are deleted a day after they
// end; live ones stay.
func TestCleanup(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		live, ended := e.browser(), e.browser()
		ended.login("", alicePassword)
		ended.post(LogoutPath, url.Values{})
		e.clock.Advance(25 * time.Hour)
		live.login("", alicePassword)
		old := e.browser()
		old.login("", alicePassword) // expires idle in 30 min
		e.clock.Advance(DefaultIdle + 25*time.Hour)
		live.login("", alicePassword)
		n, err := e.h.Cleanup(ctx)
		if err != nil || n != 3 {
			t.Fatalf("deleted %d, %v; want 3 (the logged-out one and two idle ones)", n, err)
		}
		if _, ok := live.session(); !ok {
			t.Fatal("cleanup ended a live session")
		}
	})
}

// TestSecureCookie: over https the session cookie is __Host-, Secure,
// HttpOnly, SameSite=Lax, Path=/, and only that name opens the session.
func TestSecureCookie(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		h := *e.h
		h.cfg.SecureCookies = true
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "https://id.example/login", nil)
		s, err := h.startSession(rec, r, e.alice, []string{"pwd"})
		if err != nil {
			t.Fatal(err)
		}
		var ck *http.Cookie
		for _, c := range rec.Result().Cookies() {
			if c.Name == sessionCookieSecure {
				ck = c
			}
		}
		if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
			t.Fatalf("cookie %+v", ck)
		}
		r2 := httptest.NewRequest(http.MethodGet, "https://id.example/", nil)
		r2.AddCookie(ck)
		if got, ok, err := h.Session(r2); !ok || err != nil || got.ID != s.ID {
			t.Fatalf("Session: %+v %v %v", got, ok, err)
		}
		r3 := httptest.NewRequest(http.MethodGet, "https://id.example/", nil)
		r3.AddCookie(&http.Cookie{Name: sessionCookiePlain, Value: ck.Value})
		if _, ok, _ := h.Session(r3); ok {
			t.Fatal("the plain cookie name opens an https session")
		}
	})
}

// TestAccessibility: every visible input of the new forms has a <label
// for>, the password field says current-password, code fields say
// one-time-code, and each page has one h1.
func TestAccessibility(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	b := e.browser()
	req := e.newRequest("req-a", "openid")
	pages := []string{LoginPath + "?req=" + req}
	b.login("", alicePassword)
	pages = append(pages, TOTPEnrolPath, ConsentPath+"?req="+req, LogoutPath)
	for _, path := range pages {
		p := b.get(path)
		wantStatus(t, p, http.StatusOK)
		for _, in := range browsertest.LabelledInputs(t, path, p.body) {
			if strings.Contains(in, `type="password"`) && !strings.Contains(in, `autocomplete="current-password"`) {
				t.Errorf("%s: password without current-password: %s", path, in)
			}
			if strings.Contains(in, `name="code"`) && !strings.Contains(in, `autocomplete="one-time-code"`) {
				t.Errorf("%s: code without one-time-code: %s", path, in)
			}
		}
		if strings.Count(p.body, "<h1") != 1 {
			t.Errorf("%s: want one h1", path)
		}
	}
}
