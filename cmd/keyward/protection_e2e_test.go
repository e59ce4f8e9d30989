package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// This file runs the brute-force protection, the audit trail and session
// revocation against real keyward serve processes (issue 6), as an operator
// would see them: several replicas on one database, the CLI beside them.

const loginClientID = "app"

// createLoginClient registers a confidential client with the password and
// refresh_token grants and returns its secret.
func createLoginClient(t *testing.T, dsn string) string {
	t.Helper()
	c := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", loginClientID,
		"--grant", "password", "--grant", "refresh_token", "--scope", "openid api:read", "--audience", "api", "--output", "json"))
	secret, _ := c["client_secret"].(string)
	if secret == "" {
		t.Fatalf("clients create printed %v", c)
	}
	return secret
}

// createLoginUser creates a user with the CLI and returns its id.
func createLoginUser(t *testing.T, dsn, name, pw string) string {
	t.Helper()
	u := decode[map[string]any](t, mustRun(t, dsn, pw+"\n", "users", "create", "--username", name, "--password-stdin", "--output", "json"))
	id, _ := u["id"].(string)
	if id == "" {
		t.Fatalf("users create printed %v", u)
	}
	return id
}

// startReplicas starts n keyward serve processes on the one database dsn,
// sharing one key-encryption key file, one after the other (so only the
// first creates the signing key).
func startReplicas(t *testing.T, dsn string, n int, flags ...string) []*process {
	t.Helper()
	args := append([]string{"--database", dsn, "--key-encryption-key-file", writeKEK(t, t.TempDir())}, flags...)
	ps := make([]*process, n)
	for i := range ps {
		ps[i] = startProcess(t, nil, args...)
	}
	return ps
}

// peerClients hands out one HTTP client per source address, so a test can play
// many client IPs and keep each one's connections alive.
type peerClients struct {
	mu sync.Mutex
	m  map[string]*http.Client
}

func newPeerClients(t *testing.T) *peerClients {
	p := &peerClients{m: map[string]*http.Client{}}
	t.Cleanup(func() {
		for _, c := range p.m {
			c.CloseIdleConnections()
		}
	})
	return p
}

func (p *peerClients) from(ip string) *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[ip] == nil {
		p.m[ip] = clientFrom(ip)
	}
	return p.m[ip]
}

// tokenReply is a token endpoint response.
type tokenReply struct {
	status int
	header http.Header
	body   string
}

func (r tokenReply) String() string {
	b := strings.TrimSpace(r.body)
	if len(b) > 160 {
		b = b[:160] + "…"
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

// postPasswordGrant sends a password grant for user to p's token endpoint from
// c, with an X-Forwarded-For header when xff is set.
func postPasswordGrant(t *testing.T, c *http.Client, p *process, secret, user, pw, xff string) tokenReply {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"openid"}}
	h := http.Header{"Authorization": {basicAuth(loginClientID, secret)}}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	return send(t, c, http.MethodPost, p.URL+"/oauth2/token", h, form)
}

// checkTokenErrorE1 checks what every token endpoint error carries (RFC 6749 §5.2):
// the status, a JSON body with the error code, and no caching.
func checkTokenErrorE1(t *testing.T, what string, r tokenReply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %s, want %d %s", what, r, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("%s: Cache-Control %q, Pragma %q", what, r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	if e := decode[map[string]any](t, r.body); e["error"] != code {
		t.Errorf("%s: error %v, want %s", what, e["error"], code)
	}
}

// sameAsWrongPassword fails unless r is exactly the wrong-password answer want:
// status, body byte for byte, and the headers a client could tell apart.
func sameAsWrongPassword(t *testing.T, what string, r, want tokenReply) {
	t.Helper()
	if r.status != want.status || r.body != want.body {
		t.Fatalf("%s: %s, want the wrong-password answer %s", what, r, want)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control", "Pragma", "Retry-After", "WWW-Authenticate"} {
		if r.header.Get(h) != want.header.Get(h) {
			t.Fatalf("%s: %s %q, the wrong-password answer has %q", what, h, r.header.Get(h), want.header.Get(h))
		}
	}
}

func checkIssued(t *testing.T, what string, r tokenReply) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %s, want a token", what, r)
	}
	if tok := decode[map[string]any](t, r.body); tok["access_token"] == nil {
		t.Fatalf("%s: no access token in %s", what, r)
	}
}

// The test policy: the limits are small so the test is short, and every
// block is long so it lasts until the test ends; the test never waits for
// one to lift (idp's TestThrottle* cover that with a fake clock).
const (
	testFreeFailures = 3 // (account, IP): 3 free failures, the 4th sets the block
	testBudget       = 8 // account-wide: 8 free failures, the 9th blocks new IPs
	testIPLimit      = 6 // per IP: the 7th request after 6 failures is 429
)

var testThrottleFlags = []string{
	"--login-free-failures", strconv.Itoa(testFreeFailures), "--login-backoff-base", "10m", "--login-backoff-max", "15m",
	"--login-account-budget", strconv.Itoa(testBudget), "--login-account-backoff-base", "10m", "--login-account-backoff-max", "15m",
	"--login-ip-limit", strconv.Itoa(testIPLimit), "--login-ip-window", "10m",
}

// TestBruteForceAcrossReplicas is issue 6's first "Done when" point: two
// keyward serve processes share one database (one SQLite file, or one
// PostgreSQL database), and every limit holds across them (DESIGN
// "Accounts and protection", BF-01…BF-07, BF-10, LG-01, LG-03).
func TestBruteForceAcrossReplicas(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		secret := createLoginClient(t, dsn)
		createLoginUser(t, dsn, "alice", alicePassword)
		rs := startReplicas(t, dsn, 2, append(testThrottleFlags, "--metrics-addr", "127.0.0.1:0")...)
		peer := newPeerClients(t)
		turn := 0
		// try sends a login to the two replicas in turn.
		try := func(ip, user, pw string) tokenReply {
			t.Helper()
			turn++
			return postPasswordGrant(t, peer.from(ip), rs[turn%2], secret, user, pw, "")
		}
		const (
			attacker = "127.0.0.66"
			victim   = "127.0.0.10"
			sprayer  = "127.0.0.99"
			spoofer  = "127.0.0.77" // sends X-Forwarded-For without being a trusted proxy
		)

		// 1. One IP guessing alice's password, alternating replicas: the
		// free failures, then a block that answers exactly as a wrong
		// password does, even to the right password (BF-03).
		wrong := try(attacker, "alice", "not alice's password")
		checkTokenErrorE1(t, "wrong password", wrong, http.StatusBadRequest, "invalid_grant")
		for i := 2; i <= testFreeFailures+1; i++ {
			sameAsWrongPassword(t, fmt.Sprintf("failure %d", i), try(attacker, "alice", fmt.Sprintf("guess %d", i)), wrong)
		}
		for i := range 4 {
			sameAsWrongPassword(t, fmt.Sprintf("blocked guess %d", i), try(attacker, "alice", fmt.Sprintf("blocked guess %d", i)), wrong)
		}
		for i, p := range rs {
			sameAsWrongPassword(t, fmt.Sprintf("right password from the blocked IP on replica %d", i),
				postPasswordGrant(t, peer.from(attacker), p, secret, "alice", alicePassword, ""), wrong)
		}
		// An unknown user gets that answer too (TE-11).
		sameAsWrongPassword(t, "unknown user", try("127.0.3.1", "nobody", "whatever it is"), wrong)

		// 2. Meanwhile alice signs in from her own address on either
		// replica: the attacker's block is on (alice, attacker) only
		// (BF-04), and her success does not lift it.
		for i, p := range rs {
			checkIssued(t, fmt.Sprintf("alice from her IP on replica %d", i), postPasswordGrant(t, peer.from(victim), p, secret, "alice", alicePassword, ""))
		}
		sameAsWrongPassword(t, "attacker after alice signed in", try(attacker, "alice", alicePassword), wrong)

		// 3. The account-wide budget (BF-01, BF-02): testBudget+1
		// failures from as many IPs, split across the replicas, and then
		// even the right password from an IP alice never used answers as
		// a wrong password, on either replica. IPs alice signed in from
		// recently are exempt by design (so an attacker cannot lock her
		// out of her usual networks): the victim IP still gets in, and its
		// success restarts the budget.
		for i := 1; i <= testBudget+1; i++ {
			sameAsWrongPassword(t, fmt.Sprintf("distributed failure %d", i), try(fmt.Sprintf("127.0.1.%d", i), "alice", "spring2026"), wrong)
		}
		for i, p := range rs {
			sameAsWrongPassword(t, fmt.Sprintf("right password from a fresh IP on replica %d", i),
				postPasswordGrant(t, peer.from(fmt.Sprintf("127.0.2.%d", i+1)), p, secret, "alice", alicePassword, ""), wrong)
		}
		checkIssued(t, "alice from a known IP during the distributed attack", try(victim, "alice", alicePassword))
		checkIssued(t, "a fresh IP once the budget restarted", try("127.0.2.3", "alice", alicePassword))

		// 4. One IP spraying one password over many accounts (BF-06): after
		// testIPLimit failures every attempt from it is 429 with
		// Retry-After, on both replicas, for real and unknown users alike
		// (BF-03), while other IPs carry on.
		for i := range testIPLimit {
			sameAsWrongPassword(t, fmt.Sprintf("spray %d", i), try(sprayer, fmt.Sprintf("user%d", i), "Winter2026!"), wrong)
		}
		var first tokenReply
		for i, p := range rs {
			for _, user := range []string{"alice", "user99"} {
				r := postPasswordGrant(t, peer.from(sprayer), p, secret, user, alicePassword, "")
				what := fmt.Sprintf("sprayer on replica %d as %s", i, user)
				checkTokenErrorE1(t, what, r, http.StatusTooManyRequests, "temporarily_unavailable")
				secs, err := strconv.Atoi(r.header.Get("Retry-After"))
				if err != nil || secs < 1 || secs > 600 {
					t.Fatalf("%s: Retry-After %q, want 1 to 600 seconds", what, r.header.Get("Retry-After"))
				}
				if first.status == 0 {
					first = r
				} else if r.body != first.body {
					t.Fatalf("%s: 429 body %q differs from %q", what, r.body, first.body)
				}
			}
		}
		checkIssued(t, "alice from her IP during the spray", try(victim, "alice", alicePassword))

		// 5. X-Forwarded-For from a peer that is no trusted proxy is
		// ignored (BF-10): guesses claiming ever new addresses all count
		// against the real peer, which is blocked like any other.
		for i := 1; i <= testFreeFailures+1; i++ {
			sameAsWrongPassword(t, fmt.Sprintf("spoofed failure %d", i),
				postPasswordGrant(t, peer.from(spoofer), rs[i%2], secret, "alice", "guess", fmt.Sprintf("1.2.3.%d", i)), wrong)
		}
		sameAsWrongPassword(t, "right password from the spoofing peer",
			postPasswordGrant(t, peer.from(spoofer), rs[0], secret, "alice", alicePassword, "1.2.3.4"), wrong)

		// 6. The operator unlocks alice: every block on her account lifts,
		// from every address, on every replica (BF-04).
		mustRun(t, dsn, "", "users", "unlock", "alice")
		checkIssued(t, "alice from the attacker's IP after unlock", postPasswordGrant(t, peer.from(attacker), rs[0], secret, "alice", alicePassword, ""))
		checkIssued(t, "alice from the spoofing peer after unlock", postPasswordGrant(t, peer.from(spoofer), rs[1], secret, "alice", alicePassword, "1.2.3.4"))

		// 7. The audit trail has every checked attempt on alice's account,
		// and the first refusal of each throttle window on each replica
		// (refused attempts beyond it are only counted in metrics, so a
		// flood of them adds no rows), with the address of the real peer
		// and the reason only the operator sees (LG-01, LG-03, BF-10),
		// whichever replica answered.
		evs := decode[[]audit.View](t, mustRun(t, dsn, "", "audit", "list", "--user", "alice", "--limit", "1000", "--output", "json"))
		got := map[string]int{}
		for _, e := range evs {
			if !strings.HasPrefix(e.Type, "login_") {
				continue
			}
			got[e.Type+" "+e.Reason+" "+e.IP]++
			if e.ClientID != loginClientID || e.RequestID == "" || e.At.IsZero() {
				t.Errorf("audit event without client, request id or time: %+v", e)
			}
		}
		want := map[string]int{
			"login_failed bad_password " + attacker:  testFreeFailures + 1,
			"login_throttled account_ip " + attacker: 2, // one window, two replicas
			"login_throttled ip " + sprayer:          2,
			"login_succeeded  " + victim:             2 + 1 + 1,
			"login_throttled account 127.0.2.1":      1,
			"login_throttled account 127.0.2.2":      1,
			"login_succeeded  127.0.2.3":             1,
			"login_failed bad_password " + spoofer:   testFreeFailures + 1,
			"login_throttled account_ip " + spoofer:  1,
			"login_succeeded  " + attacker:           1,
			"login_succeeded  " + spoofer:            1,
		}
		for i := 1; i <= testBudget+1; i++ {
			want[fmt.Sprintf("login_failed bad_password 127.0.1.%d", i)] = 1
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("audit: %d × %q, want %d", got[k], k, n)
			}
		}
		for k, n := range got {
			if want[k] == 0 {
				t.Errorf("audit: %d unexpected × %q", n, k)
			}
		}
		if !slices.ContainsFunc(evs, func(e audit.View) bool { return e.Type == "user_unlocked" && e.Actor == "cli" }) {
			t.Error("no user_unlocked event")
		}
		// No row and no log line anywhere took the forwarded address.
		all := mustRun(t, dsn, "", "audit", "list", "--limit", "1000", "--output", "json")
		logs := rs[0].Log.String() + rs[1].Log.String()
		if strings.Contains(all, `"1.2.3.`) || strings.Contains(logs, `"client_ip":"1.2.3.`) {
			t.Error("a forwarded address from an untrusted peer was recorded")
		}
		if !strings.Contains(logs, `"client_ip":"`+spoofer+`"`) {
			t.Error("the spoofing peer's real address is not in the log")
		}
		// Alerts (BF-07): the log says when a limit starts to apply, and
		// the metrics count every throttled attempt by kind.
		if !strings.Contains(logs, `"msg":"throttle engaged"`) {
			t.Error(`no "throttle engaged" log`)
		}
		metrics := ""
		for _, p := range rs {
			m := metricsAddr.FindStringSubmatch(p.Log.String())
			if m == nil {
				t.Fatalf("no metrics listener in the log:\n%s", p.Log.String())
			}
			_, b, _ := testsupport.Get(t, "http://"+m[1]+"/metrics")
			metrics += string(b)
		}
		for _, kind := range []string{"account_ip", "account", "ip"} {
			if !strings.Contains(metrics, `keyward_throttled_total{kind="`+kind+`"}`) {
				t.Errorf("no keyward_throttled_total for kind %s", kind)
			}
		}
		for _, secret := range []string{secret, alicePassword} {
			if strings.Contains(logs, secret) {
				t.Error("a secret reached a server log")
			}
		}
	})
}

// TestLoginTimingAgainstProcess is issue 6's timing point (TE-21): through
// a real server process, the median time of a wrong password for a real
// user, of an unknown user, of an attempt the throttle refuses (an
// (account, IP) under backoff), and of a wrong password for users whose
// hashes are older and costlier (argon2id m=32 MiB t=3, bcrypt cost 10, at
// the server's --password-hash-ceiling, which is lower than the default so
// the test takes a third of the time: issue 12 finding 6) are within 10 % of
// each other. The kinds are sent
// round-robin after a warm-up, so a noisy neighbour slows them alike. It runs only with KEYWARD_TIMING_TEST=1, as idp's
// TestLoginTiming does: on a shared 2-core machine the spread is usually a
// few per cent but can pass 10 % (docs/protection.md has the figures).
func TestLoginTimingAgainstProcess(t *testing.T) {
	if os.Getenv("KEYWARD_TIMING_TEST") != "1" {
		t.Skip("set KEYWARD_TIMING_TEST=1 to measure login timing through a server process (TE-21)")
	}
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		const rounds, warmup = 50, 5
		secret := createLoginClient(t, dsn)
		createLoginUser(t, dsn, "erin", alicePassword)
		createLoginUser(t, dsn, "tina", alicePassword)
		// olga's hash has older, costlier parameters; bea's is an imported
		// bcrypt hash; both at the server's ceiling.
		older, err := password.NewHasher(password.Params{Memory: 32 << 10, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		oldHash, err := older.Hash(context.Background(), alicePassword)
		if err != nil {
			t.Fatal(err)
		}
		bcryptHash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), 10)
		if err != nil {
			t.Fatal(err)
		}
		db := storagetest.Open(t, dsn)
		for name, hash := range map[string]string{"olga": oldHash, "bea": string(bcryptHash)} {
			if err := db.CreateUser(context.Background(), &storage.User{Username: name, PasswordHash: hash}); err != nil {
				t.Fatal(err)
			}
		}
		// The (account, IP) limit must not bite erin's or the ghost's
		// failures during the test, so it is at its highest (99 free
		// failures); the per-IP limit is out of the way.
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", writeKEK(t, t.TempDir()),
			"--login-free-failures", "99", "--login-account-budget", "99", "--login-backoff-base", "1h", "--login-backoff-max", "1h",
			"--login-ip-limit", "100000", "--password-hash-ceiling", "m=32768,t=3,bcrypt=10")
		peer := newPeerClients(t)
		kinds := []struct {
			name, ip, user string
		}{
			{"wrong password", "127.0.5.1", "erin"},
			{"unknown user", "127.0.5.2", "ghost"},
			{"throttled", "127.0.5.3", "tina"},
			{"wrong password, m=32MiB t=3", "127.0.5.4", "olga"},
			{"wrong password, bcrypt 10", "127.0.5.5", "bea"},
		}
		// Put (tina, 127.0.5.3) under backoff: 100 failures (each lasts the
		// floor on failed checks, password.Hasher.Floor: half a minute).
		blocked := kinds[2]
		for i := range 100 {
			r := postPasswordGrant(t, peer.from(blocked.ip), p, secret, blocked.user, fmt.Sprintf("guess %03d", i), "")
			if r.status != http.StatusBadRequest {
				t.Fatalf("failure %d: %s", i, r)
			}
		}
		ds := make([][]time.Duration, len(kinds))
		for round := range warmup + rounds {
			for j := range kinds {
				k := (round + j) % len(kinds) // rotate who goes first
				start := time.Now()
				r := postPasswordGrant(t, peer.from(kinds[k].ip), p, secret, kinds[k].user, "wrong password "+strconv.Itoa(round%10), "")
				d := time.Since(start)
				if r.status != http.StatusBadRequest {
					t.Fatalf("%s: %s", kinds[k].name, r)
				}
				if round >= warmup {
					ds[k] = append(ds[k], d)
				}
			}
		}
		// The throttled kind really was refused by the throttle: no attempt
		// after tina's 100 failures was checked, and the refusals, all in
		// one window, were audited once.
		evs := decode[[]audit.View](t, mustRun(t, dsn, "", "audit", "list", "--user", "tina", "--type", "login_failed", "--limit", "1000", "--output", "json"))
		if len(evs) != 100 {
			t.Fatalf("%d login_failed events for tina, want the 100 before the test", len(evs))
		}
		evs = decode[[]audit.View](t, mustRun(t, dsn, "", "audit", "list", "--user", "tina", "--type", "login_throttled", "--limit", "1000", "--output", "json"))
		if len(evs) != 1 || evs[0].Reason != "account_ip" {
			t.Fatalf("login_throttled events for tina: %+v, want one account_ip", evs)
		}
		// Each kind against the wrong password in the same round: pairing
		// within a round cancels the machine's drift, which the floor on
		// failed checks follows and which moves plain medians apart even
		// when no kind differs (testsupport.ComparePaired).
		names := make([]string, len(kinds))
		for k := range kinds {
			names[k] = kinds[k].name
		}
		report, worst := testsupport.ComparePaired(testsupport.TimedKinds{Names: names, Times: ds})
		t.Log(report)
		if math.Abs(worst) >= 0.10 || math.IsNaN(worst) {
			t.Errorf("a kind differs from the wrong password by %.1f %% paired by round, want under 10 %%", 100*worst)
		}
	})
}

// TestAccountEventsRevokeSessions: setting a user's password and disabling
// the user revoke their refresh-token families (DESIGN "Accounts and
// protection"), so an old refresh token gets invalid_grant, and stays dead
// when the user is enabled again.
func TestAccountEventsRevokeSessions(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		secret := createLoginClient(t, dsn)
		id := createLoginUser(t, dsn, "alice", alicePassword)
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", writeKEK(t, t.TempDir()))
		ctx := context.Background()
		conf := &oauth2.Config{ClientID: loginClientID, ClientSecret: secret, Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{TokenURL: p.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
		login := func(pw string) *oauth2.Token {
			t.Helper()
			tok, err := conf.PasswordCredentialsToken(ctx, "alice", pw)
			if err != nil || tok.RefreshToken == "" {
				t.Fatalf("password grant: %v (refresh token %t)", err, tok != nil && tok.RefreshToken != "")
			}
			return tok
		}
		refresh := func(tok *oauth2.Token) (*oauth2.Token, error) {
			stale := *tok
			stale.Expiry = time.Now().Add(-time.Hour)
			return conf.TokenSource(ctx, &stale).Token()
		}
		refused := func(what string, tok *oauth2.Token) {
			t.Helper()
			_, err := refresh(tok)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("%s: refresh gave %v, want invalid_grant", what, err)
			}
		}
		db := storagetest.Open(t, dsn)
		reasons := func() []string {
			t.Helper()
			fs, err := db.RefreshFamilies(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var rs []string // newest first
			for _, f := range fs {
				rs = append(rs, f.RevokeReason)
			}
			return rs
		}

		// set-password revokes the sessions started before it.
		tok, err := refresh(login(alicePassword))
		if err != nil {
			t.Fatalf("refresh before set-password: %v", err)
		}
		const newPassword = "another long passphrase here"
		mustRun(t, dsn, newPassword+"\n", "users", "set-password", "alice", "--password-stdin")
		refused("after set-password", tok)
		if got := reasons(); !slices.Equal(got, []string{storage.RevokePassword}) {
			t.Fatalf("families after set-password: revoke reasons %q", got)
		}

		// disable revokes them too, and enable does not bring them back.
		tok = login(newPassword)
		mustRun(t, dsn, "", "users", "disable", "alice")
		mustRun(t, dsn, "", "users", "enable", "alice")
		refused("after disable and enable", tok)
		if got := reasons(); !slices.Equal(got, []string{storage.RevokeUserDisabled, storage.RevokePassword}) {
			t.Fatalf("families after disable: revoke reasons %q", got)
		}
		// Disabling again has no live session to revoke, and says nothing.
		mustRun(t, dsn, "", "users", "disable", "alice")
		mustRun(t, dsn, "", "users", "enable", "alice")

		// A new sign-in works as usual.
		if _, err := refresh(login(newPassword)); err != nil {
			t.Fatalf("refresh of a new session: %v", err)
		}

		// The audit trail says why the sessions ended.
		evs := decode[[]audit.View](t, mustRun(t, dsn, "", "audit", "list", "--user", "alice", "--type", "token_revoked", "--output", "json"))
		var got []string
		for _, e := range evs {
			got = append(got, e.Reason)
			if e.Actor != "cli" || e.Subject != id {
				t.Errorf("token_revoked event %+v", e)
			}
		}
		if !slices.Equal(got, []string{storage.RevokeUserDisabled, storage.RevokePassword}) {
			t.Fatalf("token_revoked reasons newest first %q", got)
		}
	})
}

// TestThrottleFlagsRejectBadValues: the throttle flags refuse values that
// would silently become defaults (zero, negative) or break BF-01 (more
// than 99 free failures), from the command line and from the environment.
func TestThrottleFlagsRejectBadValues(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"--login-free-failures", "0"},
		{"--login-free-failures", "100"},
		{"--login-account-budget", "500"},
		{"--login-backoff-base", "0s"},
		{"--login-ip-window", "-1m"},
		{"--login-ip-limit", "many"},
		{"--client-auth-limit", "0"},
		{"--introspect-revoke-rate", "0"},
		{"--introspect-revoke-rate", "NaN"},
		{"--introspect-revoke-rate", "-5"},
		{"--introspect-revoke-burst", "0"},
	} {
		_, err := run(t, "sqlite:keyward.db", "", append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %s: err = %v", strings.Join(args, " "), err)
		}
	}
	t.Setenv("KEYWARD_LOGIN_ACCOUNT_BUDGET", "0")
	_, err := run(t, "sqlite:keyward.db", "", "serve", "--addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "KEYWARD_LOGIN_ACCOUNT_BUDGET") {
		t.Errorf("KEYWARD_LOGIN_ACCOUNT_BUDGET=0: err = %v", err)
	}
}
