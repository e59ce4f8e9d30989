package idp_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestCallerRateLimit (BF-09, RT-12): a resource server calling
// introspection as fast as it can meets 429 with Retry-After after the
// default burst; revocation shares its budget; other callers are
// unaffected; the budget refills with time; a public client's budget is
// per IP, so its public id cannot be used to exhaust it for everyone. The
// refill rate is slowed to one call per 100 s so that no call refills
// between two requests of a slow (-race, loaded) run; the default rate
// is checked against the requirement's 10,000 calls a minute by itself.
func TestCallerRateLimit(t *testing.T) {
	if p := guard.DefaultPolicy(); float64(p.CallerBurst)+60*p.CallerRate >= 10000 {
		t.Fatalf("the defaults allow %v calls a minute, want fewer than 10,000", float64(p.CallerBurst)+60*p.CallerRate)
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		trusted := netip.MustParsePrefix("127.0.0.0/8")
		const slow = 0.01 // calls per second
		e := idptest.New(t, b, func(c *idp.Config) {
			c.TrustedProxies = []netip.Prefix{trusted}
			c.Throttle.CallerRate = slow
		})
		p := guard.DefaultPolicy()
		at := e.Token("CC", idptest.CCForm()).Str("access_token")
		introspect := func(client string) idptest.Response {
			return e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic(client), Body: url.Values{"token": {at}}.Encode()})
		}

		ok := 0
		var refused idptest.Response
		for range 10 * p.CallerBurst {
			r := introspect("RS")
			if r.Status != http.StatusOK {
				refused = r
				break
			}
			ok++
		}
		switch {
		case refused.Status != http.StatusTooManyRequests:
			t.Fatalf("%d introspections, none refused (last %d %s)", ok, refused.Status, refused.Body)
		case ok < p.CallerBurst || ok > 2*p.CallerBurst:
			t.Errorf("%d introspections before 429, want about the burst of %d", ok, p.CallerBurst)
		case refused.Header.Get("Retry-After") == "" || refused.JSON["error"] != web.ErrTemporarilyUnavail ||
			refused.Header.Get("Cache-Control") != "no-store":
			t.Errorf("429 without Retry-After, RFC 6749 error or no-store: %v %s", refused.Header, refused.Body)
		}
		revoke := e.Do(idptest.Request{Path: "/oauth2/revoke", Auth: e.Basic("RS"), Body: url.Values{"token": {"kwrt_unknown"}}.Encode()})
		if revoke.Status != http.StatusTooManyRequests {
			t.Errorf("revocation by the same caller: %d, want 429 (one budget)", revoke.Status)
		}
		if r := introspect("C1"); r.Status != http.StatusOK {
			t.Errorf("another caller: %d %s", r.Status, r.Body)
		}
		if n := strings.Count(e.Logs.String(), `"msg":"caller rate limit reached"`); n != 1 {
			t.Errorf("%d rate-limit warnings, want 1 for one run of refusals", n)
		}

		// Time refills the bucket.
		e.Clock.Advance(time.Duration(2 / slow * float64(time.Second)))
		if r := introspect("RS"); r.Status != http.StatusOK {
			t.Errorf("after Retry-After: %d %s", r.Status, r.Body)
		}

		// A public client is counted per IP.
		revokeFrom := func(ip string) int {
			h := http.Header{"X-Forwarded-For": {ip}}
			return e.Do(idptest.Request{Path: "/oauth2/revoke", Header: h, Body: url.Values{"client_id": {"pub1"}, "token": {"kwrt_unknown"}}.Encode()}).Status
		}
		sawLimit := false
		for range 10 * p.CallerBurst {
			if revokeFrom("203.0.113.7") == http.StatusTooManyRequests {
				sawLimit = true
				break
			}
		}
		if !sawLimit {
			t.Fatal("a public client's revocations from one IP were never limited")
		}
		if s := revokeFrom("198.51.100.9"); s != http.StatusOK {
			t.Errorf("the public client from another IP: %d, want 200", s)
		}
	})
}
