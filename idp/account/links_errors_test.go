package account_test

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestForgotEnumeration: RR-01 — an existing account with a verified
// address, an unknown one, one without a verified address and a disabled
// one get the same status, headers and body; only the first gets mail.
// Past the per-account limit the answer is the same and nothing is mailed;
// past the per-IP limit it is 429.
func TestForgotEnumeration(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) { c.Throttle.IPFailures = 12 })
		carol := e.AddUser("carol", idptest.AlicePassword, false)
		if _, err := e.DB.UpdateUser(t.Context(), carol.ID, func(u *storage.User) error { u.EmailVerified = false; return nil }); err != nil {
			t.Fatal(err)
		}
		bodies := map[string]bool{}
		for _, kv := range [][]string{
			{"username", "alice"}, {"username", "ghost"}, {"username", "carol"}, {"username", "dave-disabled"},
			{"email", "alice@example.com"}, {"email", "ghost@example.com"}, {"email", "carol@example.com"},
		} {
			r := e.forgot(kv...)
			if r.Status != http.StatusAccepted || r.Header.Get("Content-Type") != web.ContentTypeJSON || r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%v: %d %v", kv, r.Status, r.Header)
			}
			bodies[string(r.Body)] = true
		}
		if len(bodies) != 1 {
			t.Errorf("answers differ: %v", bodies)
		}
		if ms := e.SMTP.Messages(); len(ms) != 2 || ms[0].To[0] != "alice@example.com" || ms[1].To[0] != "alice@example.com" {
			t.Errorf("mail went to %v, want alice twice", ms)
		}
		reasons := map[string]int{}
		for _, row := range e.auditRows(audit.PasswordResetRequested) {
			reasons[row.Reason]++
		}
		// An address is looked up among verified ones only: carol's is unknown.
		if reasons[""] != 2 || reasons["unknown_account"] != 3 || reasons["email_unverified"] != 1 || reasons["disabled"] != 1 {
			t.Errorf("password_reset_requested reasons %v", reasons)
		}
		// Per account (default 5 an hour, by name and by address apart): the
		// same answer, no more mail.
		for range 5 {
			if r := e.forgot("username", "alice"); r.Status != http.StatusAccepted || !bodies[string(r.Body)] {
				t.Fatalf("forgot: %d %s", r.Status, r.Body)
			}
		}
		if n := len(e.SMTP.To("alice@example.com", mail.KindPasswordReset)); n != 6 {
			t.Errorf("%d links, want 6 (5 by name, 1 by address)", n)
		}
		e.wantReason(t, audit.PasswordResetRequested, "rate_limited")
		// Per IP: 12 counted so far; the 13th is refused.
		r := e.forgot("username", "ghost")
		idptest.CheckAccountError(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		e.Login() // the IP's logins are unaffected
	})
}

// TestLinkErrors: every error path of the forgot, reset and verify-email
// endpoints answers the account API's {"error","error_description"} with
// its stable code; a password the policy refuses leaves the link usable;
// guessing links is throttled per IP (RR-07) with one body.
func TestLinkErrors(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) { c.Throttle.IPFailures = 6 })
		tests := []struct {
			name, path, body, ct string
			status               int
			code                 string
		}{
			{"forgot both", "/account/password/forgot", `{"username":"alice","email":"alice@example.com"}`, "", 400, web.ErrInvalidRequest},
			{"forgot neither", "/account/password/forgot", `{}`, "", 400, web.ErrInvalidRequest},
			{"forgot bad email", "/account/password/forgot", `{"email":"alice@example.com\r\nBcc: x@evil.test"}`, "", 400, web.ErrInvalidRequest},
			{"forgot bad username", "/account/password/forgot", `{"username":"a b"}`, "", 400, web.ErrInvalidRequest},
			{"forgot unknown field", "/account/password/forgot", `{"username":"alice","admin":true}`, "", 400, web.ErrInvalidRequest},
			{"forgot not JSON", "/account/password/forgot", `username=alice`, "application/x-www-form-urlencoded", 0, ""},
			{"forgot two objects", "/account/password/forgot", `{"username":"alice"}{}`, "", 400, web.ErrInvalidRequest},
			{"reset no token", "/account/password/reset", `{"new_password":"a long enough new passphrase"}`, "", 400, web.ErrInvalidRequest},
			{"reset no password", "/account/password/reset", `{"token":"kwpr_x"}`, "", 400, web.ErrInvalidRequest},
			{"reset number", "/account/password/reset", `{"token":1,"new_password":"x"}`, "", 400, web.ErrInvalidRequest},
			{"verify no token", "/account/verify-email", `{}`, "", 400, web.ErrInvalidRequest},
			{"verify text", "/account/verify-email", `token=kwev_x`, "text/plain", 415, web.ErrInvalidRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ct := tt.ct
				if ct == "" {
					ct = "application/json"
				}
				r := e.Do(idptest.Request{Path: tt.path, Body: tt.body, ContentType: ct})
				if tt.status == 0 { // refused, whatever the code, never 2xx
					if r.Status < 400 || r.Status >= 500 {
						t.Errorf("status %d %s", r.Status, r.Body)
					}
					return
				}
				idptest.CheckAccountError(t, r, tt.status, tt.code)
			})
		}
		if n := len(e.SMTP.Messages()); n != 0 {
			t.Errorf("%d mails from refused requests (RR-14)", n)
		}

		// A refused new password does not use the link up.
		e.forgot("username", "alice")
		tok := e.SMTP.Wait(t, "alice@example.com", mail.KindPasswordReset, 1).Token()
		r := e.reset(tok, "short")
		idptest.CheckAccountError(t, r, 400, account.ErrInvalidPassword)
		if r.Str("rule") == "" {
			t.Errorf("no rule: %s", r.Body)
		}
		idptest.CheckAccountError(t, e.reset(tok, "passwordpassword"), 400, account.ErrInvalidPassword)

		// Guessing: six refused links, then 429 for everyone from the IP,
		// even the right link; bodies of the refusals are one.
		bodies := map[string]bool{}
		for _, guess := range []string{"kwpr_AAAA", "kwev_AAAA", "nonsense", strings.Repeat("kwpr_", 100), "kwpr_" + strings.Repeat("A", 43)} {
			r := e.reset(guess, idptest.NewAlicePassword)
			idptest.CheckAccountError(t, r, 400, "invalid_token")
			bodies[string(r.Body)] = true
		}
		r = e.verify("kwev_guess")
		idptest.CheckAccountError(t, r, 400, "invalid_token")
		bodies[string(r.Body)] = true
		if len(bodies) != 1 {
			t.Errorf("refusals differ: %v", bodies)
		}
		r = e.reset(tok, idptest.NewAlicePassword)
		idptest.CheckAccountError(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		idptest.CheckAccountError(t, e.verify("kwev_guess"), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		e.Login() // link guesses are not failed logins
		e.Clock.Advance(11 * time.Minute)
		if r := e.reset(tok, idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("reset after the window: %d %s", r.Status, r.Body)
		}
	})
}

// TestMailFailureChangesNoAnswer: a Sender whose every Send fails (a full
// queue) changes no HTTP answer, and the log says which mail was lost,
// without its link.
func TestMailFailureChangesNoAnswer(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Mail = mailtest.FailingSender{}; c.Registration = true })
		good := idptest.New(t, b, func(c *idp.Config) { c.Registration = true }) // mail disabled
		for _, env := range []*idptest.Env{e, good} {
			r := env.Account("/account/password/forgot", "", idptest.JSONObject("username", "alice"))
			if r.Status != http.StatusAccepted {
				t.Fatalf("forgot: %d %s", r.Status, r.Body)
			}
			r = env.Account("/account/register", "", idptest.JSONObject("username", "zoe", "password", "a long passphrase for someone", "email", "zoe@example.com"))
			if r.Status != http.StatusAccepted {
				t.Fatalf("register: %d %s", r.Status, r.Body)
			}
		}
		logs := e.Logs.String()
		if !strings.Contains(logs, "mail not queued") || strings.Contains(logs, "kwpr_") || strings.Contains(logs, "kwev_") {
			t.Errorf("the log should name the lost mail without its link: %s", logs)
		}
		if !strings.Contains(good.Logs.String(), "mail disabled") {
			t.Error("a server without mail does not say so")
		}
	})
}

// TestLinkSecretsNotLogged is the secret scan of the account tests for the
// mail flows: no reset or verification token, no link and no password in
// the log or the audit trail.
func TestLinkSecretsNotLogged(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b)
		const regPW, newPW, badPW = "a long passphrase for robert", "the brand new passphrase 99", "short"
		e.Account("/account/register", "", idptest.JSONObject("username", "bob", "password", regPW, "email", "bob@example.com"))
		vtok := e.SMTP.Wait(t, "bob@example.com", mail.KindVerifyEmail, 1).Token()
		e.verify(vtok)
		e.verify(vtok)
		e.forgot("username", "alice")
		m := e.SMTP.Wait(t, "alice@example.com", mail.KindPasswordReset, 1)
		e.reset(m.Token(), badPW)
		e.reset(m.Token(), newPW)
		e.reset(m.Token(), newPW)
		e.reset("kwpr_"+strings.Repeat("Z", 43), newPW)
		e.Srv.Auditor().Flush()
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := json.Marshal(evs)
		logs := e.Logs.String()
		if len(evs) == 0 || logs == "" {
			t.Fatal("nothing was logged or audited")
		}
		for _, s := range []string{vtok, m.Token(), m.Link(), "kwpr_", "kwev_", "token=", regPW, newPW, idptest.AlicePassword} {
			for _, where := range []struct{ name, text string }{{"log", logs}, {"audit", string(rows)}} {
				if strings.Contains(where.text, s) {
					t.Errorf("the %s contains %q", where.name, s)
				}
			}
		}
		// The store holds only hashes.
		var n int
		if err := e.DB.SQL().Get(&n, e.DB.SQL().Rebind(`SELECT COUNT(*) FROM account_tokens WHERE hash = ?`), []byte(m.Token())); err != nil || n != 0 {
			t.Errorf("a token is stored in clear: %v %d", err, n)
		}
	})
}

// TestForgotTiming is RR-01's timing half: the median times of forgot
// requests for an account that gets a link and for one that does not
// exist, paired by round, differ by less than 10 %. It takes about 20
// seconds, so it runs only with KEYWARD_TIMING_TEST=1 (like the login
// timing tests); TestForgotEnumeration covers status and body on every run.
func TestForgotTiming(t *testing.T) {
	if os.Getenv("KEYWARD_TIMING_TEST") != "1" {
		t.Skip("set KEYWARD_TIMING_TEST=1 to measure forgot-password timing (RR-01)")
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b, func(c *idp.Config) {
			c.Throttle.IPFailures = 1 << 20
			c.Throttle.ForgotAccountLimit = 1 << 20
		})
		kinds := []struct{ name, user string }{{"existing, mailed", "alice"}, {"unknown", "ghost"}}
		const rounds = 60
		times := make([][]time.Duration, len(kinds))
		for round := range rounds {
			for j := range kinds {
				k := (round + j) % len(kinds)
				start := time.Now()
				if r := e.forgot("username", kinds[k].user); r.Status != http.StatusAccepted {
					t.Fatalf("%s: %d %s", kinds[k].name, r.Status, r.Body)
				}
				times[k] = append(times[k], time.Since(start))
			}
		}
		report, worst := testsupport.ComparePaired(testsupport.TimedKinds{Names: []string{kinds[0].name, kinds[1].name}, Times: times})
		t.Log(report)
		if math.Abs(worst) >= 0.10 || math.IsNaN(worst) {
			t.Errorf("an unknown account differs by %.1f %% paired by round, want under 10 %%", 100*worst)
		}
		if n := len(e.SMTP.To("alice@example.com", mail.KindPasswordReset)); n != rounds {
			t.Errorf("%d links mailed, want %d", n, rounds)
		}
	})
}
