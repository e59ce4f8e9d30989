package account_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

func TestChangePasswordErrors(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		at := e.Login().Str("access_token")
		cc := e.Token("CC", idptest.CCForm("scope", "read")).Str("access_token")
		if cc == "" {
			t.Fatal("no client_credentials token")
		}
		good := idptest.JSONObject("current_password", idptest.AlicePassword, "new_password", idptest.NewAlicePassword)
		tests := []struct {
			name       string
			r          idptest.Request
			wantStatus int
			wantCode   string
			wantRule   string
		}{
			{"no token", idptest.Request{Body: good}, 401, web.ErrInvalidToken, ""},
			{"not a token", idptest.Request{Body: good, Auth: "Bearer nope"}, 401, web.ErrInvalidToken, ""},
			{"basic auth", idptest.Request{Body: good, Auth: e.Basic("C1")}, 401, web.ErrInvalidToken, ""},
			{"client credentials token", idptest.Request{Body: good, Auth: "Bearer " + cc}, 403, web.ErrInsufficientScope, ""},
			{"token in query", idptest.Request{Body: good, Query: "access_token=" + at}, 400, web.ErrInvalidRequest, ""},
			{"form body", idptest.Request{Body: url.Values{"current_password": {idptest.AlicePassword}}.Encode(), Auth: "Bearer " + at, ContentType: ""}, 415, web.ErrInvalidRequest, ""},
			{"no current password", idptest.Request{Body: idptest.JSONObject("new_password", idptest.NewAlicePassword), Auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"empty new password", idptest.Request{Body: idptest.JSONObject("current_password", idptest.AlicePassword, "new_password", ""), Auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"unknown member", idptest.Request{Body: `{"current_password":"x","new_password":"y","username":"bob"}`, Auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"wrong current password", idptest.Request{Body: idptest.JSONObject("current_password", "not my password at all", "new_password", idptest.NewAlicePassword), Auth: "Bearer " + at}, 400, web.ErrInvalidGrant, ""},
			{"new password too short", idptest.Request{Body: idptest.JSONObject("current_password", idptest.AlicePassword, "new_password", "short"), Auth: "Bearer " + at}, 400, account.ErrInvalidPassword, password.RuleTooShort},
			{"new password same as current", idptest.Request{Body: idptest.JSONObject("current_password", idptest.AlicePassword, "new_password", idptest.AlicePassword), Auth: "Bearer " + at}, 400, account.ErrInvalidPassword, account.RuleSameAsCurrent},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.r.Path = "/account/password"
				if tt.r.ContentType == "" && strings.HasPrefix(tt.r.Body, "{") {
					tt.r.ContentType = "application/json"
				}
				r := e.Do(tt.r)
				idptest.CheckAccountError(t, r, tt.wantStatus, tt.wantCode)
				if got := r.Str("rule"); got != tt.wantRule {
					t.Errorf("rule %q, want %q", got, tt.wantRule)
				}
				if tt.wantStatus == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("401 without WWW-Authenticate: Bearer (%q)", r.Header.Get("WWW-Authenticate"))
				}
			})
		}
		// Nothing above changed the password.
		e.Login()
	})
}

func TestChangePassword(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		first := e.Login()
		other := e.Login() // a second session of alice's
		before := e.Users["alice"]

		r := e.ChangePassword(first.Str("access_token"), idptest.AlicePassword, idptest.NewAlicePassword)
		if r.Status != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("change: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
		}

		// Every refresh token of the user is dead, and so are the access
		// tokens bound to their families.
		for _, s := range []idptest.Response{first, other} {
			idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(s.Str("refresh_token"))), 400, web.ErrInvalidGrant)
		}
		ui := e.Do(idptest.Request{Method: http.MethodGet, Path: "/userinfo", Auth: "Bearer " + first.Str("access_token"), ContentType: "-"})
		if ui.Status != http.StatusUnauthorized {
			t.Errorf("userinfo with a pre-change access token: %d %s", ui.Status, ui.Body)
		}
		// The old password no longer logs in; the new one does.
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrInvalidGrant)
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.NewAlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("login with the new password: %d %s", r.Status, r.Body)
		}

		u, err := e.DB.User(t.Context(), before.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$`).MatchString(u.PasswordHash) {
			t.Errorf("stored hash is not argon2id: %.20s…", u.PasswordHash)
		}
		if !u.PasswordChangedAt.After(before.PasswordChangedAt.Time) {
			t.Errorf("PasswordChangedAt %v not after %v", u.PasswordChangedAt, before.PasswordChangedAt)
		}
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.PasswordChanged)})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Subject != u.ID || evs[0].Actor != u.ID || evs[0].ClientID != "C1" {
			t.Errorf("password_changed events: %+v", evs)
		}
		revs, _ := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.TokenRevoked)})
		if len(revs) != 1 || revs[0].Reason != storage.RevokePassword {
			t.Errorf("token_revoked events: %+v", revs)
		}
	})
}

// TestChangePasswordThrottle: a wrong current password is a failed login
// counted by the throttle every login path shares (BF-01), and an attempt
// the throttle refuses looks exactly like a wrong password (BF-03).
func TestChangePasswordThrottle(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		at := e.Login().Str("access_token")
		free := guard.DefaultPolicy().FreeFailures
		var wrong idptest.Response
		for i := 0; i <= free; i++ { // free+1 failures: the (alice, IP) backoff starts
			wrong = e.ChangePassword(at, "not my password at all", idptest.NewAlicePassword)
			idptest.CheckAccountError(t, wrong, 400, web.ErrInvalidGrant)
		}
		evs, _ := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.LoginFailed)})
		if len(evs) != free+1 || evs[0].Reason != "bad_password" {
			t.Errorf("login_failed events: %d %+v", len(evs), evs)
		}

		// The right current password is now refused, with the same answer.
		blocked := e.ChangePassword(at, idptest.AlicePassword, idptest.NewAlicePassword)
		if blocked.Status != wrong.Status || !bytes.Equal(blocked.Body, wrong.Body) {
			t.Errorf("blocked attempt %d %s, wrong password %d %s", blocked.Status, blocked.Body, wrong.Status, wrong.Body)
		}
		if blocked.Header.Get("Retry-After") != "" {
			t.Error("a denied attempt carries Retry-After")
		}
		// The failures count for the password grant too.
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrInvalidGrant)
		if u, _ := e.DB.User(t.Context(), e.Users["alice"].ID); u.PasswordHash != e.Users["alice"].PasswordHash {
			t.Fatal("a refused attempt changed the password")
		}

		// The backoff lifts on its own (BF-04), and the change goes through.
		e.Clock.Advance(time.Minute)
		if r := e.ChangePassword(at, idptest.AlicePassword, idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("change after the backoff: %d %s", r.Status, r.Body)
		}
	})
}

// TestPasswordPolicyRules: each rule of the policy surfaces by name, at
// registration and at change (PW-05 to PW-08).
func TestPasswordPolicyRules(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		at := e.Login().Str("access_token")
		tests := []struct {
			name, pw, wantRule string
		}{
			{"too short", "fourteen chars", password.RuleTooShort},
			{"14 emoji", strings.Repeat("😀", 14), password.RuleTooShort},
			{"too long", strings.Repeat("x", password.MaxBytes+1), password.RuleTooLong},
			{"control character", "correct horse\tbattery staple", password.RuleControlCharacter},
			{"contains username", "{user} is my name, ok?", password.RuleContainsUsername},
			{"contains email", "i am mail.box at home", password.RuleContainsEmail},
			{"blocklisted", "123456789012345", password.RuleBlocklisted},
			{"repeated word", "passwordpassword", password.RuleBlocklisted},
			{"keyboard run", "qwertyuiopasdfgh", password.RuleBlocklisted},
			{"15 composed é", strings.Repeat("é", 15), ""},
			{"no composition rules", "correct horse battery staple plus", ""},
			{"64 characters", "sixty-four characters of a passphrase that nobody would ever use", ""},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				user := "zedquux" + string(rune('a'+i))
				tt.pw = strings.ReplaceAll(tt.pw, "{user}", user)
				r := e.Account("/account/register", "", idptest.JSONObject("username", user, "password", tt.pw, "email", "mail.box@example.com"))
				if tt.wantRule == "" {
					if r.Status != http.StatusAccepted {
						t.Fatalf("register: %d %s", r.Status, r.Body)
					}
					return
				}
				idptest.CheckAccountError(t, r, 400, account.ErrInvalidPassword)
				if r.Str("rule") != tt.wantRule || r.Str("error_description") == "" {
					t.Errorf("register: rule %q, want %q (body %s)", r.Str("rule"), tt.wantRule, r.Body)
				}
				if tt.wantRule == password.RuleContainsUsername || tt.wantRule == password.RuleContainsEmail {
					return // names alice does not have
				}
				r = e.ChangePassword(at, idptest.AlicePassword, tt.pw)
				idptest.CheckAccountError(t, r, 400, account.ErrInvalidPassword)
				if r.Str("rule") != tt.wantRule {
					t.Errorf("change: rule %q, want %q (body %s)", r.Str("rule"), tt.wantRule, r.Body)
				}
			})
		}
		// A change names alice's own username and e-mail address.
		r := e.ChangePassword(at, idptest.AlicePassword, "alice in wonderland again")
		if r.Str("rule") != password.RuleContainsUsername {
			t.Errorf("change containing the username: %s", r.Body)
		}
	})
}

// TestPasswordPolicyConfigured: idp.Config.Policy replaces the defaults.
func TestPasswordPolicyConfigured(t *testing.T) {
	pol, err := password.NewPolicy(20)
	if err != nil {
		t.Fatal(err)
	}
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Registration = true; c.Policy = pol })
	r := e.Account("/account/register", "", idptest.JSONObject("username", "bob", "password", "nineteen characters", "email", "bob@example.com"))
	if r.Str("rule") != password.RuleTooShort || !strings.Contains(r.Str("error_description"), "20") {
		t.Errorf("19 characters under a 20-character minimum: %d %s", r.Status, r.Body)
	}
}

func TestRegister(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		const pw = "my own long passphrase 7"
		r := e.Account("/account/register", "", idptest.JSONObject("username", "Bob", "password", pw, "email", "Bob@Example.COM"))
		if r.Status != http.StatusAccepted {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != web.ContentTypeJSON {
			t.Errorf("headers %v", r.Header)
		}
		u, err := e.DB.UserByUsername(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "Bob" || u.Email != "Bob@example.com" || u.EmailVerified || u.Disabled {
			t.Errorf("stored user %+v", u)
		}
		if !regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$`).MatchString(u.PasswordHash) {
			t.Errorf("stored hash is not argon2id: %.20s…", u.PasswordHash)
		}
		if r := e.Token("C1", idptest.PasswordForm("bob", pw)); r.Status != http.StatusOK {
			t.Fatalf("login as the new user: %d %s", r.Status, r.Body)
		}
		evs, _ := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.UserCreated)})
		if len(evs) != 1 || evs[0].Actor != account.ActorSelf || evs[0].Subject != u.ID || evs[0].Outcome != audit.OutcomeSuccess {
			t.Errorf("user_created events: %+v", evs)
		}

		// A taken name, however it is spelt, gets the same answer and
		// changes nothing (RR-10, PW-17).
		n, _ := e.DB.CountUsers(t.Context())
		for _, name := range []string{"alice", "ALICE", "ａｌｉｃｅ", "Bob"} {
			taken := e.Account("/account/register", "", idptest.JSONObject("username", name, "password", "somebody else's passphrase", "email", "x@example.com"))
			if taken.Status != r.Status || !bytes.Equal(taken.Body, r.Body) {
				t.Errorf("register taken %q: %d %s, new name: %d %s", name, taken.Status, taken.Body, r.Status, r.Body)
			}
		}
		if m, _ := e.DB.CountUsers(t.Context()); m != n {
			t.Errorf("users %d, want %d", m, n)
		}
		e.Login() // alice's password is untouched
		evs, _ = e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.UserCreated)})
		if len(evs) != 5 || evs[0].Outcome != audit.OutcomeFailure || evs[0].Reason != "username_taken" {
			t.Errorf("user_created events after taken names: %d, newest %+v", len(evs), evs[0])
		}

		// A name no account can have is refused as a bad request.
		for _, name := range []string{"alice ", "al ice", "bob\u0007", strings.Repeat("b", manage.MaxUsernameLength+1)} {
			idptest.CheckAccountError(t, e.Account("/account/register", "", idptest.JSONObject("username", name, "password", pw, "email", "b@example.com")), 400, web.ErrInvalidRequest)
		}
		if r := e.Do(idptest.Request{Method: http.MethodGet, Path: "/account/register", ContentType: "-"}); r.Status != http.StatusMethodNotAllowed {
			t.Errorf("GET /account/register: %d", r.Status)
		}
	})
}

// TestRegisterEmail is AC-R1: addresses that inject headers or confuse
// are refused; case and sub-addresses are kept as documented.
func TestRegisterEmail(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		tests := []struct {
			name, email string
			want        string // stored address; "" means 400 invalid_request
		}{
			{"CRLF Bcc injection", "alice@example.com\r\nBcc:attacker@evil.test", ""},
			{"LF injection", "alice@example.com\nBcc:attacker@evil.test", ""},
			{"quoted address", `"alice@example.com"`, ""},
			{"display name", "Alice <alice@example.com>", ""},
			{"two addresses", "alice@example.com, eve@evil.test", ""},
			{"trailing dot", "alice@example.com.", ""},
			{"Cyrillic а in the domain", "alice@exаmple.com", ""},
			{"NUL", "alice@example.com\x00", ""},
			{"local part of 320", strings.Repeat("a", 320) + "@example.com", ""},
			{"no domain dot", "alice@localhost", ""},
			{"no at", "alice.example.com", ""},
			{"mixed case", "Alice@Example.COM", "Alice@example.com"},
			{"sub-address", "alice+x@example.com", "alice+x@example.com"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				user := "mailer" + string(rune('a'+i))
				r := e.Account("/account/register", "", idptest.JSONObject("username", user, "password", "a perfectly fine passphrase", "email", tt.email))
				if tt.want == "" {
					idptest.CheckAccountError(t, r, 400, web.ErrInvalidRequest)
					if strings.Contains(string(r.Body), "evil") {
						t.Errorf("the body repeats the address: %s", r.Body)
					}
					if _, err := e.DB.UserByUsername(t.Context(), user); err == nil {
						t.Error("a user was created")
					}
					return
				}
				if r.Status != http.StatusAccepted {
					t.Fatalf("register: %d %s", r.Status, r.Body)
				}
				u, err := e.DB.UserByUsername(t.Context(), user)
				if err != nil || u.Email != tt.want {
					t.Errorf("stored email %q (%v), want %q", u.Email, err, tt.want)
				}
			})
		}
	})
}

// TestAccountStrictJSON is AC-A1 (IN-06, RR-11) at both endpoints: every
// body that is not exactly the documented object of strings is 400 and
// creates or changes nothing.
func TestAccountStrictJSON(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		at := e.Login().Str("access_token")
		const pw = "a perfectly fine passphrase"
		reg := `"username":"carol","password":"` + pw + `","email":"carol@example.com"`
		deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
		tests := []struct {
			name, body string
		}{
			{"mass assignment role", `{` + reg + `,"role":"admin"}`},
			{"mass assignment email_verified", `{` + reg + `,"email_verified":true}`},
			{"mass assignment id", `{` + reg + `,"id":"` + e.Users["alice"].ID + `"}`},
			{"mass assignment tenant", `{` + reg + `,"tenant_id":"B"}`},
			{"duplicate key", `{` + reg + `,"username":"admin"}`},
			{"case-variant key", `{"Username":"carol","password":"` + pw + `","email":"carol@example.com"}`},
			{"case-variant duplicate", `{` + reg + `,"USERNAME":"admin"}`},
			{"password array", `{"username":"carol","password":["a","b"],"email":"carol@example.com"}`},
			{"email null", `{"username":"carol","password":"` + pw + `","email":null}`},
			{"username number", `{"username":1e400,"password":"` + pw + `","email":"carol@example.com"}`},
			{"username bool", `{"username":true,"password":"` + pw + `","email":"carol@example.com"}`},
			{"nested object", `{"username":{"$ne":""},"password":"` + pw + `","email":"carol@example.com"}`},
			{"nesting 10000 deep in a value", `{"username":` + deep + `,"password":"` + pw + `","email":"carol@example.com"}`},
			{"nesting 10000 deep", deep},
			{"trailing object", `{` + reg + `}{"username":"admin"}`},
			{"trailing garbage", `{` + reg + `} x`},
			{"NUL in email", `{"username":"carol","password":"` + pw + `","email":"carol\u0000@example.com"}`},
			{"NUL in username", `{"username":"carol\u0000","password":"` + pw + `","email":"carol@example.com"}`},
			{"invalid UTF-8", "{\"username\":\"car\xffol\",\"password\":\"" + pw + "\",\"email\":\"carol@example.com\"}"},
			{"unpaired surrogate", `{"username":"carol\ud800","password":"` + pw + `","email":"carol@example.com"}`},
			{"missing email", `{"username":"carol","password":"` + pw + `"}`},
			{"empty object", `{}`},
			{"null", `null`},
			{"array", `[` + `{` + reg + `}]`},
			{"string", `"carol"`},
			{"empty body", ``},
			{"truncated", `{` + reg},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				idptest.CheckAccountError(t, e.Account("/account/register", "", tt.body), 400, web.ErrInvalidRequest)
			})
		}
		if _, err := e.DB.UserByUsername(t.Context(), "carol"); err == nil {
			t.Error("a refused body created carol")
		}
		if _, err := e.DB.UserByUsername(t.Context(), "admin"); err == nil {
			t.Error("a refused body created admin")
		}

		change := `"current_password":"` + idptest.AlicePassword + `","new_password":"` + idptest.NewAlicePassword + `"`
		for _, tt := range []struct{ name, body string }{
			{"extra member", `{` + change + `,"username":"bob"}`},
			{"duplicate key", `{` + change + `,"new_password":"another long passphrase"}`},
			{"case-variant key", `{"Current_Password":"` + idptest.AlicePassword + `","new_password":"` + idptest.NewAlicePassword + `"}`},
			{"number", `{"current_password":1e400,"new_password":"` + idptest.NewAlicePassword + `"}`},
			{"trailing data", `{` + change + `}{}`},
		} {
			t.Run("password/"+tt.name, func(t *testing.T) {
				idptest.CheckAccountError(t, e.Account("/account/password", "Bearer "+at, tt.body), 400, web.ErrInvalidRequest)
			})
		}
		e.Login() // alice's password is unchanged

		// Media type and size.
		r := e.Do(idptest.Request{Path: "/account/register", Body: `{` + reg + `}`, ContentType: "text/plain"})
		idptest.CheckAccountError(t, r, http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		r = e.Do(idptest.Request{Path: "/account/register", Body: `{` + reg + `}`, ContentType: "application/json; charset=latin1"})
		idptest.CheckAccountError(t, r, http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		r = e.Account("/account/register", "", `{"username":"`+strings.Repeat("a", 100<<10)+`"}`)
		idptest.CheckAccountError(t, r, http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)
		r = e.Account("/account/register?username=carol", "", `{`+reg+`}`)
		idptest.CheckAccountError(t, r, http.StatusBadRequest, web.ErrInvalidRequest)
		r = e.Do(idptest.Request{Path: "/account/register", Body: `{` + reg + `}`, ContentType: "application/json; charset=utf-8"})
		if r.Status != http.StatusAccepted {
			t.Errorf("charset=utf-8: %d %s", r.Status, r.Body)
		}
	})
}

// TestRegisterRace is AC-R3: 20 parallel registrations of one username
// make exactly one account and get the same answer.
func TestRegisterRace(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		before, _ := e.DB.CountUsers(t.Context())
		const n = 20
		type result struct {
			Status int
			Body   []byte
			err    error
		}
		results := make(chan result, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				body := idptest.JSONObject("username", "racer", "password", "racing passphrase number "+string(rune('a'+i)), "email", "racer@example.com")
				resp, err := http.Post(e.URL+"/account/register", "application/json", strings.NewReader(body))
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				results <- result{Status: resp.StatusCode, Body: buf.Bytes()}
			}()
		}
		close(start)
		var first result
		for i := range n {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.Status != http.StatusAccepted {
				t.Errorf("registration %d: %d %s", i, r.Status, r.Body)
			}
			if i == 0 {
				first = r
			} else if !bytes.Equal(r.Body, first.Body) {
				t.Errorf("bodies differ: %s and %s", r.Body, first.Body)
			}
		}
		after, _ := e.DB.CountUsers(t.Context())
		if after != before+1 {
			t.Errorf("users %d → %d, want exactly one more", before, after)
		}
		if _, err := e.DB.UserByUsername(t.Context(), "racer"); err != nil {
			t.Error(err)
		}
	})
}

// TestRegisterThrottle: registrations are limited per IP (BF-09) with 429
// and Retry-After; refused bodies are not counted, and the limit leaves
// the IP's logins alone.
func TestRegisterThrottle(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) {
			c.Registration = true
			c.Throttle.IPFailures, c.Throttle.IPWindow = 3, 10*time.Minute
		})
		reg := func(name string) idptest.Response {
			return e.Account("/account/register", "", idptest.JSONObject("username", name, "password", "a perfectly fine passphrase", "email", "x@example.com"))
		}
		for range 5 {
			idptest.CheckAccountError(t, e.Account("/account/register", "", `{"username":"nobody"}`), 400, web.ErrInvalidRequest)
		}
		for _, name := range []string{"u1", "u2", "alice"} { // a taken name counts too
			if r := reg(name); r.Status != http.StatusAccepted {
				t.Fatalf("register %s: %d %s", name, r.Status, r.Body)
			}
		}
		r := reg("u4")
		idptest.CheckAccountError(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After %q", ra)
		}
		if _, err := e.DB.UserByUsername(t.Context(), "u4"); err == nil {
			t.Error("a throttled registration created a user")
		}
		e.Login() // logins from the IP are unaffected

		e.Clock.Advance(11 * time.Minute)
		if r := reg("u5"); r.Status != http.StatusAccepted {
			t.Errorf("register after the window: %d %s", r.Status, r.Body)
		}
	})
}

func TestRegistrationOff(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	body := idptest.JSONObject("username", "bob", "password", "a perfectly fine passphrase", "email", "bob@example.com")
	idptest.CheckAccountError(t, e.Account("/account/register", "", body), http.StatusNotFound, "not_found")
	r := e.Do(idptest.Request{Method: http.MethodGet, Path: "/account/register", ContentType: "-"})
	idptest.CheckAccountError(t, r, http.StatusNotFound, "not_found")
	if _, err := e.DB.UserByUsername(t.Context(), "bob"); err == nil {
		t.Error("registration off, and bob exists")
	}
	// Without a password hasher neither endpoint exists.
	e = idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Registration = true; c.Passwords = nil })
	idptest.CheckAccountError(t, e.Account("/account/register", "", body), http.StatusNotFound, "not_found")
}

// TestAccountSecretsNotLogged (LG-04): no password sent to the account
// endpoints, nor the access token, reaches the log or an audit row.
func TestAccountSecretsNotLogged(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		at := e.Login().Str("access_token")
		secrets := []string{
			"registered passphrase one", "wrong current passphrase", "rejected-short", idptest.NewAlicePassword,
			"unicode pässwörd ☃ long enough", at,
		}
		e.Account("/account/register", "", idptest.JSONObject("username", "dora", "password", secrets[0], "email", "dora@example.com"))
		e.Account("/account/register", "", idptest.JSONObject("username", "alice", "password", secrets[4], "email", "a@example.com"))
		e.Account("/account/register", "", idptest.JSONObject("username", "erin", "password", secrets[2], "email", "erin@example.com"))
		e.Account("/account/register", "", `{"username":"x","password":"`+secrets[0]+`","email":"x@example.com","role":"admin"}`)
		e.ChangePassword(at, secrets[1], idptest.NewAlicePassword)
		e.ChangePassword(at, idptest.AlicePassword, secrets[2])
		e.Account("/account/password", "Bearer "+at, `{"current_password":"`+secrets[1]+`"}{}`)
		if r := e.ChangePassword(at, idptest.AlicePassword, idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.Status, r.Body)
		}
		e.Srv.Auditor().Flush() // token_issued rows are written behind the answer
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := json.Marshal(evs)
		logs := e.Logs.String()
		if len(evs) == 0 || logs == "" {
			t.Fatal("nothing was logged or audited")
		}
		for _, s := range append(secrets, idptest.AlicePassword) {
			for _, where := range []struct{ name, text string }{{"log", logs}, {"audit", string(rows)}} {
				if strings.Contains(where.text, s) {
					t.Errorf("the %s contains %q", where.name, s)
				}
				if j, _ := json.Marshal(s); strings.Contains(where.text, strings.Trim(string(j), `"`)) {
					t.Errorf("the %s contains %q JSON-escaped", where.name, s)
				}
			}
		}
	})
}
