package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRevoke is RT-10, RT-11 and CA-10 on both backends.
func TestRevoke(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		rev := func(client string, form url.Values) idptest.Response {
			r := idptest.Request{Path: "/oauth2/revoke", Body: form.Encode()}
			if client != "" {
				r.Auth = e.Basic(client)
			}
			return e.Do(r)
		}
		login := e.Login()
		rt, at := login.Str("refresh_token"), login.Str("access_token")

		// CA-10: no credentials.
		idptest.CheckE1(t, rev("", url.Values{"token": {rt}}), 401, web.ErrInvalidClient)
		// Missing token.
		idptest.CheckE1(t, rev("C1", url.Values{}), 400, web.ErrInvalidRequest)
		// Another client's token is refused and still works.
		idptest.CheckE1(t, rev("C2", url.Values{"token": {rt}}), 400, web.ErrUnauthorizedClient)
		idptest.CheckE1(t, rev("C2", url.Values{"token": {at}}), 400, web.ErrUnauthorizedClient)
		// Unknown, garbage, and a bogus hint: 200.
		for _, f := range []url.Values{
			{"token": {"garbage"}},
			{"token": {manage.RefreshTokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
			{"token": {"a.b.c"}, "token_type_hint": {"bogus"}},
		} {
			if r := rev("C1", f); r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%v: %d %s", f, r.Status, r.Body)
			}
		}
		// The refresh token still works after the refused attempts; take its successor.
		r := e.Token("C1", idptest.RefreshForm(rt))
		if r.Status != 200 {
			t.Fatalf("refresh after a refused revocation: %s", r.Body)
		}
		rt2, at2 := r.Str("refresh_token"), r.Str("access_token")
		// Revoking with a misleading hint still revokes the family.
		if r := rev("C1", url.Values{"token": {rt2}, "token_type_hint": {"access_token"}}); r.Status != 200 {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.RefreshForm(rt2)), 400, web.ErrInvalidGrant)
		// RT-11: the family's access tokens stop at introspection.
		if in := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("C1"), Body: "token=" + at2}); string(in.Body) != "{\"active\":false}\n" {
			t.Errorf("access token of a revoked family: %s", in.Body)
		}
		// An access token by jti.
		at3 := e.Token("CC", idptest.CCForm()).Str("access_token")
		if in := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("CC"), Body: "token=" + at3}); in.JSON["active"] != true {
			t.Fatalf("before revocation: %s", in.Body)
		}
		if r := rev("CC", url.Values{"token": {at3}, "token_type_hint": {"refresh_token"}}); r.Status != 200 {
			t.Fatalf("revoke access token: %d %s", r.Status, r.Body)
		}
		if in := e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("CC"), Body: "token=" + at3}); string(in.Body) != "{\"active\":false}\n" {
			t.Errorf("after revocation: %s", in.Body)
		}
		// Revoking twice is fine.
		if r := rev("CC", url.Values{"token": {at3}}); r.Status != 200 {
			t.Errorf("second revocation: %d", r.Status)
		}
		// A public client may revoke its own token by client_id.
		if r := e.Do(idptest.Request{Path: "/oauth2/revoke", Body: "client_id=pub1&token=garbage"}); r.Status != 200 {
			t.Errorf("public client: %d %s", r.Status, r.Body)
		}
	})
}

// overloadedHasher is a hasher whose queue is always full: the fault a
// real limiter shows only under a timing-dependent burst.
type overloadedHasher struct{ oauth.PasswordHasher }

func (overloadedHasher) Verify(context.Context, string, string) (bool, bool, error) {
	return false, false, &password.OverloadError{RetryAfter: 3e9, QueueFull: true}
}

func (overloadedHasher) VerifyDummy(context.Context, string) error {
	return &password.OverloadError{RetryAfter: 3e9, QueueFull: true}
}

// TestPasswordOverload is AV-01 at the token endpoint: a full hashing
// queue is 503 temporarily_unavailable with Retry-After, for known and
// unknown users alike.
func TestPasswordOverload(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Passwords = overloadedHasher{c.Passwords} })
	for _, user := range []string{"alice", "ghost"} {
		r := e.Token("C1", idptest.PasswordForm(user, idptest.AlicePassword))
		idptest.CheckE1(t, r, http.StatusServiceUnavailable, web.ErrTemporarilyUnavail)
		if r.Header.Get("Retry-After") != "3" {
			t.Errorf("%s: Retry-After %q", user, r.Header.Get("Retry-After"))
		}
	}
}
