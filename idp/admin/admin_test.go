package admin_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAdminAuthorization is AD-01, AD-04 and LG-02: every admin route
// refuses a missing, bad, user, non-admin or wrong-audience token, and
// the refusals are logged.
func TestAdminAuthorization(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		alice := e.Users["alice"].ID
		routes := []struct{ method, path, body string }{
			{"GET", "/admin/v1/users", ""},
			{"GET", "/admin/v1/users/" + alice, ""},
			{"PATCH", "/admin/v1/users/" + alice, `{"email_verified":true}`},
			{"DELETE", "/admin/v1/users/" + e.Users["dave-disabled"].ID, ""},
			{"POST", "/admin/v1/users/" + alice + "/unlock", ""},
			{"GET", "/admin/v1/users/" + alice + "/sessions", ""},
			{"DELETE", "/admin/v1/users/" + alice + "/sessions", ""},
			{"GET", "/admin/v1/clients", ""},
			{"POST", "/admin/v1/clients", `{"client_id":"new1","grant_types":["client_credentials"]}`},
			{"GET", "/admin/v1/clients/C2", ""},
			{"PATCH", "/admin/v1/clients/C2", `{"name":"second"}`},
			{"GET", "/admin/v1/audit", ""},
			{"GET", "/admin/v1/keys", ""},
			{"POST", "/admin/v1/keys/rotate", `{"force":false}`},
			{"POST", "/admin/v1/keys/nosuchkid/revoke", ""},
		}
		userTok := e.Login("scope", "openid read").Str("access_token")
		tokens := []struct {
			name, tok  string
			status     int
			code, auth string // auth: what WWW-Authenticate must contain
		}{
			{"no token", "", 401, web.ErrInvalidToken, `Bearer realm="keyward"`},
			{"garbage token", "not.a.jwt", 401, web.ErrInvalidToken, `error="invalid_token"`},
			{"user token (password grant)", userTok, 403, web.ErrInsufficientScope, `error="insufficient_scope"`},
			{"client token without the admin scope", e.CCToken("CC"), 403, web.ErrInsufficientScope, `error="insufficient_scope"`},
			{"admin scope for another audience (AD-04)", e.CCToken("OPSRS"), 401, web.ErrInvalidToken, `error="invalid_token"`},
			{"a user token claiming the admin scope", e.SignClaims("at+jwt", map[string]any{
				"iss": e.URL, "sub": alice, "aud": e.URL, "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
				"jti": "forged-1", "client_id": "C1", "scope": manage.ScopeAdmin}), 403, web.ErrInsufficientScope, `error="insufficient_scope"`},
		}
		for _, tk := range tokens {
			for _, rt := range routes {
				t.Run(tk.name+"/"+rt.method+" "+rt.path, func(t *testing.T) {
					before := strings.Count(e.Logs.String(), `"admin authorization failed"`)
					r := e.Call(rt.method, rt.path, tk.tok, rt.body)
					idptest.Want(t, r, tk.status, tk.code)
					if h := r.Header.Get("WWW-Authenticate"); !strings.Contains(h, tk.auth) {
						t.Errorf("WWW-Authenticate %q, want it to contain %s", h, tk.auth)
					}
					if after := strings.Count(e.Logs.String(), `"admin authorization failed"`); after != before+1 {
						t.Errorf("%d authorization-failure log records, want 1 (LG-02)", after-before)
					}
				})
			}
		}
		ops := e.OpsToken()
		for _, rt := range routes {
			r := e.Call(rt.method, rt.path, ops, rt.body)
			if r.Status == 401 || r.Status == 403 {
				t.Errorf("admin token on %s %s: %d %s", rt.method, rt.path, r.Status, r.Body)
			}
		}
		// Nothing sets a password, under any route (AD-06).
		for _, m := range []string{"PUT", "POST", "PATCH"} {
			if r := e.Call(m, "/admin/v1/users/"+alice+"/password", ops, `{"password":"x"}`); r.Status != 404 && r.Status != 405 {
				t.Errorf("%s .../password: %d", m, r.Status)
			}
		}
		// An admin client that loses the scope or is disabled loses the
		// API at once, whatever its tokens say (AD-11).
		idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/OPS", ops, `{"disabled":true}`), 200, "")
		idptest.Want(t, e.Call("GET", "/admin/v1/users", ops, ""), 401, web.ErrInvalidToken)
	})
}

// TestAdminUsers covers the user routes' happy paths, 404s and the
// session revocation of disable and sign-out-everywhere.
func TestAdminUsers(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		alice := e.Users["alice"].ID

		r := e.Call("GET", "/admin/v1/users?limit=2&offset=0", ops, "")
		idptest.Want(t, r, 200, "")
		if us, _ := r.JSON["users"].([]any); len(us) != 2 {
			t.Fatalf("limit 2 gave %s", r.Body)
		}
		idptest.Want(t, e.Call("GET", "/admin/v1/users?limit=0", ops, ""), 400, web.ErrInvalidRequest)
		idptest.Want(t, e.Call("GET", "/admin/v1/users?limit=5000", ops, ""), 400, web.ErrInvalidRequest)
		idptest.Want(t, e.Call("GET", "/admin/v1/users?role=admin", ops, ""), 400, web.ErrInvalidRequest)

		r = e.Call("GET", "/admin/v1/users/"+alice, ops, "")
		idptest.Want(t, r, 200, "")
		if r.Str("username") != "alice" || r.Str("id") != alice {
			t.Errorf("user view %s", r.Body)
		}

		// PATCH: a new email for an account with a verified one stays
		// pending until verified (issue 14); the old one stays, verified,
		// and a verification link goes to the new one.
		r = e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"email":"alice@Example.ORG"}`)
		idptest.Want(t, r, 200, "")
		if r.Str("email") != "alice@example.com" || r.JSON["email_verified"] != true || r.Str("email_pending") != "alice@example.org" {
			t.Errorf("after email change: %s", r.Body)
		}
		e.WantAudit(t, audit.UserUpdated, 1, alice, "email")
		e.WantAudit(t, audit.EmailVerificationSent, 1, alice, "")
		// Vouched for by the administrator, it is set verified at once.
		r = e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"email":"alice@example.net","email_verified":true}`)
		idptest.Want(t, r, 200, "")
		if r.Str("email") != "alice@example.net" || r.JSON["email_verified"] != true || r.Str("email_pending") != "" {
			t.Errorf("after a vouched email change: %s", r.Body)
		}
		idptest.Want(t, e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"email":"not an address"}`), 400, web.ErrInvalidRequest)

		// Sessions: list, then sign out everywhere; refresh fails after.
		rt := e.Login().Str("refresh_token")
		r = e.Call("GET", "/admin/v1/users/"+alice+"/sessions", ops, "")
		idptest.Want(t, r, 200, "")
		if ss, _ := r.JSON["sessions"].([]any); len(ss) != 1 || ss[0].(map[string]any)["client_id"] != "C1" || ss[0].(map[string]any)["grant"] != "password" {
			t.Fatalf("sessions %s", r.Body)
		}
		r = e.Call("DELETE", "/admin/v1/users/"+alice+"/sessions", ops, "")
		idptest.Want(t, r, 200, "")
		if r.JSON["revoked"] != 1.0 {
			t.Errorf("revoked %s", r.Body)
		}
		e.WantAudit(t, audit.TokenRevoked, 1, alice, storage.RevokeSignOut)
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt)), 400, web.ErrInvalidGrant)

		// Disable revokes the sessions for good (enable brings none back).
		rt = e.Login().Str("refresh_token")
		idptest.Want(t, e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"disabled":true}`), 200, "")
		e.WantAudit(t, audit.UserUpdated, 3, alice, "disabled")
		e.WantAudit(t, audit.TokenRevoked, 2, alice, storage.RevokeUserDisabled)
		idptest.Want(t, e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"disabled":false}`), 200, "")
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt)), 400, web.ErrInvalidGrant)
		e.Login() // enabled again

		// Delete; a deleted id answers exactly as one that never existed.
		bob := e.AddUser("bob", idptest.AlicePassword, false).ID
		idptest.Want(t, e.Call("DELETE", "/admin/v1/users/"+bob, ops, ""), 204, "")
		e.WantAudit(t, audit.UserDeleted, 1, bob, "")
		for _, path := range []string{"/admin/v1/users/" + bob, "/admin/v1/users/" + storage.NewID(), "/admin/v1/users/%00x"} {
			gone := e.Call("GET", path, ops, "")
			idptest.Want(t, gone, 404, "not_found")
			if string(gone.Body) != `{"error":"not_found","error_description":"no such user"}`+"\n" {
				t.Errorf("GET %s: %s", path, gone.Body)
			}
		}
		idptest.Want(t, e.Call("DELETE", "/admin/v1/users/"+bob, ops, ""), 404, "not_found")
		idptest.Want(t, e.Call("PATCH", "/admin/v1/users/"+bob, ops, `{"disabled":true}`), 404, "not_found")
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+bob+"/unlock", ops, ""), 404, "not_found")
		idptest.Want(t, e.Call("DELETE", "/admin/v1/users/"+bob+"/sessions", ops, ""), 404, "not_found")
	})
}

// TestAdminStrictJSON is AC-A1 and AD-06 on the PATCH bodies: each case is
// 400 (415 for the media type) and changes nothing.
func TestAdminStrictJSON(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		alice := e.Users["alice"].ID
		deep := `{"email":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
		tests := []struct {
			name, path, body string
			status           int
		}{
			{"extra field", "users", `{"role":"admin"}`, 400},
			{"mass assignment", "users", `{"role":"admin","email_verified":true,"tenant_id":"B"}`, 400},
			{"duplicate key", "users", `{"disabled":true,"disabled":false}`, 400},
			{"case-variant key", "users", `{"Disabled":true}`, 400},
			{"case-variant duplicate", "users", `{"disabled":false,"DISABLED":true}`, 400},
			{"wrong type string", "users", `{"disabled":"true"}`, 400},
			{"wrong type number", "users", `{"email_verified":1}`, 400},
			{"null", "users", `{"email":null}`, 400},
			{"number out of range", "users", `{"disabled":1e400}`, 400},
			{"trailing object", "users", `{"disabled":true}{"disabled":false}`, 400},
			{"trailing garbage", "users", `{"disabled":true} x`, 400},
			{"10,000-deep nesting", "users", deep, 400},
			{"NUL in email", "users", `{"email":"alice\u0000@example.com"}`, 400},
			{"CRLF in email", "users", `{"email":"alice@example.com\r\nBcc: x@evil.test"}`, 400},
			{"invalid UTF-8", "users", "{\"email\":\"al\xffice@example.com\"}", 400},
			{"password field", "users", `{"password":"new password here"}`, 400},
			{"password array", "users", `{"password":["a","b"]}`, 400},
			{"password hash", "users", `{"password_hash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"}`, 400},
			{"empty object", "users", `{}`, 400},
			{"not an object", "users", `[{"disabled":true}]`, 400},
			{"not JSON", "users", `disabled=true`, 400},
			{"client secret", "clients", `{"client_secret":"kwcs_mine"}`, 400},
			{"client jwks_uri", "clients", `{"jwks_uri":"https://evil.test/jwks"}`, 400},
			{"unknown grant (AD-07)", "clients", `{"grant_types":["implicit"]}`, 400},
			{"password grant on a public client", "clients", `{"grant_types":["password"]}`, 400},
			{"scope with a space", "clients", `{"scopes":["read write"]}`, 400},
			{"grant types not a list", "clients", `{"grant_types":"password"}`, 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := "/admin/v1/users/" + alice
				if tt.path == "clients" {
					path = "/admin/v1/clients/pub1"
				}
				start := time.Now()
				r := e.Call("PATCH", path, ops, tt.body)
				idptest.Want(t, r, tt.status, web.ErrInvalidRequest)
				if d := time.Since(start); d > time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
		t.Run("media type", func(t *testing.T) {
			r := e.Do(idptest.Request{Method: "PATCH", Path: "/admin/v1/users/" + alice, Body: `{"disabled":true}`,
				ContentType: "text/plain", Auth: "Bearer " + ops})
			idptest.Want(t, r, http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		})
		u, err := e.DB.User(t.Context(), alice)
		if err != nil || u.Disabled || u.Email != "alice@example.com" || !u.EmailVerified {
			t.Errorf("alice changed: %+v %v", u, err)
		}
		c, err := e.DB.Client(t.Context(), "pub1")
		if err != nil || c.Disabled || !c.GrantTypes.Has(manage.GrantRefreshToken) || len(c.GrantTypes) != 1 {
			t.Errorf("pub1 changed: %+v %v", c, err)
		}
		if n := len(e.AuditRows(audit.UserUpdated)) + len(e.AuditRows(audit.ClientUpdated)); n != 0 {
			t.Errorf("%d update rows for refused requests", n)
		}
	})
}

// TestAdminUnlock drives an account into the login throttle through the
// token endpoint, unlocks it through the admin API, and signs in.
func TestAdminUnlock(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b, func(c *idp.Config) {
			c.Throttle = guard.Policy{FreeFailures: 2, BaseDelay: time.Hour, MaxDelay: time.Hour}
		})
		ops := e.OpsToken()
		for range 3 {
			idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", "wrong password")), 400, web.ErrInvalidGrant)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), 400, web.ErrInvalidGrant) // throttled
		alice := e.Users["alice"].ID
		r := e.Call("POST", "/admin/v1/users/"+alice+"/unlock", ops, "")
		idptest.Want(t, r, 200, "")
		e.WantAudit(t, audit.UserUnlocked, 1, alice, "")
		e.Login()
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+alice+"/unlock", ops, `{"x":1}`), 400, web.ErrInvalidRequest)
	})
}

// TestAdminClients covers the client routes: views without secrets,
// CheckClient on PATCH, the audited password grant (TE-14), disable
// revoking sessions for good (CA-09), and creation.
func TestAdminClients(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()

		r := e.Call("GET", "/admin/v1/clients", ops, "")
		idptest.Want(t, r, 200, "")
		if cs, _ := r.JSON["clients"].([]any); len(cs) < 10 {
			t.Errorf("clients %s", r.Body)
		}
		r = e.Call("GET", "/admin/v1/clients/C1", ops, "")
		idptest.Want(t, r, 200, "")
		if r.Str("client_id") != "C1" || r.Str("token_endpoint_auth_method") != storage.AuthSecretBasic {
			t.Errorf("client view %s", r.Body)
		}
		if _, ok := r.JSON["client_secret"]; ok {
			t.Errorf("client view has a secret: %s", r.Body)
		}
		idptest.Want(t, e.Call("GET", "/admin/v1/clients/nope", ops, ""), 404, "not_found")

		// TE-14: enabling the password grant is audited as such.
		r = e.Call("PATCH", "/admin/v1/clients/CC", ops, `{"grant_types":["client_credentials","password"],"name":"batch"}`)
		idptest.Want(t, r, 200, "")
		e.WantAudit(t, audit.ClientUpdated, 1, "CC", "password_grant_enabled")
		if !strings.Contains(e.Logs.String(), "password_grant_enabled") {
			t.Error("the password-grant enablement is not in the log")
		}
		// A change CheckClient refuses changes nothing.
		idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/CC", ops, `{"grant_types":["implicit"]}`), 400, web.ErrInvalidRequest)
		if c, _ := e.DB.Client(t.Context(), "CC"); !c.GrantTypes.Has(manage.GrantPassword) || c.Name != "batch" {
			t.Errorf("CC after a refused patch: %+v", c)
		}

		// CA-09: disabling C1 ends its sessions; enabling does not revive them.
		rt := e.Login().Str("refresh_token")
		idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/C1", ops, `{"disabled":true}`), 200, "")
		e.WantAudit(t, audit.ClientUpdated, 2, "C1", "disabled")
		e.WantAudit(t, audit.TokenRevoked, 1, "C1", storage.RevokeClient)
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt)), 401, web.ErrInvalidClient)
		idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/C1", ops, `{"disabled":false}`), 200, "")
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt)), 400, web.ErrInvalidGrant)

		// Creation shows the secret once, and it works.
		r = e.Call("POST", "/admin/v1/clients", ops, `{"client_id":"svc","grant_types":["client_credentials"],"scopes":["read"]}`)
		idptest.Want(t, r, 201, "")
		secret := r.Str("client_secret")
		if !strings.HasPrefix(secret, manage.ClientSecretPrefix) {
			t.Fatalf("create: %s", r.Body)
		}
		e.Bodies = e.Bodies[:len(e.Bodies)-1] // the one answer that shows a secret
		e.Secrets["svc"] = secret
		e.WantAudit(t, audit.ClientCreated, 1, "svc", "")
		e.CCToken("svc")
		if r := e.Call("GET", "/admin/v1/clients/svc", ops, ""); strings.Contains(string(r.Body), `"client_secret"`) || strings.Contains(string(r.Body), secret) {
			t.Errorf("secret shown again: %s", r.Body)
		}
		idptest.Want(t, e.Call("POST", "/admin/v1/clients", ops, `{"client_id":"svc"}`), 409, web.ErrInvalidRequest)
		idptest.Want(t, e.Call("POST", "/admin/v1/clients", ops, `{"client_id":"x","grant_types":["implicit"]}`), 400, web.ErrInvalidRequest)
	})
}

// TestAdminAudit reads the trail through the API and checks its filters.
func TestAdminAudit(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		alice := e.Users["alice"].ID
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+alice+"/unlock", ops, ""), 200, "")
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+alice+"/unlock", ops, ""), 200, "")

		r := e.Call("GET", "/admin/v1/audit?type=user_unlocked&user="+alice+"&since=2020-01-01T00:00:00Z", ops, "")
		idptest.Want(t, r, 200, "")
		evs, _ := r.JSON["events"].([]any)
		if len(evs) != 2 {
			t.Fatalf("events %s", r.Body)
		}
		first, second := evs[0].(map[string]any), evs[1].(map[string]any)
		if first["actor"] != "client:OPS" || first["id"].(float64) <= second["id"].(float64) {
			t.Errorf("not newest first, or no actor: %s", r.Body)
		}
		r = e.Call("GET", "/admin/v1/audit?type=user_unlocked&limit=1&before_id="+
			strconv.FormatInt(int64(first["id"].(float64)), 10), ops, "")
		idptest.Want(t, r, 200, "")
		if evs, _ := r.JSON["events"].([]any); len(evs) != 1 || evs[0].(map[string]any)["id"] != second["id"] {
			t.Errorf("page 2: %s", r.Body)
		}
		for _, q := range []string{"type=bogus", "since=yesterday", "since=24h", "limit=0", "limit=1001", "before_id=-1", "actor=x", "type=a&type=b"} {
			idptest.Want(t, e.Call("GET", "/admin/v1/audit?"+q, ops, ""), 400, web.ErrInvalidRequest)
		}
	})
}

// TestAdminKeys lists, rotates and revokes signing keys.
func TestAdminKeys(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		r := e.Call("GET", "/admin/v1/keys", ops, "")
		idptest.Want(t, r, 200, "")
		states := map[string]string{}
		for _, k := range r.JSON["keys"].([]any) {
			k := k.(map[string]any)
			states[k["kid"].(string)] = k["state"].(string)
		}
		if states[e.Kid] != "active" {
			t.Fatalf("keys %s, want %s active", r.Body, e.Kid)
		}
		// The next key was published just now: the rotation is scheduled
		// (TestAdminRotateScheduled follows it through).
		r = e.Call("POST", "/admin/v1/keys/rotate", ops, "")
		idptest.Want(t, r, 202, "")
		if r.JSON["scheduled"] != true || r.Str("retired") != e.Kid || r.Str("active") == e.Kid || r.Str("active") == "" {
			t.Fatalf("rotate without force %s", r.Body)
		}
		e.WantAudit(t, audit.KeyRotationScheduled, 1, r.Str("active"), "at ")
		idptest.Want(t, e.Call("POST", "/admin/v1/keys/rotate", ops, `{"force":"yes"}`), 400, web.ErrInvalidRequest)
		r = e.Call("POST", "/admin/v1/keys/rotate", ops, `{"force":true}`)
		idptest.Want(t, r, 200, "")
		if r.Str("retired") != e.Kid || r.Str("active") == e.Kid || r.JSON["forced"] != true || r.JSON["scheduled"] != false {
			t.Fatalf("rotate %s", r.Body)
		}
		e.WantAudit(t, audit.KeyRotated, 1, r.Str("active"), "forced")
		next := r.Str("next")
		idptest.Want(t, e.Call("POST", "/admin/v1/keys/nosuchkid/revoke", ops, ""), 404, "not_found")
		r = e.Call("POST", "/admin/v1/keys/"+next+"/revoke", ops, "")
		idptest.Want(t, r, 200, "")
		e.WantAudit(t, audit.KeyRevoked, 1, next, "was next")
		// The token signed before the rotation is still good: its key is retired, not revoked.
		idptest.Want(t, e.Call("GET", "/admin/v1/keys", ops, ""), 200, "")
	})
}

// TestAdminRotateScheduled: a rotation asked for before the next key was
// published for the JWKS max-age plus margin (30s + 5s) is accepted (202)
// and scheduled for that moment, and the server's key schedule (Manager.Run)
// carries it out then, without a second request.
func TestAdminRotateScheduled(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		var km *keys.Manager
		e := idptest.NewAdmin(t, b, func(c *idp.Config) {
			// The keys in a database of their own, on the server's clock.
			var err error
			p := keys.Policy{JWKSMaxAge: 30 * time.Second, PublishMargin: 5 * time.Second}
			if km, err = keys.NewManager(t.Context(), storagetest.Open(t, b.DSN(t)), keys.NewKEK(), p, nil, c.Now); err != nil {
				t.Fatal(err)
			}
			c.Keys, c.KeyRotator = km, km
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go km.Run(ctx)

		asked := e.Clock.Now()
		r := e.Call("POST", "/admin/v1/keys/rotate", e.OpsToken(), "")
		idptest.Want(t, r, 202, "")
		at, err := time.Parse(time.RFC3339Nano, r.Str("at"))
		next := r.Str("active")
		if err != nil || r.JSON["scheduled"] != true || r.JSON["forced"] != false || r.Str("retired") != e.Kid || next == "" || next == e.Kid ||
			at.Before(asked.Add(30*time.Second)) || at.After(asked.Add(35*time.Second)) {
			t.Fatalf("rotate %s asked at %v: want it scheduled for 35s after the key set was made", r.Body, asked)
		}
		e.WantAudit(t, audit.KeyRotationScheduled, 1, next, "at "+at.UTC().Format(time.RFC3339))
		// The listing shows the plan: the active key retires and the next
		// key activates at that moment.
		r = e.Call("GET", "/admin/v1/keys", e.OpsToken(), "")
		byState := map[string]map[string]any{}
		for _, k := range r.JSON["keys"].([]any) {
			byState[k.(map[string]any)["state"].(string)] = k.(map[string]any)
		}
		if a, n := byState["active"], byState["next"]; a["kid"] != e.Kid || n["kid"] != next ||
			!jsonTimeIs(a["retires_at"], at) || !jsonTimeIs(n["activates_at"], at) {
			t.Fatalf("keys %s: want %s retiring and %s activating at %v", r.Body, e.Kid, next, at)
		}
		if idptest.ActiveKid(t, km) != e.Kid {
			t.Fatal("the rotation happened before its moment")
		}

		e.Clock.Advance(at.Sub(e.Clock.Now()) + time.Millisecond)
		deadline := time.Now().Add(15 * time.Second) // Run polls every 5s
		for idptest.ActiveKid(t, km) != next {
			if time.Now().After(deadline) {
				t.Fatalf("the scheduled rotation was not carried out: %s still signs", idptest.ActiveKid(t, km))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func jsonTimeIs(v any, want time.Time) bool {
	s, _ := v.(string)
	got, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && got.Equal(want)
}

// TestAdminNoKeyRotator: without a KeyRotator the key routes are 404.
func TestAdminNoKeyRotator(t *testing.T) {
	e := idptest.NewAdmin(t, storagetest.Backends[0], func(c *idp.Config) { c.KeyRotator = nil })
	idptest.Want(t, e.Call("GET", "/admin/v1/keys", e.OpsToken(), ""), 404, "not_found")
}
