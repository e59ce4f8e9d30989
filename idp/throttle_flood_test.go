package idp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// trail is what a stretch of traffic left behind: audit rows and log lines.
type trail struct{ rows, lines int }

func trailOf(e *idptest.Env) trail {
	e.T.Helper()
	e.Srv.Auditor().Flush()
	var n int
	if err := e.DB.SQL().Get(&n, `SELECT COUNT(*) FROM audit_events`); err != nil {
		e.T.Fatal(err)
	}
	return trail{rows: n, lines: strings.Count(e.Logs.String(), "\n")}
}

// handful is the most a whole throttle window may leave behind: the
// "throttle engaged" line and the first refusal's row and line, with room
// for one more limit starting.
const handful = 4

// checkBounded fails unless the traffic between before and after left at
// most a handful of rows and lines.
func checkBounded(t *testing.T, e *idptest.Env, what string, n int, before trail) {
	t.Helper()
	after := trailOf(e)
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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			// Blocks outlast the test, so every refusal below falls in one window.
			c.Throttle = guard.Policy{BaseDelay: time.Hour, MaxDelay: time.Hour}
		})
		p := e.Srv.Throttler().Policy()
		from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
		bogus := func(ip string, i int) idptest.Response {
			return e.Do(idptest.Request{Auth: idptest.BasicHeader(fmt.Sprintf("bogus-%d", i), "kwcs_guess"), Header: from(ip), Body: "grant_type=client_credentials"})
		}

		// 1. Client authentication: one IP sends bogus client ids until it
		// is throttled, then 3,000 more, a known client's wrong secret,
		// and the same bogus id over and over (its (client, IP) limit).
		const flooder = "198.51.100.1"
		for i := range p.IPFailures {
			idptest.CheckE1(t, bogus(flooder, i), http.StatusUnauthorized, web.ErrInvalidClient)
		}
		before := trailOf(e)
		const flood = 3000
		for i := range flood {
			var r idptest.Response
			switch {
			case i%100 == 1:
				r = e.Do(idptest.Request{Auth: idptest.BasicHeader("CC", "kwcs_wrong"), Header: from(flooder), Body: "grant_type=client_credentials"})
			case i%3 == 0:
				r = bogus(flooder, 7)
			default:
				r = bogus(flooder, p.IPFailures+i)
			}
			if r.Status != http.StatusTooManyRequests {
				t.Fatalf("throttled request %d: %d %s, want 429", i, r.Status, r.Body)
			}
		}
		checkBounded(t, e, "client authentication", flood, before)

		// 2. The (client, IP) limit: one client id guessed from one IP.
		const guesser = "198.51.100.2"
		for range p.ClientFailures {
			idptest.CheckE1(t, e.Do(idptest.Request{Auth: idptest.BasicHeader("C2", "kwcs_wrong"), Header: from(guesser), Body: "grant_type=client_credentials"}),
				http.StatusUnauthorized, web.ErrInvalidClient)
		}
		before = trailOf(e)
		for i := range flood / 3 {
			if r := e.Do(idptest.Request{Auth: idptest.BasicHeader("C2", "kwcs_wrong"), Header: from(guesser), Body: "grant_type=client_credentials"}); r.Status != http.StatusTooManyRequests {
				t.Fatalf("guess %d: %d %s, want 429", i, r.Status, r.Body)
			}
		}
		checkBounded(t, e, "(client, IP) limit", flood/3, before)

		// 3. Logins: one IP spraying a password over unknown users until
		// it is throttled (429), then on and on.
		const sprayer = "198.51.100.3"
		login := func(ip, user, pw string) idptest.Response {
			return e.Do(idptest.Request{Auth: e.Basic("C1"), Header: from(ip), Body: idptest.PasswordForm(user, pw).Encode()})
		}
		for i := range p.IPFailures {
			idptest.CheckE1(t, login(sprayer, fmt.Sprintf("user%d", i), "Winter2026!"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		before = trailOf(e)
		for i := range flood / 3 {
			if r := login(sprayer, fmt.Sprintf("user%d", i), "Winter2026!"); r.Status != http.StatusTooManyRequests {
				t.Fatalf("sprayed login %d: %d %s, want 429", i, r.Status, r.Body)
			}
		}
		checkBounded(t, e, "login 429", flood/3, before)

		// 4. Logins refused as a wrong password: alice's (account, IP)
		// backoff from one IP, hammered.
		const attacker = "198.51.100.4"
		for range p.FreeFailures + 1 {
			idptest.CheckE1(t, login(attacker, "alice", "guess"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		before = trailOf(e)
		verifies := e.Hasher.Verifies.Load()
		const denied = 300
		for i := range denied {
			idptest.CheckE1(t, login(attacker, "alice", fmt.Sprintf("guess %d", i)), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		checkBounded(t, e, "(account, IP) backoff", denied, before)
		if n := e.Hasher.Verifies.Load() - verifies; n != denied {
			t.Errorf("%d hash runs for %d refused logins, want one each (TE-21)", n, denied)
		}
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Subject: e.Users["alice"].ID, Type: string(audit.LoginThrottled)})
		if err != nil || len(evs) != 1 || evs[0].Reason != guard.KindAccountIP || evs[0].IP != attacker {
			t.Errorf("alice's login_throttled rows: %v %+v, want one account_ip from %s", err, evs, attacker)
		}

		// Every refusal is still counted, by kind (BF-07).
		w := httptest.NewRecorder()
		e.Srv.Metrics().Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
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
		before = trailOf(e)
		if r := e.Token("CC", idptest.CCForm()); r.Status != http.StatusOK {
			t.Fatalf("client_credentials from elsewhere: %d %s", r.Status, r.Body)
		}
		if after := trailOf(e); after.rows != before.rows+1 {
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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		p := e.Srv.Throttler().Policy()
		// 30 bogus client ids from 127.0.0.1.
		for i := range p.IPFailures {
			idptest.CheckE1(t, e.Do(idptest.Request{Auth: idptest.BasicHeader(fmt.Sprintf("bogus-%d", i), "kwcs_guess"), Body: "grant_type=client_credentials"}),
				http.StatusUnauthorized, web.ErrInvalidClient)
		}
		// Valid clients from 127.0.0.1 go on: client credentials, a
		// password login, a client_secret_post client.
		if r := e.Token("CC", idptest.CCForm()); r.Status != http.StatusOK {
			t.Fatalf("client_credentials after 30 bogus ids: %d %s", r.Status, r.Body)
		}
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("password login after 30 bogus ids: %d %s", r.Status, r.Body)
		}
		post := url.Values{"grant_type": {"client_credentials"}, "client_id": {"POST"}, "client_secret": {e.Secrets["POST"]}}
		if r := e.Do(idptest.Request{Body: post.Encode()}); r.Status != http.StatusOK {
			t.Fatalf("client_secret_post after 30 bogus ids: %d %s", r.Status, r.Body)
		}
		// Guessing client secrets from there is throttled: a bogus id gets
		// 429, and a real client id one guess (429), after which even its
		// right secret is refused from this address before any check.
		idptest.CheckE1(t, e.Do(idptest.Request{Auth: idptest.BasicHeader("bogus-x", "kwcs_guess"), Body: "grant_type=client_credentials"}),
			http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		idptest.CheckE1(t, e.Do(idptest.Request{Auth: idptest.BasicHeader("CC", "kwcs_guess"), Body: "grant_type=client_credentials"}),
			http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		r := e.Token("CC", idptest.CCForm())
		idptest.CheckE1(t, r, http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		// Another real client is not affected by that guess.
		if r := e.Token("C2", idptest.PasswordForm("alice", idptest.AlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("another client after a guess at CC: %d %s", r.Status, r.Body)
		}
		// Guessing passwords from there is throttled too, by the login
		// limit: 30 failed logins, then 429 for every login from the IP,
		// while client authentication from it is unaffected.
		for i := range p.IPFailures {
			idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm(fmt.Sprintf("user%d", i), "Winter2026!")), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r := e.Do(idptest.Request{Body: post.Encode()}); r.Status != http.StatusOK {
			t.Fatalf("client authentication after 30 failed logins: %d %s", r.Status, r.Body)
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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		})
		p := e.Srv.Throttler().Policy()
		login := func(userIP, user, pw string) idptest.Response {
			h := http.Header{}
			if userIP != "" {
				h.Set("X-Forwarded-For", userIP)
			}
			return e.Do(idptest.Request{Auth: e.Basic("C1"), Header: h, Body: idptest.PasswordForm(user, pw).Encode()})
		}
		const noisy, other = "203.0.113.50", "198.51.100.77"
		for i := range p.IPFailures {
			idptest.CheckE1(t, login(noisy, fmt.Sprintf("typo%d", i), "wrong password"), http.StatusBadRequest, web.ErrInvalidGrant)
		}
		idptest.CheckE1(t, login(noisy, "alice", idptest.AlicePassword), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
		if r := login(other, "alice", idptest.AlicePassword); r.Status != http.StatusOK {
			t.Fatalf("another user's address through the backend: %d %s", r.Status, r.Body)
		}
		if r := login("", "alice", idptest.AlicePassword); r.Status != http.StatusOK {
			t.Fatalf("the backend's own address: %d %s", r.Status, r.Body)
		}
		e.Srv.Auditor().Flush()
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Subject: e.Users["alice"].ID})
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
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		p := e.Srv.Throttler().Policy()
		inBody := func(secret string) idptest.Response {
			return e.Do(idptest.Request{Body: url.Values{"grant_type": {"client_credentials"}, "client_id": {"CC"}, "client_secret": {secret}}.Encode()})
		}
		for range p.ClientFailures + 5 {
			r := inBody(e.Secrets["CC"])
			idptest.CheckE1(t, r, http.StatusUnauthorized, web.ErrInvalidClient)
			if d := r.Str("error_description"); d != "this client must authenticate with HTTP Basic (client_secret_basic)" {
				t.Fatalf("error_description %q", d)
			}
		}
		if r := e.Token("CC", idptest.CCForm()); r.Status != http.StatusOK {
			t.Fatalf("Basic after %d body attempts with the right secret: %d %s", p.ClientFailures+5, r.Status, r.Body)
		}
		e.Srv.Auditor().Flush()
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{ClientID: "CC", Type: string(audit.LoginFailed)})
		if err != nil || len(evs) != p.ClientFailures+5 || evs[0].Reason != "wrong_auth_method" {
			t.Fatalf("audit: %v, %d rows, want %d with reason wrong_auth_method (%+v)", err, len(evs), p.ClientFailures+5, evs[:min(1, len(evs))])
		}
		logs := e.Logs.String()
		if strings.Contains(logs, `"reason":"bad_credentials"`) || !strings.Contains(logs, `"reason":"wrong_auth_method"`) {
			t.Error("the log does not name the wrong method as the reason")
		}
		if strings.Contains(logs, e.Secrets["CC"]) {
			t.Error("the secret reached the log")
		}
		// A wrong secret in the body: the generic answer, and counted.
		for i := range p.ClientFailures {
			r := inBody("kwcs_wrong")
			idptest.CheckE1(t, r, http.StatusUnauthorized, web.ErrInvalidClient)
			if d := r.Str("error_description"); d != "client authentication failed" {
				t.Fatalf("wrong secret %d: error_description %q", i, d)
			}
		}
		idptest.CheckE1(t, inBody(e.Secrets["CC"]), http.StatusTooManyRequests, web.ErrTemporarilyUnavail)
	})
}
