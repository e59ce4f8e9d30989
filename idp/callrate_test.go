package idp

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

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
	backends(t, func(t *testing.T, b storagetest.Backend) {
		trusted := netip.MustParsePrefix("127.0.0.0/8")
		const slow = 0.01 // calls per second
		e := newEnv(t, b, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{trusted}
			c.Throttle.CallerRate = slow
		})
		p := guard.DefaultPolicy()
		at := e.token("CC", ccForm()).str("access_token")
		introspect := func(client string) response {
			return e.do(request{path: "/oauth2/introspect", auth: e.basic(client), body: url.Values{"token": {at}}.Encode()})
		}

		ok := 0
		var refused response
		for range 10 * p.CallerBurst {
			r := introspect("RS")
			if r.status != http.StatusOK {
				refused = r
				break
			}
			ok++
		}
		switch {
		case refused.status != http.StatusTooManyRequests:
			t.Fatalf("%d introspections, none refused (last %d %s)", ok, refused.status, refused.body)
		case ok < p.CallerBurst || ok > 2*p.CallerBurst:
			t.Errorf("%d introspections before 429, want about the burst of %d", ok, p.CallerBurst)
		case refused.header.Get("Retry-After") == "" || refused.json["error"] != web.ErrTemporarilyUnavail ||
			refused.header.Get("Cache-Control") != "no-store":
			t.Errorf("429 without Retry-After, RFC 6749 error or no-store: %v %s", refused.header, refused.body)
		}
		revoke := e.do(request{path: "/oauth2/revoke", auth: e.basic("RS"), body: url.Values{"token": {"kwrt_unknown"}}.Encode()})
		if revoke.status != http.StatusTooManyRequests {
			t.Errorf("revocation by the same caller: %d, want 429 (one budget)", revoke.status)
		}
		if r := introspect("C1"); r.status != http.StatusOK {
			t.Errorf("another caller: %d %s", r.status, r.body)
		}
		if n := strings.Count(e.logs.String(), `"msg":"caller rate limit reached"`); n != 1 {
			t.Errorf("%d rate-limit warnings, want 1 for one run of refusals", n)
		}

		// Time refills the bucket.
		e.clock.Advance(time.Duration(2 / slow * float64(time.Second)))
		if r := introspect("RS"); r.status != http.StatusOK {
			t.Errorf("after Retry-After: %d %s", r.status, r.body)
		}

		// A public client is counted per IP.
		revokeFrom := func(ip string) int {
			h := http.Header{"X-Forwarded-For": {ip}}
			return e.do(request{path: "/oauth2/revoke", header: h, body: url.Values{"client_id": {"pub1"}, "token": {"kwrt_unknown"}}.Encode()}).status
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
