package idp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/account"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// newAlicePassword passes the default policy and is not alice's current one.
const newAlicePassword = "a fresh and rather long passphrase 42"

// jsonObject marshals kv pairs as one JSON object, in order.
func jsonObject(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

// account posts a JSON body to an account endpoint.
func (e *env) account(path, auth, body string) response {
	e.t.Helper()
	return e.do(request{path: path, body: body, contentType: "application/json", auth: auth})
}

// changePassword posts to /account/password with a Bearer token.
func (e *env) changePassword(at, current, next string) response {
	e.t.Helper()
	return e.account("/account/password", "Bearer "+at, jsonObject("current_password", current, "new_password", next))
}

// checkAccountError is checkE1 for the account endpoints, whose codes also
// include invalid_password and not_found: status, JSON, no-store, the code,
// and nothing internal in the body.
func checkAccountError(t testing.TB, r response, wantStatus int, wantCode string) {
	t.Helper()
	if r.status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != web.ContentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("cache headers %q %q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	if code := r.str("error"); code != wantCode {
		t.Errorf("error %q, want %q (body %s)", code, wantCode, r.body)
	}
	if leaks.Match(r.body) {
		t.Errorf("body leaks internals: %s", r.body)
	}
}

func TestChangePasswordErrors(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		at := e.login().str("access_token")
		cc := e.token("CC", ccForm("scope", "read")).str("access_token")
		if cc == "" {
			t.Fatal("no client_credentials token")
		}
		good := jsonObject("current_password", alicePassword, "new_password", newAlicePassword)
		tests := []struct {
			name       string
			r          request
			wantStatus int
			wantCode   string
			wantRule   string
		}{
			{"no token", request{body: good}, 401, web.ErrInvalidToken, ""},
			{"not a token", request{body: good, auth: "Bearer nope"}, 401, web.ErrInvalidToken, ""},
			{"basic auth", request{body: good, auth: e.basic("C1")}, 401, web.ErrInvalidToken, ""},
			{"client credentials token", request{body: good, auth: "Bearer " + cc}, 403, web.ErrInsufficientScope, ""},
			{"token in query", request{body: good, query: "access_token=" + at}, 400, web.ErrInvalidRequest, ""},
			{"form body", request{body: url.Values{"current_password": {alicePassword}}.Encode(), auth: "Bearer " + at, contentType: ""}, 415, web.ErrInvalidRequest, ""},
			{"no current password", request{body: jsonObject("new_password", newAlicePassword), auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"empty new password", request{body: jsonObject("current_password", alicePassword, "new_password", ""), auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"unknown member", request{body: `{"current_password":"x","new_password":"y","username":"bob"}`, auth: "Bearer " + at}, 400, web.ErrInvalidRequest, ""},
			{"wrong current password", request{body: jsonObject("current_password", "not my password at all", "new_password", newAlicePassword), auth: "Bearer " + at}, 400, web.ErrInvalidGrant, ""},
			{"new password too short", request{body: jsonObject("current_password", alicePassword, "new_password", "short"), auth: "Bearer " + at}, 400, account.ErrInvalidPassword, password.RuleTooShort},
			{"new password same as current", request{body: jsonObject("current_password", alicePassword, "new_password", alicePassword), auth: "Bearer " + at}, 400, account.ErrInvalidPassword, account.RuleSameAsCurrent},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.r.path = "/account/password"
				if tt.r.contentType == "" && strings.HasPrefix(tt.r.body, "{") {
					tt.r.contentType = "application/json"
				}
				r := e.do(tt.r)
				checkAccountError(t, r, tt.wantStatus, tt.wantCode)
				if got := r.str("rule"); got != tt.wantRule {
					t.Errorf("rule %q, want %q", got, tt.wantRule)
				}
				if tt.wantStatus == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("401 without WWW-Authenticate: Bearer (%q)", r.header.Get("WWW-Authenticate"))
				}
			})
		}
		// Nothing above changed the password.
		e.login()
	})
}

func TestChangePassword(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		first := e.login()
		other := e.login() // a second session of alice's
		before := e.users["alice"]

		r := e.changePassword(first.str("access_token"), alicePassword, newAlicePassword)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
		}

		// Every refresh token of the user is dead, and so are the access
		// tokens bound to their families.
		for _, s := range []response{first, other} {
			checkE1(t, e.token("C1", refreshForm(s.str("refresh_token"))), 400, web.ErrInvalidGrant)
		}
		ui := e.do(request{method: http.MethodGet, path: "/userinfo", auth: "Bearer " + first.str("access_token"), contentType: "-"})
		if ui.status != http.StatusUnauthorized {
			t.Errorf("userinfo with a pre-change access token: %d %s", ui.status, ui.body)
		}
		// The old password no longer logs in; the new one does.
		checkE1(t, e.token("C1", passwordForm("alice", alicePassword)), 400, web.ErrInvalidGrant)
		if r := e.token("C1", passwordForm("alice", newAlicePassword)); r.status != http.StatusOK {
			t.Fatalf("login with the new password: %d %s", r.status, r.body)
		}

		u, err := e.db.User(t.Context(), before.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$`).MatchString(u.PasswordHash) {
			t.Errorf("stored hash is not argon2id: %.20s…", u.PasswordHash)
		}
		if !u.PasswordChangedAt.After(before.PasswordChangedAt.Time) {
			t.Errorf("PasswordChangedAt %v not after %v", u.PasswordChangedAt, before.PasswordChangedAt)
		}
		evs, err := e.db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.PasswordChanged)})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Subject != u.ID || evs[0].Actor != u.ID || evs[0].ClientID != "C1" {
			t.Errorf("password_changed events: %+v", evs)
		}
		revs, _ := e.db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.TokenRevoked)})
		if len(revs) != 1 || revs[0].Reason != storage.RevokePassword {
			t.Errorf("token_revoked events: %+v", revs)
		}
	})
}

// TestChangePasswordThrottle: a wrong current password is a failed login
// counted by the throttle every login path shares (BF-01), and an attempt
// the throttle refuses looks exactly like a wrong password (BF-03).
func TestChangePasswordThrottle(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		at := e.login().str("access_token")
		free := guard.DefaultPolicy().FreeFailures
		var wrong response
		for i := 0; i <= free; i++ { // free+1 failures: the (alice, IP) backoff starts
			wrong = e.changePassword(at, "not my password at all", newAlicePassword)
			checkAccountError(t, wrong, 400, web.ErrInvalidGrant)
		}
		evs, _ := e.db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.LoginFailed)})
		if len(evs) != free+1 || evs[0].Reason != "bad_password" {
			t.Errorf("login_failed events: %d %+v", len(evs), evs)
		}

		// The right current password is now refused, with the same answer.
		blocked := e.changePassword(at, alicePassword, newAlicePassword)
		if blocked.status != wrong.status || !bytes.Equal(blocked.body, wrong.body) {
			t.Errorf("blocked attempt %d %s, wrong password %d %s", blocked.status, blocked.body, wrong.status, wrong.body)
		}
		if blocked.header.Get("Retry-After") != "" {
			t.Error("a denied attempt carries Retry-After")
		}
		// The failures count for the password grant too.
		checkE1(t, e.token("C1", passwordForm("alice", alicePassword)), 400, web.ErrInvalidGrant)
		if u, _ := e.db.User(t.Context(), e.users["alice"].ID); u.PasswordHash != e.users["alice"].PasswordHash {
			t.Fatal("a refused attempt changed the password")
		}

		// The backoff lifts on its own (BF-04), and the change goes through.
		e.clock.Advance(time.Minute)
		if r := e.changePassword(at, alicePassword, newAlicePassword); r.status != http.StatusNoContent {
			t.Fatalf("change after the backoff: %d %s", r.status, r.body)
		}
	})
}

// TestPasswordPolicyRules: each rule of the policy surfaces by name, at
// registration and at change (PW-05 to PW-08).
func TestPasswordPolicyRules(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
		at := e.login().str("access_token")
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
				r := e.account("/account/register", "", jsonObject("username", user, "password", tt.pw, "email", "mail.box@example.com"))
				if tt.wantRule == "" {
					if r.status != http.StatusAccepted {
						t.Fatalf("register: %d %s", r.status, r.body)
					}
					return
				}
				checkAccountError(t, r, 400, account.ErrInvalidPassword)
				if r.str("rule") != tt.wantRule || r.str("error_description") == "" {
					t.Errorf("register: rule %q, want %q (body %s)", r.str("rule"), tt.wantRule, r.body)
				}
				if tt.wantRule == password.RuleContainsUsername || tt.wantRule == password.RuleContainsEmail {
					return // names alice does not have
				}
				r = e.changePassword(at, alicePassword, tt.pw)
				checkAccountError(t, r, 400, account.ErrInvalidPassword)
				if r.str("rule") != tt.wantRule {
					t.Errorf("change: rule %q, want %q (body %s)", r.str("rule"), tt.wantRule, r.body)
				}
			})
		}
		// A change names alice's own username and e-mail address.
		r := e.changePassword(at, alicePassword, "alice in wonderland again")
		if r.str("rule") != password.RuleContainsUsername {
			t.Errorf("change containing the username: %s", r.body)
		}
	})
}

// TestPasswordPolicyConfigured: Config.Policy replaces the defaults.
func TestPasswordPolicyConfigured(t *testing.T) {
	pol, err := password.NewPolicy(20)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, storagetest.Backends[0], func(c *Config) { c.Registration = true; c.Policy = pol })
	r := e.account("/account/register", "", jsonObject("username", "bob", "password", "nineteen characters", "email", "bob@example.com"))
	if r.str("rule") != password.RuleTooShort || !strings.Contains(r.str("error_description"), "20") {
		t.Errorf("19 characters under a 20-character minimum: %d %s", r.status, r.body)
	}
}

func TestRegister(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
		const pw = "my own long passphrase 7"
		r := e.account("/account/register", "", jsonObject("username", "Bob", "password", pw, "email", "Bob@Example.COM"))
		if r.status != http.StatusAccepted {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != web.ContentTypeJSON {
			t.Errorf("headers %v", r.header)
		}
		u, err := e.db.UserByUsername(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "Bob" || u.Email != "Bob@example.com" || u.EmailVerified || u.Disabled {
			t.Errorf("stored user %+v", u)
		}
		if !regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$`).MatchString(u.PasswordHash) {
			t.Errorf("stored hash is not argon2id: %.20s…", u.PasswordHash)
		}
		if r := e.token("C1", passwordForm("bob", pw)); r.status != http.StatusOK {
			t.Fatalf("login as the new user: %d %s", r.status, r.body)
		}
		evs, _ := e.db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.UserCreated)})
		if len(evs) != 1 || evs[0].Actor != account.ActorSelf || evs[0].Subject != u.ID || evs[0].Outcome != audit.OutcomeSuccess {
			t.Errorf("user_created events: %+v", evs)
		}

		// A taken name, however it is spelt, gets the same answer and
		// changes nothing (RR-10, PW-17).
		n, _ := e.db.CountUsers(t.Context())
		for _, name := range []string{"alice", "ALICE", "ａｌｉｃｅ", "Bob"} {
			taken := e.account("/account/register", "", jsonObject("username", name, "password", "somebody else's passphrase", "email", "x@example.com"))
			if taken.status != r.status || !bytes.Equal(taken.body, r.body) {
				t.Errorf("register taken %q: %d %s, new name: %d %s", name, taken.status, taken.body, r.status, r.body)
			}
		}
		if m, _ := e.db.CountUsers(t.Context()); m != n {
			t.Errorf("users %d, want %d", m, n)
		}
		e.login() // alice's password is untouched
		evs, _ = e.db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.UserCreated)})
		if len(evs) != 5 || evs[0].Outcome != audit.OutcomeFailure || evs[0].Reason != "username_taken" {
			t.Errorf("user_created events after taken names: %d, newest %+v", len(evs), evs[0])
		}

		// A name no account can have is refused as a bad request.
		for _, name := range []string{"alice ", "al ice", "bob\u0007", strings.Repeat("b", manage.MaxUsernameLength+1)} {
			checkAccountError(t, e.account("/account/register", "", jsonObject("username", name, "password", pw, "email", "b@example.com")), 400, web.ErrInvalidRequest)
		}
		if r := e.do(request{method: http.MethodGet, path: "/account/register", contentType: "-"}); r.status != http.StatusMethodNotAllowed {
			t.Errorf("GET /account/register: %d", r.status)
		}
	})
}

// TestRegisterEmail is AC-R1: addresses that inject headers or confuse
// are refused; case and sub-addresses are kept as documented.
func TestRegisterEmail(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
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
				r := e.account("/account/register", "", jsonObject("username", user, "password", "a perfectly fine passphrase", "email", tt.email))
				if tt.want == "" {
					checkAccountError(t, r, 400, web.ErrInvalidRequest)
					if strings.Contains(string(r.body), "evil") {
						t.Errorf("the body repeats the address: %s", r.body)
					}
					if _, err := e.db.UserByUsername(t.Context(), user); err == nil {
						t.Error("a user was created")
					}
					return
				}
				if r.status != http.StatusAccepted {
					t.Fatalf("register: %d %s", r.status, r.body)
				}
				u, err := e.db.UserByUsername(t.Context(), user)
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
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
		at := e.login().str("access_token")
		const pw = "a perfectly fine passphrase"
		reg := `"username":"carol","password":"` + pw + `","email":"carol@example.com"`
		deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
		tests := []struct {
			name, body string
		}{
			{"mass assignment role", `{` + reg + `,"role":"admin"}`},
			{"mass assignment email_verified", `{` + reg + `,"email_verified":true}`},
			{"mass assignment id", `{` + reg + `,"id":"` + e.users["alice"].ID + `"}`},
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
				checkAccountError(t, e.account("/account/register", "", tt.body), 400, web.ErrInvalidRequest)
			})
		}
		if _, err := e.db.UserByUsername(t.Context(), "carol"); err == nil {
			t.Error("a refused body created carol")
		}
		if _, err := e.db.UserByUsername(t.Context(), "admin"); err == nil {
			t.Error("a refused body created admin")
		}

		change := `"current_password":"` + alicePassword + `","new_password":"` + newAlicePassword + `"`
		for _, tt := range []struct{ name, body string }{
			{"extra member", `{` + change + `,"username":"bob"}`},
			{"duplicate key", `{` + change + `,"new_password":"another long passphrase"}`},
			{"case-variant key", `{"Current_Password":"` + alicePassword + `","new_password":"` + newAlicePassword + `"}`},
			{"number", `{"current_password":1e400,"new_password":"` + newAlicePassword + `"}`},
			{"trailing data", `{` + change + `}{}`},
		} {
			t.Run("password/"+tt.name, func(t *testing.T) {
				checkAccountError(t, e.account("/account/password", "Bearer "+at, tt.body), 400, web.ErrInvalidRequest)
			})
		}
		e.login() // alice's password is unchanged

		// Media type and size.
		r := e.do(request{path: "/account/register", body: `{` + reg + `}`, contentType: "text/plain"})
		checkAccountError(t, r, http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		r = e.do(request{path: "/account/register", body: `{` + reg + `}`, contentType: "application/json; charset=latin1"})
		checkAccountError(t, r, http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		r = e.account("/account/register", "", `{"username":"`+strings.Repeat("a", 100<<10)+`"}`)
		checkAccountError(t, r, http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)
		r = e.account("/account/register?username=carol", "", `{`+reg+`}`)
		checkAccountError(t, r, http.StatusBadRequest, web.ErrInvalidRequest)
		r = e.do(request{path: "/account/register", body: `{` + reg + `}`, contentType: "application/json; charset=utf-8"})
		if r.status != http.StatusAccepted {
			t.Errorf("charset=utf-8: %d %s", r.status, r.body)
		}
	})
}

// TestRegisterRace is AC-R3: 20 parallel registrations of one username
// make exactly one account and get the same answer.
func TestRegisterRace(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
		before, _ := e.db.CountUsers(t.Context())
		const n = 20
		type result struct {
			status int
			body   []byte
			err    error
		}
		results := make(chan result, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				body := jsonObject("username", "racer", "password", "racing passphrase number "+string(rune('a'+i)), "email", "racer@example.com")
				resp, err := http.Post(e.url+"/account/register", "application/json", strings.NewReader(body))
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				results <- result{status: resp.StatusCode, body: buf.Bytes()}
			}()
		}
		close(start)
		var first result
		for i := range n {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != http.StatusAccepted {
				t.Errorf("registration %d: %d %s", i, r.status, r.body)
			}
			if i == 0 {
				first = r
			} else if !bytes.Equal(r.body, first.body) {
				t.Errorf("bodies differ: %s and %s", r.body, first.body)
			}
		}
		after, _ := e.db.CountUsers(t.Context())
		if after != before+1 {
			t.Errorf("users %d → %d, want exactly one more", before, after)
		}
		if _, err := e.db.UserByUsername(t.Context(), "racer"); err != nil {
			t.Error(err)
		}
	})
}

// TestRegisterThrottle: registrations are limited per IP (BF-09) with 429
// and Retry-After; refused bodies are not counted, and the limit leaves
// the IP's logins alone.
func TestRegisterThrottle(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) {
			c.Registration = true
			c.Throttle.IPFailures, c.Throttle.IPWindow = 3, 10*time.Minute
		})
		reg := func(name string) response {
			return e.account("/account/register", "", jsonObject("username", name, "password", "a perfectly fine passphrase", "email", "x@example.com"))
		}
		for range 5 {
			checkAccountError(t, e.account("/account/register", "", `{"username":"nobody"}`), 400, web.ErrInvalidRequest)
		}
		for _, name := range []string{"u1", "u2", "alice"} { // a taken name counts too
			if r := reg(name); r.status != http.StatusAccepted {
				t.Fatalf("register %s: %d %s", name, r.status, r.body)
			}
		}
		r := reg("u4")
		checkAccountError(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After %q", ra)
		}
		if _, err := e.db.UserByUsername(t.Context(), "u4"); err == nil {
			t.Error("a throttled registration created a user")
		}
		e.login() // logins from the IP are unaffected

		e.clock.Advance(11 * time.Minute)
		if r := reg("u5"); r.status != http.StatusAccepted {
			t.Errorf("register after the window: %d %s", r.status, r.body)
		}
	})
}

func TestRegistrationOff(t *testing.T) {
	e := newEnv(t, storagetest.Backends[0])
	body := jsonObject("username", "bob", "password", "a perfectly fine passphrase", "email", "bob@example.com")
	checkAccountError(t, e.account("/account/register", "", body), http.StatusNotFound, "not_found")
	r := e.do(request{method: http.MethodGet, path: "/account/register", contentType: "-"})
	checkAccountError(t, r, http.StatusNotFound, "not_found")
	if _, err := e.db.UserByUsername(t.Context(), "bob"); err == nil {
		t.Error("registration off, and bob exists")
	}
	// Without a password hasher neither endpoint exists.
	e = newEnv(t, storagetest.Backends[0], func(c *Config) { c.Registration = true; c.Passwords = nil })
	checkAccountError(t, e.account("/account/register", "", body), http.StatusNotFound, "not_found")
}

// TestAccountSecretsNotLogged (LG-04): no password sent to the account
// endpoints, nor the access token, reaches the log or an audit row.
func TestAccountSecretsNotLogged(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) { c.Registration = true })
		at := e.login().str("access_token")
		secrets := []string{
			"registered passphrase one", "wrong current passphrase", "rejected-short", newAlicePassword,
			"unicode pässwörd ☃ long enough", at,
		}
		e.account("/account/register", "", jsonObject("username", "dora", "password", secrets[0], "email", "dora@example.com"))
		e.account("/account/register", "", jsonObject("username", "alice", "password", secrets[4], "email", "a@example.com"))
		e.account("/account/register", "", jsonObject("username", "erin", "password", secrets[2], "email", "erin@example.com"))
		e.account("/account/register", "", `{"username":"x","password":"`+secrets[0]+`","email":"x@example.com","role":"admin"}`)
		e.changePassword(at, secrets[1], newAlicePassword)
		e.changePassword(at, alicePassword, secrets[2])
		e.account("/account/password", "Bearer "+at, `{"current_password":"`+secrets[1]+`"}{}`)
		if r := e.changePassword(at, alicePassword, newAlicePassword); r.status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		e.srv.Auditor().Flush() // token_issued rows are written behind the answer
		evs, err := e.db.AuditEvents(t.Context(), storage.AuditFilter{Limit: storage.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := json.Marshal(evs)
		logs := e.logs.String()
		if len(evs) == 0 || logs == "" {
			t.Fatal("nothing was logged or audited")
		}
		for _, s := range append(secrets, alicePassword) {
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
