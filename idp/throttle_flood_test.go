package idp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// trail is what a stretch of traffic left behind: audit rows and log lines.
type trail struct{ rows, lines int }

func (e *env) trail() trail {
	e.t.Helper()
	e.srv.Auditor().Flush()
	var n int
	if err := e.db.SQL().Get(&n, `SELECT COUNT(*) FROM audit_events`); err != nil {
		e.t.Fatal(err)
	}
	return trail{rows: n, lines: strings.Count(e.logs.String(), "\n")}
}

// handful is the most a whole throttle window may leave behind: the
// "throttle engaged" line and the first refusal's row and line, with room
// for one more limit starting.
const handful = 4

// checkBounded fails unless the traffic between before and after left at
// most a handful of rows and lines.
func checkBounded(t *testing.T, e *env, what string, n int, before trail) {
	t.Helper()
	after := e.trail()
	rows, lines := after.rows-before.rows, after.lines-before.lines
	t.Logf("%s: %d throttled requests added %d audit rows and %d log lines", what, n, rows, lines)
	if rows > handful || lines > handful {
		t.Errorf("%s: %d throttled requests added %d audit rows and %d log lines, want at most %d each",
			what, n, rows, lines, handful)
	}
}

// TestThrottledTrafficIsBounded is issue 12's finding 2: refused,
// unauthenticated traffic costs a metric per request and at most a
// handful of audit rows and log lines per throttle window, on both
// backends, on every throttled path: client authentication refused for
// the IP (a flood of bogus client ids, and a real client's guessed
// secret), for the (client, IP) pair, logins refused 429 for the IP, and
// logins refused as a wrong password under the (account, IP) backoff.
func TestThrottledTrafficIsBounded(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			// Blocks outlast the test, so every refusal below falls in one window.
			c.Throttle = guard.Policy{BaseDelay: time.Hour, MaxDelay: time.Hour}
		})
		p := e.srv.Throttler().Policy()
		from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
		bogus := func(ip string, i int) response {
			return e.do(request{auth: basicHeader(fmt.Sprintf("bogus-%d", i), "kwcs_guess"), header: from(ip), body: "grant_type=client_credentials"})
		}

		// 1. Client authentication: one IP sends bogus client ids until it
		// is throttled, then 3,000 more, a known client's wrong secret,
		// and the same bogus id over and over (its (client, IP) limit).
		const flooder = "198.51.100.1"
		for i := range p.IPFailures {
			checkE1(t, bogus(flooder, i), http.StatusUnauthorized, web.ErrInvalidClient)
		}
		before := e.trail()
		const flood = 3000
		for i := range flood {
			var r response
			switch {
			case i%100 == 1:
				r = e.do(request{auth: basicHeader("CC", "kwcs_wrong"), header: from(flooder), body: "grant_type=client_credentials"})
			case i%3 == 0:
				r = bogus(flooder, 7)
			default:
				r = bogus(flooder, p.IPFailures+i)
			}
			if r.status != http.StatusTooManyRequests {
				t.Fatalf("throttled request %d: %d %s, want 429", i, r.status, r.body)
			}
		}
		checkBounded(t, e, "client authentication", flood, before)

		// 2. The (client, IP) limit: one client id guessed from one IP.
		const guesser = "198.51.100.2"
		for range p.ClientFailures {
			checkE1(t, e.do(request{auth: basicHeader("C2", "kwcs_wrong"), header: from(guesser), body: "grant_type=client_credentials"}),
				http.StatusUnauthorized, web.ErrInvalidClient)
		}
		before = e.trail()
		for i := range flood / 3 {
			if r := e.do(request{auth: basicHeader("C2", "kwcs_wrong"), header: from(guesser), body: "grant_type=client_credentials"}); r.status != http.StatusTooManyRequests {
				t.Fatalf("guess %d: %d %s, want 429", i, r.status, r.body)
			}
		}
		checkBounded(t, e, "(client, IP) limit", flood/3, before)

		// 3. Logins: one IP spraying a password over unknown users until
		// it is throttled (429), then on and on.
		const sprayer = "198.51.100.3"
		login := func(ip, user, pw string) response {
			return e.do(request{auth: e.basic("C1"), header: from(ip), body: passwordForm(user, pw).Encode()})
		}
		for i := range p.IPFailures {
			checkE1(t, login(sprayer, fmt.Sprintf("user%d", i), "Winter2026!"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		before = e.trail()
		for i := range flood / 3 {
			if r := login(sprayer, fmt.Sprintf("user%d", i), "Winter2026!"); r.status != http.StatusTooManyRequests {
				t.Fatalf("sprayed login %d: %d %s, want 429", i, r.status, r.body)
			}
		}
		checkBounded(t, e, "login 429", flood/3, before)

		// 4. Logins refused as a wrong password: alice's (account, IP)
		// backoff from one IP, hammered.
		const attacker = "198.51.100.4"
		for range p.FreeFailures + 1 {
			checkE1(t, login(attacker, "alice", "guess"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		before = e.trail()
		verifies := e.hasher.verifies.Load()
		const denied = 300
		for i := range denied {
			checkE1(t, login(attacker, "alice", fmt.Sprintf("guess %d", i)), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		checkBounded(t, e, "(account, IP) backoff", denied, before)
		if n := e.hasher.verifies.Load() - verifies; n != denied {
			t.Errorf("%d hash runs for %d refused logins, want one each (TE-21)", n, denied)
		}
		evs, err := e.db.AuditEvents(t.Context(), storage.AuditFilter{Subject: e.users["alice"].ID, Type: string(audit.LoginThrottled)})
		if err != nil || len(evs) != 1 || evs[0].Reason != guard.KindAccountIP || evs[0].IP != attacker {
			t.Errorf("alice's login_throttled rows: %v %+v, want one account_ip from %s", err, evs, attacker)
		}

		// Every refusal is still counted, by kind (BF-07).
		w := httptest.NewRecorder()
		e.srv.Metrics().Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		metrics := w.Body.String()
		for kind, least := range map[string]int{guard.KindIP: flood + flood/3, guard.KindClient: flood / 3, guard.KindAccountIP: denied} {
			var n int
			series := `keyward_throttled_total{kind="` + kind + `"} `
			if i := strings.Index(metrics, series); i >= 0 {
				fmt.Sscan(metrics[i+len(series):], &n)
			}
			if n < least {
				t.Errorf("keyward_throttled_total{kind=%q} = %d, want at least %d", kind, n, least)
			}
		}
		// Other traffic goes on, and is recorded as before.
		before = e.trail()
		if r := e.token("CC", ccForm()); r.status != http.StatusOK {
			t.Fatalf("client_credentials from elsewhere: %d %s", r.status, r.body)
		}
		if after := e.trail(); after.rows != before.rows+1 {
			t.Errorf("an issued token added %d rows, want 1", after.rows-before.rows)
		}
	})
}

// TestSharedIPKeepsValidClients is issue 12's finding 4: failures of other
// clients from an address (a backend shared by all its users) do not shut
// out a client that authenticates, nor its users' logins, while guessing
// from that address stays throttled: client secrets (each client id gets
// one more guess, then 429 before any check) and passwords (the per-IP
// login limit, counted apart from client failures).
func TestSharedIPKeepsValidClients(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		p := e.srv.Throttler().Policy()
		// 30 bogus client ids from 127.0.0.1.
		for i := range p.IPFailures {
			checkE1(t, e.do(request{auth: basicHeader(fmt.Sprintf("bogus-%d", i), "kwcs_guess"), body: "grant_type=client_credentials"}),
				http.StatusUnauthorized, web.ErrInvalidClient)
		}
		// Valid clients from 127.0.0.1 go on: client credentials, a
		// password login, a client_secret_post client.
		if r := e.token("CC", ccForm()); r.status != http.StatusOK {
			t.Fatalf("client_credentials after 30 bogus ids: %d %s", r.status, r.body)
		}
		if r := e.token("C1", passwordForm("alice", alicePassword)); r.status != http.StatusOK {
			t.Fatalf("password login after 30 bogus ids: %d %s", r.status, r.body)
		}
		post := url.Values{"grant_type": {"client_credentials"}, "client_id": {"POST"}, "client_secret": {e.secrets["POST"]}}
		if r := e.do(request{body: post.Encode()}); r.status != http.StatusOK {
			t.Fatalf("client_secret_post after 30 bogus ids: %d %s", r.status, r.body)
		}
		// Guessing client secrets from there is throttled: a bogus id gets
		// 429, and a real client id one guess (429), after which even its
		// right secret is refused from this address before any check.
		checkE1(t, e.do(request{auth: basicHeader("bogus-x", "kwcs_guess"), body: "grant_type=client_credentials"}),
			http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		checkE1(t, e.do(request{auth: basicHeader("CC", "kwcs_guess"), body: "grant_type=client_credentials"}),
			http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		r := e.token("CC", ccForm())
		checkE1(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		// Another real client is not affected by that guess.
		if r := e.token("C2", passwordForm("alice", alicePassword)); r.status != http.StatusOK {
			t.Fatalf("another client after a guess at CC: %d %s", r.status, r.body)
		}
		// Guessing passwords from there is throttled too, by the login
		// limit: 30 failed logins, then 429 for every login from the IP,
		// while client authentication from it is unaffected.
		for i := range p.IPFailures {
			checkE1(t, e.token("C1", passwordForm(fmt.Sprintf("user%d", i), "Winter2026!")), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		checkE1(t, e.token("C1", passwordForm("alice", alicePassword)), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r := e.do(request{body: post.Encode()}); r.status != http.StatusOK {
			t.Fatalf("client authentication after 30 failed logins: %d %s", r.status, r.body)
		}
	})
}

// TestTrustedBackendPassesUserIP: a backend calling the password grant for
// its users, listed in TrustedProxies, sends each user's address in
// X-Forwarded-For (docs/protection.md). Every limit then counts per user
// address: one user's failures throttle that user's address only, other
// users and the backend's own requests go on, and the audit trail has the
// user's address.
func TestTrustedBackendPassesUserIP(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		})
		p := e.srv.Throttler().Policy()
		login := func(userIP, user, pw string) response {
			h := http.Header{}
			if userIP != "" {
				h.Set("X-Forwarded-For", userIP)
			}
			return e.do(request{auth: e.basic("C1"), header: h, body: passwordForm(user, pw).Encode()})
		}
		const noisy, other = "203.0.113.50", "198.51.100.77"
		for i := range p.IPFailures {
			checkE1(t, login(noisy, fmt.Sprintf("typo%d", i), "wrong password"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		checkE1(t, login(noisy, "alice", alicePassword), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r := login(other, "alice", alicePassword); r.status != http.StatusOK {
			t.Fatalf("another user's address through the backend: %d %s", r.status, r.body)
		}
		if r := login("", "alice", alicePassword); r.status != http.StatusOK {
			t.Fatalf("the backend's own address: %d %s", r.status, r.body)
		}
		e.srv.Auditor().Flush()
		evs, err := e.db.AuditEvents(t.Context(), storage.AuditFilter{Subject: e.users["alice"].ID})
		if err != nil {
			t.Fatal(err)
		}
		ips := map[string]string{}
		for _, ev := range evs {
			ips[ev.Type+" "+ev.IP] = ev.Reason
		}
		for _, want := range []string{"login_throttled " + noisy, "login_succeeded " + other, "login_succeeded 127.0.0.1"} {
			if _, ok := ips[want]; !ok {
				t.Errorf("no %q audit row in %v", want, ips)
			}
		}
	})
}

// TestClientWrongAuthMethod: a client_secret_basic client that sends its
// right secret in the body (requests-oauthlib's refresh recipe) is told
// which method to use, recorded as wrong_auth_method, and not counted
// toward the throttle; a wrong secret sent so is a failure like any other,
// with the generic answer (CA-03, CA-04).
func TestClientWrongAuthMethod(t *testing.T) {
	backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newEnv(t, b)
		p := e.srv.Throttler().Policy()
		inBody := func(secret string) response {
			return e.do(request{body: url.Values{"grant_type": {"client_credentials"}, "client_id": {"CC"}, "client_secret": {secret}}.Encode()})
		}
		for range p.ClientFailures + 5 {
			r := inBody(e.secrets["CC"])
			checkE1(t, r, http.StatusUnauthorized, web.ErrInvalidClient)
			if d := r.str("error_description"); d != "this client must authenticate with HTTP Basic (client_secret_basic)" {
				t.Fatalf("error_description %q", d)
			}
		}
		if r := e.token("CC", ccForm()); r.status != http.StatusOK {
			t.Fatalf("Basic after %d body attempts with the right secret: %d %s", p.ClientFailures+5, r.status, r.body)
		}
		e.srv.Auditor().Flush()
		evs, err := e.db.AuditEvents(t.Context(), storage.AuditFilter{ClientID: "CC", Type: string(audit.LoginFailed)})
		if err != nil || len(evs) != p.ClientFailures+5 || evs[0].Reason != "wrong_auth_method" {
			t.Fatalf("audit: %v, %d rows, want %d with reason wrong_auth_method (%+v)", err, len(evs), p.ClientFailures+5, evs[:min(1, len(evs))])
		}
		logs := e.logs.String()
		if strings.Contains(logs, `"reason":"bad_credentials"`) || !strings.Contains(logs, `"reason":"wrong_auth_method"`) {
			t.Error("the log does not name the wrong method as the reason")
		}
		if strings.Contains(logs, e.secrets["CC"]) {
			t.Error("the secret reached the log")
		}
		// A wrong secret in the body: the generic answer, and counted.
		for i := range p.ClientFailures {
			r := inBody("kwcs_wrong")
			checkE1(t, r, http.StatusUnauthorized, web.ErrInvalidClient)
			if d := r.str("error_description"); d != "client authentication failed" {
				t.Fatalf("wrong secret %d: error_description %q", i, d)
			}
		}
		checkE1(t, inBody(e.secrets["CC"]), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
	})
}
