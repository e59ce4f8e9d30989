package idp

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRevoke is RT-10, RT-11 and CA-10 on both backends.
func TestRevoke(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		rev := func(client string, form url.Values) response {
			r := request{path: "/oauth2/revoke", body: form.Encode()}
			if client != "" {
				r.auth = e.basic(client)
			}
			return e.do(r)
		}
		login := e.login()
		rt, at := login.str("refresh_token"), login.str("access_token")

		// CA-10: no credentials.
		checkE1(t, rev("", url.Values{"token": {rt}}), 401, web.ErrInvalidClient)
		// Missing token.
		checkE1(t, rev("C1", url.Values{}), 400, web.ErrInvalidRequest)
		// Another client's token is refused and still works.
		checkE1(t, rev("C2", url.Values{"token": {rt}}), 400, web.ErrUnauthorizedClient)
		checkE1(t, rev("C2", url.Values{"token": {at}}), 400, web.ErrUnauthorizedClient)
		// Unknown, garbage, and a bogus hint: 200.
		for _, f := range []url.Values{
			{"token": {"garbage"}},
			{"token": {manage.RefreshTokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
			{"token": {"a.b.c"}, "token_type_hint": {"bogus"}},
		} {
			if r := rev("C1", f); r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%v: %d %s", f, r.status, r.body)
			}
		}
		// The refresh token still works after the refused attempts; take its successor.
		r := e.token("C1", refreshForm(rt))
		if r.status != 200 {
			t.Fatalf("refresh after a refused revocation: %s", r.body)
		}
		rt2, at2 := r.str("refresh_token"), r.str("access_token")
		// Revoking with a misleading hint still revokes the family.
		if r := rev("C1", url.Values{"token": {rt2}, "token_type_hint": {"access_token"}}); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		checkE1(t, e.token("C1", refreshForm(rt2)), 400, web.ErrInvalidGrant)
		// RT-11: the family's access tokens stop at introspection.
		if in := e.do(request{path: "/oauth2/introspect", auth: e.basic("C1"), body: "token=" + at2}); string(in.body) != "{\"active\":false}\n" {
			t.Errorf("access token of a revoked family: %s", in.body)
		}
		// An access token by jti.
		at3 := e.token("CC", ccForm()).str("access_token")
		if in := e.do(request{path: "/oauth2/introspect", auth: e.basic("CC"), body: "token=" + at3}); in.json["active"] != true {
			t.Fatalf("before revocation: %s", in.body)
		}
		if r := rev("CC", url.Values{"token": {at3}, "token_type_hint": {"refresh_token"}}); r.status != 200 {
			t.Fatalf("revoke access token: %d %s", r.status, r.body)
		}
		if in := e.do(request{path: "/oauth2/introspect", auth: e.basic("CC"), body: "token=" + at3}); string(in.body) != "{\"active\":false}\n" {
			t.Errorf("after revocation: %s", in.body)
		}
		// Revoking twice is fine.
		if r := rev("CC", url.Values{"token": {at3}}); r.status != 200 {
			t.Errorf("second revocation: %d", r.status)
		}
		// A public client may revoke its own token by client_id.
		if r := e.do(request{path: "/oauth2/revoke", body: "client_id=pub1&token=garbage"}); r.status != 200 {
			t.Errorf("public client: %d %s", r.status, r.body)
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
	e := newEnv(t, storagetest.Backends[0], func(c *Config) { c.Passwords = overloadedHasher{c.Passwords} })
	for _, user := range []string{"alice", "ghost"} {
		r := e.token("C1", passwordForm(user, alicePassword))
		checkE1(t, r, http.StatusServiceUnavailable, web.ErrTemporarilyUnavail)
		if r.header.Get("Retry-After") != "3" {
			t.Errorf("%s: Retry-After %q", user, r.header.Get("Retry-After"))
		}
	}
}
