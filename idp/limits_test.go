package idp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// padForm appends an unknown parameter (ignored, TE-07) to form so the body
// is exactly size bytes.
func padForm(t testing.TB, form string, size int) string {
	t.Helper()
	n := size - len(form) - len("&pad=")
	if n < 0 {
		t.Fatalf("form of %d bytes does not fit in %d", len(form), size)
	}
	return form + "&pad=" + strings.Repeat("x", n)
}

// oauthEndpoints are the /oauth2/* endpoints with a request each that
// succeeds, so a padded copy shows where the cap lies.
func oauthEndpoints(e *idptest.Env) []struct{ name, path, auth, form string } {
	login := e.Login()
	return []struct{ name, path, auth, form string }{
		{"token", "/oauth2/token", e.Basic("CC"), "grant_type=client_credentials"},
		{"revoke", "/oauth2/revoke", e.Basic("C1"), "token=" + url.QueryEscape(login.Str("refresh_token"))},
		{"introspect", "/oauth2/introspect", e.Basic("C1"), "token=" + url.QueryEscape(login.Str("access_token"))},
	}
}

// TestBodyCap is IN-01 on the OAuth endpoints: a body of exactly 16 KiB is
// served, one byte more is 413 with an RFC 6749 JSON error, no-store and
// Pragma: no-cache (idptest.CheckE1), and a 1 MB form is refused as quickly.
func TestBodyCap(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		for _, ep := range oauthEndpoints(e) {
			t.Run(ep.name, func(t *testing.T) {
				t.Run("at the cap", func(t *testing.T) {
					r := e.Do(idptest.Request{Path: ep.path, Auth: ep.auth, Body: padForm(t, ep.form, idp.MaxOAuthBody)})
					if r.Status != http.StatusOK {
						t.Errorf("status %d, want 200 (body %s)", r.Status, r.Body)
					}
				})
				t.Run("one byte over", func(t *testing.T) {
					r := e.Do(idptest.Request{Path: ep.path, Auth: ep.auth, Body: padForm(t, ep.form, idp.MaxOAuthBody+1)})
					idptest.CheckE1(t, r, http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)
				})
				t.Run("1 MB", func(t *testing.T) {
					start := time.Now()
					r := e.Do(idptest.Request{Path: ep.path, Auth: ep.auth, Body: padForm(t, ep.form, 1<<20)})
					idptest.CheckE1(t, r, http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)
					if d := time.Since(start); d > time.Second {
						t.Errorf("took %v", d)
					}
				})
			})
		}
	})
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestBodyCapReadsLittle is IN-01's "memory stays flat": a 1 MB form, sent
// with and without a Content-Length, is refused after reading at most the
// cap plus one byte of it.
func TestBodyCapReadsLittle(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	for _, ep := range oauthEndpoints(e) {
		for _, length := range []bool{true, false} {
			name := ep.name + "/chunked"
			if length {
				name = ep.name + "/content-length"
			}
			t.Run(name, func(t *testing.T) {
				body := &countingReader{r: strings.NewReader(padForm(t, ep.form, 1<<20))}
				req := httptest.NewRequest(http.MethodPost, ep.path, body)
				req.ContentLength = -1
				if length {
					req.ContentLength = 1 << 20
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", ep.auth)
				w := serveDirect(e, req)
				if w.Code != http.StatusRequestEntityTooLarge {
					t.Errorf("status %d, want 413 (body %s)", w.Code, w.Body)
				}
				if n := body.n.Load(); n > idp.MaxOAuthBody+1 {
					t.Errorf("read %d bytes of the body, want at most %d", n, idp.MaxOAuthBody+1)
				}
			})
		}
	}
}

// TestBodyCapMemory is IN-01's "the handler's memory stays flat": a
// request with a 1 MB form allocates no more than one with a body just over
// the cap (reading the 1 MB whole would add more than 1 MB), measured as the
// heap allocated per request.
func TestBodyCapMemory(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	ep := oauthEndpoints(e)[0]
	h := e.Srv.Handler()
	perRequest := func(size int) uint64 {
		body := padForm(t, ep.form, size)
		const runs = 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			req := httptest.NewRequest(http.MethodPost, ep.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", ep.auth)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", w.Code)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / runs
	}
	small, large := perRequest(idp.MaxOAuthBody+1), perRequest(1<<20)
	t.Logf("bytes allocated per request: %d with a body of 16 KiB + 1, %d with 1 MB", small, large)
	if large > small+64<<10 {
		t.Errorf("a 1 MB body allocates %d bytes, one of 16 KiB + 1 %d", large, small)
	}
}

// TestBodyCapPaths is IN-01's split: 16 KiB on /oauth2/*, 64 KiB on the
// admin and account APIs and everything else, 1 MiB on the admin users import.
func TestBodyCapPaths(t *testing.T) {
	for path, want := range map[string]int64{
		"/oauth2/token": 16 << 10, "/oauth2/revoke": 16 << 10, "/oauth2/introspect": 16 << 10,
		"/admin/v1/users/x": 64 << 10, "/admin/v1/clients": 64 << 10, "/admin/v1/users/import": 1 << 20,
		"/account/password": 64 << 10, "/account/register": 64 << 10, "/userinfo": 64 << 10,
	} {
		if got := idp.BodyCap(path); got != want {
			t.Errorf("bodyCap(%q) = %d, want %d", path, got, want)
		}
	}
}

// TestBodyCapAdminAccount shows that the admin and account APIs keep their
// 64 KiB cap: a body of exactly 64 KiB (a valid object padded with JSON
// whitespace) is served, one byte more is 413.
func TestBodyCapAdminAccount(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b, func(c *idp.Config) { c.Registration = true })
		ops := e.OpsToken()
		pad := func(obj string, size int) string {
			return obj[:len(obj)-1] + strings.Repeat(" ", size-len(obj)) + "}"
		}
		patch := `{"email_verified":true}`
		path := "/admin/v1/users/" + e.Users["alice"].ID
		idptest.Want(t, e.Call("PATCH", path, ops, pad(patch, idp.MaxBody)), http.StatusOK, "")
		idptest.Want(t, e.Call("PATCH", path, ops, pad(patch, idp.MaxBody+1)), http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)

		reg := func(name string) string {
			return idptest.JSONObject("username", name, "password", "a perfectly fine passphrase", "email", name+"@example.com")
		}
		if r := e.Account("/account/register", "", pad(reg("carol"), idp.MaxBody)); r.Status != http.StatusAccepted {
			t.Errorf("register at the cap: %d %s", r.Status, r.Body)
		}
		idptest.CheckAccountError(t, e.Account("/account/register", "", pad(reg("erin"), idp.MaxBody+1)), http.StatusRequestEntityTooLarge, web.ErrInvalidRequest)
	})
}

// lookupCounter counts the store calls a token, revocation or introspection
// request can make on its way to an answer: throttle counters, clients,
// users and refresh tokens.
type lookupCounter struct {
	idp.Store
	n atomic.Int64
}

func (c *lookupCounter) Counters(ctx context.Context, keys ...string) (map[string]storage.Counter, error) {
	c.n.Add(1)
	return c.Store.Counters(ctx, keys...)
}

func (c *lookupCounter) RecordFailures(ctx context.Context, now time.Time, fs ...storage.Failure) ([]storage.Counter, error) {
	c.n.Add(1)
	return c.Store.RecordFailures(ctx, now, fs...)
}

func (c *lookupCounter) Client(ctx context.Context, id string) (storage.Client, error) {
	c.n.Add(1)
	return c.Store.Client(ctx, id)
}

func (c *lookupCounter) User(ctx context.Context, id string) (storage.User, error) {
	c.n.Add(1)
	return c.Store.User(ctx, id)
}

func (c *lookupCounter) UserByUsername(ctx context.Context, name string) (storage.User, error) {
	c.n.Add(1)
	return c.Store.UserByUsername(ctx, name)
}

func (c *lookupCounter) RefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, storage.RefreshFamily, error) {
	c.n.Add(1)
	return c.Store.RefreshToken(ctx, hash)
}

func (c *lookupCounter) RotateRefreshToken(ctx context.Context, rot storage.Rotation) (storage.RotateResult, error) {
	c.n.Add(1)
	return c.Store.RotateRefreshToken(ctx, rot)
}

// TestFieldLimits is IN-03 (AC-F1, AC-F2, AC-F4, AC-F5, AC-F6): each field
// one unit over its limit is 400 invalid_request with no store lookup and no
// password hashing; at its limit it gets the answer the grant gives any
// value that names nothing (invalid_grant, invalid_scope, invalid_client).
func TestFieldLimits(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		var store *lookupCounter
		e := idptest.New(t, b, func(c *idp.Config) {
			store = &lookupCounter{Store: c.Store}
			c.Store = store
		})
		scopes := func(n int) string {
			s := make([]string, n)
			for i := range s {
				s[i] = "s" + strings.Repeat("x", i%8) + string(rune('a'+i%26)) + string(rune('a'+i/26))
			}
			return strings.Join(s, " ")
		}
		pw := func(user, pw string) idptest.Request {
			return idptest.Request{Auth: e.Basic("C1"), Body: idptest.PasswordForm(user, pw).Encode()}
		}
		ccID := func(path, id, extra string) idptest.Request {
			return idptest.Request{Path: path, Body: extra + "&client_id=" + url.QueryEscape(id) + "&client_secret=x"}
		}
		ccBasic := func(path, id, extra string) idptest.Request {
			return idptest.Request{Path: path, Auth: idptest.BasicHeader(id, "x"), Body: extra}
		}
		tests := []struct {
			name       string
			req        idptest.Request
			wantStatus int
			wantCode   string
		}{
			// username ≤ 256 characters. 65 to 256 cannot exist
			// (manage.MaxUsernameLength) and answer as an unknown user.
			{"65-character username", pw(strings.Repeat("u", 65), "x"), 400, web.ErrInvalidGrant},
			{"256-character username", pw(strings.Repeat("u", 256), "x"), 400, web.ErrInvalidGrant},
			{"256 two-byte characters", pw(strings.Repeat("é", 256), "x"), 400, web.ErrInvalidGrant},
			{"257-character username", pw(strings.Repeat("u", 257), "x"), 400, web.ErrInvalidRequest},
			{"257 two-byte characters", pw(strings.Repeat("é", 257), "x"), 400, web.ErrInvalidRequest},
			// password ≤ password.MaxBytes, as received and after NFKC (PW-06).
			{"256-byte password", pw("alice", strings.Repeat("p", 256)), 400, web.ErrInvalidGrant},
			{"257-byte password", pw("alice", strings.Repeat("p", 257)), 400, web.ErrInvalidRequest},
			{"password over the cap after NFKC", pw("alice", strings.Repeat("\uFDFA", 10)), 400, web.ErrInvalidRequest},
			{"257-byte password, unknown user", pw("ghost", strings.Repeat("p", 257)), 400, web.ErrInvalidRequest},
			// scope ≤ 1024 bytes and 64 values.
			{"1024-byte scope", idptest.Request{Auth: e.Basic("CC"), Body: "grant_type=client_credentials&scope=" + strings.Repeat("s", 1024)}, 400, web.ErrInvalidScope},
			{"1025-byte scope", idptest.Request{Auth: e.Basic("CC"), Body: "grant_type=client_credentials&scope=" + strings.Repeat("s", 1025)}, 400, web.ErrInvalidRequest},
			{"64 scopes", idptest.Request{Auth: e.Basic("CC"), Body: "grant_type=client_credentials&scope=" + url.QueryEscape(scopes(64))}, 400, web.ErrInvalidScope},
			{"65 scopes", idptest.Request{Auth: e.Basic("CC"), Body: "grant_type=client_credentials&scope=" + url.QueryEscape(scopes(65))}, 400, web.ErrInvalidRequest},
			{"1025-byte scope, password grant", idptest.Request{Auth: e.Basic("C1"), Body: idptest.PasswordForm("alice", idptest.AlicePassword, "scope", strings.Repeat("s", 1025)).Encode()}, 400, web.ErrInvalidRequest},
			// refresh_token ≤ 512 bytes.
			{"512-byte refresh token", idptest.Request{Auth: e.Basic("C1"), Body: idptest.RefreshForm(manage.RefreshTokenPrefix + strings.Repeat("A", 507)).Encode()}, 400, web.ErrInvalidGrant},
			{"513-byte refresh token", idptest.Request{Auth: e.Basic("C1"), Body: idptest.RefreshForm(manage.RefreshTokenPrefix + strings.Repeat("A", 508)).Encode()}, 400, web.ErrInvalidRequest},
			// client_id ≤ 128 bytes, in the form and in Basic, at every
			// endpoint that authenticates clients.
			{"128-byte client_id", ccID("", strings.Repeat("c", 128), "grant_type=client_credentials"), 401, web.ErrInvalidClient},
			{"129-byte client_id", ccID("", strings.Repeat("c", 129), "grant_type=client_credentials"), 400, web.ErrInvalidRequest},
			{"128-byte client_id in Basic", ccBasic("", strings.Repeat("c", 128), "grant_type=client_credentials"), 401, web.ErrInvalidClient},
			{"129-byte client_id in Basic", ccBasic("", strings.Repeat("c", 129), "grant_type=client_credentials"), 400, web.ErrInvalidRequest},
			{"129-byte public client_id", idptest.Request{Body: "grant_type=refresh_token&refresh_token=x&client_id=" + strings.Repeat("c", 129)}, 400, web.ErrInvalidRequest},
			{"revoke, 128-byte client_id", ccID("/oauth2/revoke", strings.Repeat("c", 128), "token=x"), 401, web.ErrInvalidClient},
			{"revoke, 129-byte client_id", ccID("/oauth2/revoke", strings.Repeat("c", 129), "token=x"), 400, web.ErrInvalidRequest},
			{"revoke, 129-byte client_id in Basic", ccBasic("/oauth2/revoke", strings.Repeat("c", 129), "token=x"), 400, web.ErrInvalidRequest},
			{"introspect, 128-byte client_id in Basic", ccBasic("/oauth2/introspect", strings.Repeat("c", 128), "token=x"), 401, web.ErrInvalidClient},
			{"introspect, 129-byte client_id", ccID("/oauth2/introspect", strings.Repeat("c", 129), "token=x"), 400, web.ErrInvalidRequest},
			{"introspect, 129-byte client_id in Basic", ccBasic("/oauth2/introspect", strings.Repeat("c", 129), "token=x"), 400, web.ErrInvalidRequest},
			// A length violation wins over a failed client authentication:
			// it is decided first, from the request alone.
			{"257-character username, wrong secret", idptest.Request{Auth: idptest.BasicHeader("C1", "wrong"), Body: idptest.PasswordForm(strings.Repeat("u", 257), "x").Encode()}, 400, web.ErrInvalidRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				lookups, verifies := store.n.Load(), e.Hasher.Verifies.Load()
				r := e.Do(tt.req)
				idptest.CheckE1(t, r, tt.wantStatus, tt.wantCode)
				if tt.wantCode != web.ErrInvalidRequest {
					return
				}
				if n := store.n.Load() - lookups; n != 0 {
					t.Errorf("%d store lookups, want 0", n)
				}
				if n := e.Hasher.Verifies.Load() - verifies; n != 0 {
					t.Errorf("%d password verifications, want 0", n)
				}
			})
		}
	})
}
