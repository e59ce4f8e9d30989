package account_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// publicURL is the --public-url of the mail tests: links must start with it
// whatever Host a request names (RR-04).
const publicURL = "https://as.test"

// mailEnv is a server whose mail goes over SMTP to a real server on
// loopback (mailtest).
type mailEnv struct {
	*idptest.Env
	SMTP *mailtest.Server
}

func newMailEnv(t *testing.T, b storagetest.Backend, change ...func(*idp.Config)) mailEnv {
	t.Helper()
	smtp := mailtest.NewServer(t)
	change = append([]func(*idp.Config){func(c *idp.Config) {
		c.Mail = mailtest.NewSender(t, smtp.Addr)
		c.PublicURL = publicURL
		c.Registration = true
	}}, change...)
	return mailEnv{Env: idptest.New(t, b, change...), SMTP: smtp}
}

func (e mailEnv) forgot(kv ...string) idptest.Response {
	e.T.Helper()
	return e.Account("/account/password/forgot", "", idptest.JSONObject(kv...))
}

func (e mailEnv) reset(token, pw string) idptest.Response {
	e.T.Helper()
	return e.Account("/account/password/reset", "", idptest.JSONObject("token", token, "new_password", pw))
}

func (e mailEnv) verify(token string) idptest.Response {
	e.T.Helper()
	return e.Account("/account/verify-email", "", idptest.JSONObject("token", token))
}

// auditRows returns the audit rows of typ, newest first.
func (e mailEnv) auditRows(typ audit.Type) []storage.AuditEvent {
	e.T.Helper()
	e.Srv.Auditor().Flush()
	evs, err := e.DB.AuditEvents(context.Background(), storage.AuditFilter{Type: string(typ)})
	if err != nil {
		e.T.Fatal(err)
	}
	return evs
}

// wantReason checks that the newest row of typ has reason.
func (e mailEnv) wantReason(t *testing.T, typ audit.Type, reason string) {
	t.Helper()
	rows := e.auditRows(typ)
	if len(rows) == 0 || rows[0].Reason != reason {
		t.Errorf("newest %s row %+v, want reason %q", typ, rows, reason)
	}
}

// link checks that m carries a link under the public URL to page and
// returns its token.
func link(t *testing.T, m mailtest.Received, page string) string {
	t.Helper()
	if l := m.Link(); !strings.HasPrefix(l, publicURL+page+"?token=") {
		t.Fatalf("link %q is not under %s%s", l, publicURL, page)
	}
	return m.Token()
}

// TestRegisterVerifySignIn: register → the verification mail arrives over
// SMTP → the password grant is refused under --require-verified-email
// (generic invalid_grant, audited email_unverified) → verify → it works;
// the link then cannot be used again.
func TestRegisterVerifySignIn(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) { c.RequireVerifiedEmail = true })
		const pw = "a long passphrase for robert"
		r := e.Account("/account/register", "", idptest.JSONObject("username", "bob", "password", pw, "email", "bob@example.com"))
		if r.Status != http.StatusAccepted {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		m := e.SMTP.Wait(t, "bob@example.com", mail.KindVerifyEmail, 1)
		tok := link(t, m, "/account/verify-email")
		if !strings.HasPrefix(tok, "kwev_") || len(tok) != len("kwev_")+43 {
			t.Fatalf("token %q: want kwev_ and 32 bytes in base64url", tok)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("bob", pw)), 400, web.ErrInvalidGrant)
		e.wantReason(t, audit.LoginFailed, "email_unverified")
		// alice, verified, signs in as ever.
		e.Login()

		if r := e.verify(tok); r.Status != http.StatusNoContent {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		if r := e.Token("C1", idptest.PasswordForm("bob", pw)); r.Status != http.StatusOK {
			t.Fatalf("password grant after verification: %d %s", r.Status, r.Body)
		}
		u, err := e.DB.UserByUsername(t.Context(), "bob")
		if err != nil || !u.EmailVerified || u.Email != "bob@example.com" {
			t.Fatalf("bob after verification: %v %+v", err, u)
		}
		if n := len(e.auditRows(audit.EmailVerified)); n != 1 {
			t.Errorf("%d email_verified rows", n)
		}
		idptest.CheckAccountError(t, e.verify(tok), 400, "invalid_token")
		e.wantReason(t, audit.EmailVerificationFailed, storage.TokenUsed)
	})
}

// TestForgotResetFlow: forgot → the link arrives → the request changed
// nothing (RR-03) → reset → the old refresh token fails, the new password
// signs in and the old one does not, the link cannot be used twice, a
// notice arrives, and every step is audited.
func TestForgotResetFlow(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b)
		alice := e.Users["alice"]
		rt := e.Login().Str("refresh_token")
		r := e.Do(idptest.Request{Path: "/account/password/forgot", Body: idptest.JSONObject("username", "ALICE"),
			ContentType: "application/json", Header: http.Header{"X-Forwarded-Host": {"evil.test"}}})
		if r.Status != http.StatusAccepted || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("forgot: %d %v %s", r.Status, r.Header, r.Body)
		}
		tok := link(t, e.SMTP.Wait(t, alice.Email, mail.KindPasswordReset, 1), "/account/reset-password")
		if !strings.HasPrefix(tok, "kwpr_") || len(tok) != len("kwpr_")+43 {
			t.Fatalf("token %q", tok)
		}
		e.Login() // RR-03: the request changed nothing

		if err := e.Srv.Account().CheckResetToken(t.Context(), tok); err != nil {
			t.Fatalf("check: %v", err)
		}
		if r := e.reset(tok, idptest.NewAlicePassword); r.Status != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("reset: %d %s", r.Status, r.Body) // RR-06: no token, no auto-login
		}
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt)), 400, web.ErrInvalidGrant)
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrInvalidGrant)
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.NewAlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("new password: %d %s", r.Status, r.Body)
		}
		idptest.CheckAccountError(t, e.reset(tok, "yet another long passphrase 7"), 400, "invalid_token")
		e.wantReason(t, audit.PasswordResetFailed, storage.TokenUsed)
		var checkErr *web.Error
		if err := e.Srv.Account().CheckResetToken(t.Context(), tok); !idptest.ErrorsAs(err, &checkErr) || checkErr.Code != "invalid_token" {
			t.Errorf("check of a used token: %v", err)
		}
		e.SMTP.Wait(t, alice.Email, mail.KindPasswordWasReset, 1)
		if n := len(e.SMTP.To(alice.Email, mail.KindPasswordChanged)); n != 0 {
			t.Errorf("%d password_changed notices for a reset; want only password_was_reset", n)
		}
		for typ, n := range map[audit.Type]int{audit.PasswordResetRequested: 1, audit.PasswordResetSent: 1,
			audit.PasswordResetUsed: 1, audit.PasswordChanged: 1} {
			rows := e.auditRows(typ)
			if len(rows) != n || rows[0].Subject != alice.ID {
				t.Errorf("%s rows %+v, want %d about alice", typ, rows, n)
			}
		}
		if rows := e.auditRows(audit.TokenRevoked); len(rows) == 0 || rows[0].Reason != storage.RevokePassword {
			t.Errorf("token_revoked rows %+v", rows)
		}

		// By address, case-insensitively, the same.
		if r := e.forgot("email", "Alice@EXAMPLE.com"); r.Status != http.StatusAccepted {
			t.Fatalf("forgot by email: %d %s", r.Status, r.Body)
		}
		tok2 := link(t, e.SMTP.Wait(t, alice.Email, mail.KindPasswordReset, 2), "/account/reset-password")
		if tok2 == tok {
			t.Fatal("the same token twice")
		}
	})
}

// TestResetTokenExpiredSupersededRevoked: a newer link supersedes an older
// one, a link expires after --reset-token-lifetime, a password change ends
// the links, and each refusal is the one invalid_token audited with its
// reason; a link with one character changed is unknown.
func TestResetTokenExpiredSupersededRevoked(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) { c.ResetTokenLifetime = 10 * time.Minute })
		email := e.Users["alice"].Email
		next := 0
		request := func() string {
			t.Helper()
			if r := e.forgot("username", "alice"); r.Status != http.StatusAccepted {
				t.Fatalf("forgot: %d %s", r.Status, r.Body)
			}
			next++
			m := e.SMTP.Wait(t, email, mail.KindPasswordReset, next)
			if !strings.Contains(m.Text(), "10 minutes") {
				t.Errorf("the mail does not give the lifetime: %s", m.Text())
			}
			return m.Token()
		}
		first, second := request(), request()
		idptest.CheckAccountError(t, e.reset(first, idptest.NewAlicePassword), 400, "invalid_token")
		e.wantReason(t, audit.PasswordResetFailed, storage.TokenSuperseded)

		changed := second[:len(second)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(second, "A")]
		idptest.CheckAccountError(t, e.reset(changed, idptest.NewAlicePassword), 400, "invalid_token")
		e.wantReason(t, audit.PasswordResetFailed, "unknown")

		e.Clock.Advance(11 * time.Minute)
		idptest.CheckAccountError(t, e.reset(second, idptest.NewAlicePassword), 400, "invalid_token")
		e.wantReason(t, audit.PasswordResetFailed, "expired")

		// A password change (any path) ends the live links, and mails the
		// password_changed notice.
		third := request()
		at := e.Login().Str("access_token")
		if r := e.ChangePassword(at, idptest.AlicePassword, idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.Status, r.Body)
		}
		e.SMTP.Wait(t, email, mail.KindPasswordChanged, 1)
		idptest.CheckAccountError(t, e.reset(third, "yet another long passphrase 7"), 400, "invalid_token")
		e.wantReason(t, audit.PasswordResetFailed, storage.TokenRevoked)
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.NewAlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("the refused links changed the password: %d %s", r.Status, r.Body)
		}
	})
}

// TestResetClearsLockout: BF-04 — an account locked by failed logins signs
// in at once after a reset; and RR-09 — forgot requests lock nothing.
func TestResetClearsLockout(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) {
			c.Throttle = guard.Policy{FreeFailures: 2, AccountFreeFailures: 2, BaseDelay: time.Hour, AccountBaseDelay: time.Hour}
		})
		for range 20 {
			if r := e.forgot("username", "alice"); r.Status != http.StatusAccepted {
				t.Fatalf("forgot: %d %s", r.Status, r.Body)
			}
		}
		e.Login() // RR-09: still signs in
		for range 4 {
			e.Token("C1", idptest.PasswordForm("alice", "not the password at all"))
		}
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrInvalidGrant)
		e.Clock.Advance(2 * time.Hour) // past the per-account forgot window
		if r := e.forgot("username", "alice"); r.Status != http.StatusAccepted {
			t.Fatalf("forgot: %d %s", r.Status, r.Body)
		}
		ms := e.SMTP.To(e.Users["alice"].Email, mail.KindPasswordReset)
		if r := e.reset(ms[len(ms)-1].Token(), idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.Status, r.Body)
		}
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.NewAlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("login right after the reset: %d %s", r.Status, r.Body)
		}
	})
}

// TestChangeEmail: POST /account/email needs the current password (RR-13);
// the new address stays pending, the old one verified, until the link
// mailed to the new one is used; then the old one is told, masked.
func TestChangeEmail(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b)
		alice := e.Users["alice"]
		at := e.Login().Str("access_token")
		change := func(email, pw string) idptest.Response {
			return e.Account("/account/email", "Bearer "+at, idptest.JSONObject("email", email, "current_password", pw))
		}
		idptest.CheckAccountError(t, e.Account("/account/email", "Bearer "+at, idptest.JSONObject("email", "new@example.org")), 400, web.ErrInvalidRequest)
		idptest.CheckAccountError(t, change("new@example.org", "not alice's password"), 400, web.ErrInvalidGrant)
		idptest.CheckAccountError(t, change("not an address", idptest.AlicePassword), 400, web.ErrInvalidRequest)
		if r := e.Account("/account/email", "", idptest.JSONObject("email", "new@example.org", "current_password", idptest.AlicePassword)); r.Status != http.StatusUnauthorized {
			t.Errorf("without a token: %d %s", r.Status, r.Body)
		}
		r := change("new@example.org", idptest.AlicePassword)
		if r.Status != http.StatusAccepted || r.Str("email") != alice.Email || r.Str("email_pending") != "new@example.org" || r.JSON["email_verified"] != true {
			t.Fatalf("change: %d %s", r.Status, r.Body)
		}
		tok := link(t, e.SMTP.Wait(t, "new@example.org", mail.KindVerifyEmail, 1), "/account/verify-email")
		// Pending: a reset still goes to the old, verified address.
		e.forgot("email", "new@example.org")
		e.forgot("username", "alice")
		e.SMTP.Wait(t, alice.Email, mail.KindPasswordReset, 1)
		if n := len(e.SMTP.To("new@example.org", mail.KindPasswordReset)); n != 0 {
			t.Errorf("%d reset links to the pending address", n)
		}
		if r := e.verify(tok); r.Status != http.StatusNoContent {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		u, err := e.DB.User(t.Context(), alice.ID)
		if err != nil || u.Email != "new@example.org" || !u.EmailVerified || u.EmailPending != "" {
			t.Fatalf("after verification: %v %+v", err, u)
		}
		notice := e.SMTP.Wait(t, alice.Email, mail.KindEmailChanged, 1)
		if !strings.Contains(notice.Text(), "n***@example.org") || strings.Contains(notice.Text(), "new@example.org") {
			t.Errorf("the notice to the old address: %s", notice.Data)
		}
		if n := len(e.SMTP.To("new@example.org", mail.KindEmailChanged)); n != 0 {
			t.Errorf("%d change notices to the new address", n)
		}
	})
}
