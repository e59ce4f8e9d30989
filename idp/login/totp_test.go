package login

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/ui"
)

var (
	secretRe = regexp.MustCompile(`<p class="secret"><code>([A-Z2-7 ]+)</code></p>`)
	codesRe  = regexp.MustCompile(`<li><code>([a-z2-7-]+)</code></li>`)
)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol signs b in and enrols alice in TOTP through the pages; it returns
// the secret and the recovery codes.
func (e *env) enrol(t *testing.T, b *browser) (string, []string) {
	t.Helper()
	b.login("", alicePassword)
	p := b.get(TOTPEnrolPath)
	wantStatus(t, p, http.StatusOK, `src="../account/totp/qr.png"`, `autocomplete="one-time-code"`)
	m := secretRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no secret on the page:\n%s", p.body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	if again := secretRe.FindStringSubmatch(b.get(TOTPEnrolPath).body); again == nil || again[1] != m[1] {
		t.Fatal("a reload shows another secret")
	}
	qr := b.get(TOTPQRPath)
	if qr.status != http.StatusOK || qr.header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr: %d %s", qr.status, qr.header.Get("Content-Type"))
	}
	if _, err := png.Decode(bytes.NewReader([]byte(qr.body))); err != nil {
		t.Fatalf("qr is no PNG: %v", err)
	}
	wrong := "000000"
	if code(t, secret, e.clock.Now()) == wrong {
		wrong = "111111"
	}
	wantStatus(t, b.post(TOTPEnrolPath, url.Values{"code": {wrong}}), http.StatusBadRequest, ui.T("en", "totp.error.failed"))
	p = b.post(TOTPEnrolPath, url.Values{"code": {code(t, secret, e.clock.Now())}})
	wantStatus(t, p, http.StatusOK, ui.T("en", "totp.codes.title"))
	var codes []string
	for _, m := range codesRe.FindAllStringSubmatch(p.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes", len(codes))
	}
	wantStatus(t, b.get(TOTPEnrolPath), http.StatusOK, ui.T("en", "totp.enrolled.title"))
	if !e.audit.has(audit.MFAEnrolled, "") {
		t.Error("no mfa_enrolled event")
	}
	return secret, codes
}

// TestTOTP: enrolment needs a session and a correct code and shows ten
// recovery codes; the secret is sealed at rest; a login then needs a
// code; the code of a time step already used is refused (replay), the
// next step's is accepted, and the session says mfa.
func TestTOTP(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		if p := e.browser().get(TOTPEnrolPath); p.status != http.StatusFound {
			t.Fatalf("enrolment without a session: %d", p.status)
		}
		secret, _ := e.enrol(t, e.browser())
		cred, err := e.db.TOTPCredential(context.Background(), e.alice.ID)
		if err != nil || !strings.HasPrefix(cred.Secret, "v1:") || strings.Contains(cred.Secret, secret) {
			t.Fatalf("secret not sealed: %q %v", cred.Secret, err)
		}

		b := e.browser()
		req := e.newRequest("req-t", "openid")
		wantRedirect(t, b.login(req, alicePassword), "login/totp?req=req-t")
		if _, ok := b.session(); ok {
			t.Fatal("a session before the second factor")
		}
		p := b.get(TOTPPath + "?req=" + req)
		wantStatus(t, p, http.StatusOK, ui.T("en", "totp.intro"))
		// The enrolment used this step's code: the same code again is a replay.
		wantStatus(t, b.post(TOTPPath, url.Values{"req": {req}, "code": {code(t, secret, e.clock.Now())}}),
			http.StatusBadRequest, ui.T("en", "totp.error.failed"))
		if !e.audit.has(audit.MFAFailed, "replay") {
			t.Error("no mfa_failed replay event")
		}
		e.clock.Advance(30 * time.Second)
		c := code(t, secret, e.clock.Now())
		wantRedirect(t, b.post(TOTPPath, url.Values{"req": {req}, "code": {c}}), "../oauth2/authorize/resume?req=req-t")
		s, ok := b.session()
		if !ok || strings.Join(s.AMR, ",") != "pwd,otp,mfa" {
			t.Fatalf("session %+v %v", s, ok)
		}
		if ar := e.reqs.get(req); ar.SessionID != s.ID {
			t.Fatal("request not marked")
		}
		// Within the window, another browser cannot reuse the code.
		b2 := e.browser()
		b2.login("", alicePassword)
		b2.get(TOTPPath)
		wantStatus(t, b2.post(TOTPPath, url.Values{"code": {c}}), http.StatusBadRequest)
		// Without the password step there is no TOTP page.
		wantRedirect(t, e.browser().get(TOTPPath+"?req="+req), "../login?req=req-t")
	})
}

// TestRecoveryCode: a recovery code completes a login once.
func TestRecoveryCode(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		_, codes := e.enrol(t, e.browser())
		b := e.browser()
		b.login("", alicePassword)
		b.get(TOTPPath)
		wantStatus(t, b.post(TOTPPath, url.Values{"code": {strings.ToUpper(codes[3])}}), http.StatusOK, ui.T("en", "login.done.title"))
		if s, ok := b.session(); !ok || strings.Join(s.AMR, ",") != "pwd,mfa" {
			t.Fatalf("session %+v %v", s, ok)
		}
		b2 := e.browser()
		b2.login("", alicePassword)
		b2.get(TOTPPath)
		wantStatus(t, b2.post(TOTPPath, url.Values{"code": {codes[3]}}), http.StatusBadRequest, ui.T("en", "totp.error.failed"))
		if !e.audit.has(audit.RecoveryCodeUsed, "") || !e.audit.has(audit.MFAFailed, "bad_recovery_code") {
			t.Error("missing audit events")
		}
	})
}

// TestTOTPThrottled: wrong codes are throttled like passwords: after the
// free failures the page is 429 with Retry-After, even for a right code.
func TestTOTPThrottled(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		secret, _ := e.enrol(t, e.browser())
		e.clock.Advance(30 * time.Second)
		b := e.browser()
		b.login("", alicePassword)
		b.get(TOTPPath)
		var last page
		for range 6 {
			last = b.post(TOTPPath, url.Values{"code": {"12345x"}})
			if last.status == http.StatusTooManyRequests {
				break
			}
		}
		wantStatus(t, last, http.StatusTooManyRequests, ui.T("en", "error.too_many.title"))
		if last.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		p := b.post(TOTPPath, url.Values{"code": {code(t, secret, e.clock.Now())}})
		if p.status != http.StatusTooManyRequests {
			t.Fatalf("a right code while throttled: %d", p.status)
		}
		if _, ok := b.session(); ok {
			t.Fatal("signed in while throttled")
		}
	})
}

// TestAdmin: the admin handlers list and end login sessions, list and
// revoke consents, and reset TOTP (which ends the sessions).
func TestAdmin(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		b := e.browser()
		e.enrol(t, b)
		ctx := context.Background()
		if _, err := e.db.GrantConsent(ctx, e.alice.ID, "photos", []string{"openid"}, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		call := func(method, path string) (int, map[string]any) {
			req, _ := http.NewRequest(method, e.srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var v map[string]any
			json.NewDecoder(resp.Body).Decode(&v)
			return resp.StatusCode, v
		}
		base := "/admin/v1/users/" + e.alice.ID
		st, v := call(http.MethodGet, base+"/login-sessions")
		if ls, _ := v["login_sessions"].([]any); st != 200 || len(ls) != 1 {
			t.Fatalf("login-sessions: %d %v", st, v)
		}
		if strings.Contains(func() string { b, _ := json.Marshal(v); return string(b) }(), b.cookie(sessionCookiePlain)) {
			t.Fatal("the admin API shows the cookie")
		}
		st, v = call(http.MethodGet, base+"/consents")
		if cs, _ := v["consents"].([]any); st != 200 || len(cs) != 1 {
			t.Fatalf("consents: %d %v", st, v)
		}
		if st, _ := call(http.MethodDelete, base+"/consents/photos"); st != http.StatusNoContent {
			t.Fatalf("revoke consent: %d", st)
		}
		if ok, _ := e.h.ConsentGiven(ctx, e.alice.ID, "photos", []string{"openid"}); ok {
			t.Fatal("consent survives revocation")
		}
		if st, v := call(http.MethodDelete, base+"/consents/photos"); st != http.StatusNotFound || v["error"] != "not_found" {
			t.Fatalf("revoke again: %d %v", st, v)
		}
		if st, _ := call(http.MethodDelete, base+"/totp"); st != http.StatusNoContent {
			t.Fatalf("reset totp: %d", st)
		}
		if _, ok := b.session(); ok {
			t.Fatal("sessions survive a TOTP reset")
		}
		if st, _ := call(http.MethodDelete, base+"/totp"); st != http.StatusNotFound {
			t.Fatalf("reset again: %d", st)
		}
		// Without TOTP a password is enough again.
		b2 := e.browser()
		wantStatus(t, b2.login("", alicePassword), http.StatusOK, ui.T("en", "login.done.title"))
		st, v = call(http.MethodDelete, base+"/login-sessions")
		if st != 200 || v["revoked"] != float64(1) {
			t.Fatalf("revoke sessions: %d %v", st, v)
		}
		if _, ok := b2.session(); ok {
			t.Fatal("session survives the admin")
		}
		if st, _ := call(http.MethodGet, "/admin/v1/users/nobody/consents"); st != http.StatusNotFound {
			t.Fatalf("unknown user: %d", st)
		}
		if !e.audit.has(audit.MFAReset, "") || !e.audit.has(audit.ConsentRevoked, "") || !e.audit.has(audit.SessionEnded, "admin") {
			t.Error("missing audit events")
		}
	})
}
