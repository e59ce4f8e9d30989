package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

func TestThrottlePolicyDelays(t *testing.T) {
	var p Policy // the defaults
	tests := []struct {
		name     string
		delay    func(int) time.Duration
		failures int
		want     time.Duration
	}{
		{"pair: first failure is free", p.PairDelay, 1, 0},
		{"pair: fifth failure is free", p.PairDelay, 5, 0},
		{"pair: sixth waits 1s", p.PairDelay, 6, time.Second},
		{"pair: seventh waits 2s", p.PairDelay, 7, 2 * time.Second},
		{"pair: eighth waits 4s", p.PairDelay, 8, 4 * time.Second},
		{"pair: fifteenth waits 512s", p.PairDelay, 15, 512 * time.Second},
		{"pair: sixteenth is capped at 15m", p.PairDelay, 16, 15 * time.Minute},
		{"pair: hundredth is capped", p.PairDelay, 100, 15 * time.Minute},
		{"pair: no overflow far out", p.PairDelay, 1 << 20, 15 * time.Minute},
		{"account: twentieth is free", p.AccountDelay, 20, 0},
		{"account: 21st waits 30s", p.AccountDelay, 21, 30 * time.Second},
		{"account: 22nd waits 60s", p.AccountDelay, 22, time.Minute},
		{"account: 25th waits 8m", p.AccountDelay, 25, 8 * time.Minute},
		{"account: 26th is capped at 15m", p.AccountDelay, 26, 15 * time.Minute},
		{"custom free and cap", Policy{FreeFailures: 1, BaseDelay: time.Minute, MaxDelay: 3 * time.Minute}.PairDelay, 4, 3 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.delay(tt.failures); got != tt.want {
				t.Fatalf("delay after %d failures = %v, want %v", tt.failures, got, tt.want)
			}
		})
	}
}

// TestThrottleAccountBudgetTakesHours: an attacker spreading guesses over
// many IPs must wait the account-wide delay between guesses, so 100
// consecutive failures take far more than an hour (NIST SP 800-63B-4 §3.2.2).
func TestThrottleAccountBudgetTakesHours(t *testing.T) {
	var p Policy
	var total time.Duration
	for n := 1; n < 100; n++ { // the wait after failure n, before failure n+1
		total += p.AccountDelay(n)
	}
	if total < 10*time.Hour {
		t.Fatalf("100 account-wide failures take only %v", total)
	}
	t.Logf("100 failures take at least %v", total)
}

func TestThrottleDecideLogin(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	blocked := func(d time.Duration) storage.Counter {
		return storage.Counter{Failures: 9, BlockedUntil: storage.At(now.Add(d)), ExpiresAt: storage.At(now.Add(time.Hour))}
	}
	expired := storage.Counter{Failures: 9, BlockedUntil: storage.At(now.Add(time.Minute)), ExpiresAt: storage.At(now.Add(-time.Second))}
	known := storage.Counter{ExpiresAt: storage.At(now.Add(time.Hour))}
	none := storage.Counter{}
	tests := []struct {
		name                     string
		pair, account, ip, known storage.Counter
		want                     Decision
	}{
		{"nothing counted", none, none, none, none, Decision{}},
		{"failures but no block", storage.Counter{Failures: 3, ExpiresAt: storage.At(now.Add(time.Hour))}, none, none, none, Decision{}},
		{"block over", blocked(-time.Second), blocked(0), blocked(-time.Hour), none, Decision{}},
		{"expired counter ignored", expired, expired, expired, none, Decision{}},
		{"pair blocked", blocked(4 * time.Second), none, none, none, Decision{Verdict: Deny, Kind: KindAccountIP, RetryAfter: 4 * time.Second}},
		{"account blocked", none, blocked(time.Minute), none, none, Decision{Verdict: Deny, Kind: KindAccount, RetryAfter: time.Minute}},
		{"account blocked, known IP passes", none, blocked(time.Minute), none, known, Decision{}},
		{"known IP still has its own backoff", blocked(time.Second), blocked(time.Minute), none, known, Decision{Verdict: Deny, Kind: KindAccountIP, RetryAfter: time.Second}},
		{"IP throttle wins", blocked(time.Second), blocked(time.Minute), blocked(5 * time.Minute), none, Decision{Verdict: Throttle, Kind: KindIP, RetryAfter: 5 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decideLogin(now, tt.pair, tt.account, tt.ip, tt.known); !sameDecision(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// sameDecision compares what a caller sees of two decisions.
func sameDecision(a, b Decision) bool {
	return a.Verdict == b.Verdict && a.Kind == b.Kind && a.RetryAfter == b.RetryAfter
}

// TestThrottleDecideClient: a (client, IP) over its limit is refused before
// any check; an IP over its limit is refused before any check only for a
// client that failed from it in the window, and every other client is
// checked first (VerifyFirst), so a valid one is not shut out (issue 12
// finding 4).
func TestThrottleDecideClient(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	blocked := func(d time.Duration) storage.Counter {
		return storage.Counter{Failures: 30, BlockedUntil: storage.At(now.Add(d)), ExpiresAt: storage.At(now.Add(d))}
	}
	failed := storage.Counter{Failures: 1, ExpiresAt: storage.At(now.Add(time.Minute))}
	none := storage.Counter{}
	tests := []struct {
		name       string
		client, ip storage.Counter
		want       Decision
	}{
		{"nothing counted", none, none, Decision{}},
		{"a few failures", failed, storage.Counter{Failures: 29, ExpiresAt: storage.At(now.Add(time.Minute))}, Decision{}},
		{"client blocked", blocked(time.Minute), none, Decision{Verdict: Throttle, Kind: KindClient, RetryAfter: time.Minute}},
		{"IP hot, fresh client: check it first", none, blocked(5 * time.Minute), Decision{Verdict: VerifyFirst, Kind: KindIP, RetryAfter: 5 * time.Minute}},
		{"IP hot, client failed from it", failed, blocked(5 * time.Minute), Decision{Verdict: Throttle, Kind: KindIP, RetryAfter: 5 * time.Minute}},
		{"IP block over", failed, blocked(-time.Second), Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideClient(now, tt.client, tt.ip)
			if !sameDecision(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.Allowed() != (tt.want.Verdict == Allow || tt.want.Verdict == VerifyFirst) {
				t.Fatalf("Allowed() = %v for %+v", got.Allowed(), got)
			}
			if (got.Err() != nil) != (got.Verdict == Throttle || got.Verdict == VerifyFirst) {
				t.Fatalf("Err() = %v for %+v", got.Err(), got)
			}
		})
	}
}

func TestThrottleIPBucket(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
		{strings.Repeat("x", 1000), strings.Repeat("x", 64)},
	}
	for _, tt := range tests {
		if got := IPBucket(tt.ip); got != tt.want {
			t.Errorf("IPBucket(%.20q) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestThrottleKeysBounded(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	for _, k := range []string{pairKey(accountHash(huge), IPBucket(huge)), clientKey(huge, IPBucket(huge))} {
		if len(k) > 80 {
			t.Fatalf("key of %d bytes from a 1 MB input", len(k))
		}
	}
	if accountHash("Alice") != accountHash("alice") || accountHash("ａｌｉｃｅ") != accountHash("alice") {
		t.Error("usernames storage treats as one account get different counters")
	}
	if accountHash("alice") == accountHash("alice2") {
		t.Error("different accounts share a counter")
	}
}

func TestThrottleDecisionErr(t *testing.T) {
	if (Decision{Verdict: Deny, Kind: KindAccount, RetryAfter: time.Minute}).Err() != nil {
		t.Fatal("a Deny must answer as a wrong password, not with its own error")
	}
	d := Decision{Verdict: Throttle, Kind: KindIP, RetryAfter: 90*time.Second + time.Millisecond}
	w := httptest.NewRecorder()
	web.WriteError(slog.New(slog.DiscardHandler), w, httptest.NewRequest(http.MethodPost, "/oauth2/token", nil), d.Err())
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "91" || !strings.Contains(w.Body.String(), `"temporarily_unavailable"`) {
		t.Fatalf("429 answer: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// clock is the tests' time, moved by hand (testsupport.Clock).
type clock = testsupport.Clock

// replicas opens two handles on one fresh database and a Throttler on each,
// sharing a clock: two Keyward replicas.
func replicas(t *testing.T, b storagetest.Backend, p Policy) (*Throttler, *Throttler, *clock) {
	dsn := b.DSN(t)
	clk := testsupport.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	one := NewThrottler(storagetest.Open(t, dsn), p, clk.Now, nil, nil)
	two := NewThrottler(storagetest.Open(t, dsn), p, clk.Now, nil, nil)
	return one, two, clk
}

func mustCheck(t *testing.T, th *Throttler, account, ip string) Decision {
	t.Helper()
	d, err := th.CheckLogin(t.Context(), account, ip)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustFail(t *testing.T, th *Throttler, account, ip string) {
	t.Helper()
	if err := th.LoginFailed(t.Context(), account, ip); err != nil {
		t.Fatal(err)
	}
}

func TestThrottleReplicas(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("AttackerIPBackoff", func(t *testing.T) { testThrottleAttackerIP(t, b) })
			t.Run("AccountBudgetAcrossReplicas", func(t *testing.T) { testThrottleAccountBudget(t, b) })
			t.Run("IPRate429", func(t *testing.T) { testThrottleIPRate(t, b) })
			t.Run("ClientAuth429", func(t *testing.T) { testThrottleClient(t, b) })
			t.Run("CleanupRun", func(t *testing.T) { testThrottleRun(t, b) })
		})
	}
}

func testThrottleAttackerIP(t *testing.T, b storagetest.Backend) {
	one, two, clk := replicas(t, b, Policy{})
	const attacker, victim = "198.51.100.66", "203.0.113.7"
	for i := range 5 { // five free failures, alternating replicas
		th := []*Throttler{one, two}[i%2]
		if d := mustCheck(t, th, "alice", attacker); !d.Allowed() {
			t.Fatalf("attempt %d refused: %+v", i+1, d)
		}
		mustFail(t, th, "Alice", attacker)
	}
	if d := mustCheck(t, one, "alice", attacker); !d.Allowed() {
		t.Fatalf("sixth attempt refused before any backoff: %+v", d)
	}
	mustFail(t, two, "alice", attacker)
	d := mustCheck(t, one, "ALICE", attacker)
	if d.Verdict != Deny || d.Kind != KindAccountIP || d.RetryAfter != time.Second || d.Err() != nil {
		t.Fatalf("after 6 failures the attacker got %+v, want a 1s Deny", d)
	}
	// The victim, elsewhere, is not locked out.
	if d := mustCheck(t, two, "alice", victim); !d.Allowed() {
		t.Fatalf("victim refused while the attacker is backed off: %+v", d)
	}
	// Doubling, then automatic unlock once the wait is over.
	clk.Advance(time.Second)
	mustFail(t, one, "alice", attacker)
	if d := mustCheck(t, two, "alice", attacker); d.RetryAfter != 2*time.Second {
		t.Fatalf("seventh failure: %+v, want a 2s wait", d)
	}
	clk.Advance(2 * time.Second)
	if d := mustCheck(t, two, "alice", attacker); !d.Allowed() {
		t.Fatalf("backoff did not lift on its own: %+v", d)
	}
	// The victim's success does not lift the attacker's backoff ...
	mustFail(t, one, "alice", attacker)
	if err := two.LoginSucceeded(t.Context(), "alice", victim); err != nil {
		t.Fatal(err)
	}
	if d := mustCheck(t, one, "alice", attacker); d.Kind != KindAccountIP {
		t.Fatalf("victim's success unblocked the attacker: %+v", d)
	}
	// ... a success from the attacker's own IP resets it (BF-05) ...
	clk.Advance(time.Hour)
	if err := one.LoginSucceeded(t.Context(), "alice", attacker); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustFail(t, two, "alice", attacker)
		if d := mustCheck(t, one, "alice", attacker); !d.Allowed() {
			t.Fatalf("failure %d after a success already backs off: %+v", i+1, d)
		}
	}
	// ... and an operator's Unlock clears every IP's count.
	mustFail(t, two, "alice", attacker)
	if d := mustCheck(t, one, "alice", attacker); d.Allowed() {
		t.Fatal("no backoff after 6 failures")
	}
	if err := two.Unlock(t.Context(), "ALICE"); err != nil {
		t.Fatal(err)
	}
	if d := mustCheck(t, one, "alice", attacker); !d.Allowed() {
		t.Fatalf("Unlock left %+v", d)
	}
	// Another account from the attacker's IP was never affected.
	if d := mustCheck(t, one, "bob", attacker); !d.Allowed() {
		t.Fatalf("bob refused: %+v", d)
	}
}

func testThrottleAccountBudget(t *testing.T, b storagetest.Backend) {
	one, two, clk := replicas(t, b, Policy{})
	const home = "2001:db8:cafe:1::10"
	if err := one.LoginSucceeded(t.Context(), "alice", home); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	// 100 failures, each from its own IP, spread over both replicas; the
	// attacker waits whenever told to.
	for i := range 100 {
		th := []*Throttler{one, two}[i%2]
		ip := fmt.Sprintf("198.51.%d.%d", 100+i/200, i%200+1)
		for {
			d := mustCheck(t, th, "alice", ip)
			if d.Allowed() {
				break
			}
			if d.Verdict != Deny || d.Kind != KindAccount {
				t.Fatalf("failure %d: %+v, want an account-wide Deny", i+1, d)
			}
			clk.Advance(d.RetryAfter)
		}
		mustFail(t, th, "alice", ip)
		if i == 20 {
			// Past the budget: a fresh IP is refused, the user's usual
			// network (another address in the same /64) is not.
			if d := mustCheck(t, two, "alice", "203.0.113.99"); d.Kind != KindAccount {
				t.Fatalf("after 21 failures a fresh IP got %+v", d)
			}
			if d := mustCheck(t, one, "alice", "2001:db8:cafe:1::99"); !d.Allowed() {
				t.Fatalf("the known network was refused: %+v", d)
			}
		}
	}
	took := clk.Now().Sub(start)
	var want time.Duration
	for n := 1; n < 100; n++ {
		want += (Policy{}).AccountDelay(n)
	}
	if took < time.Hour || took != want {
		t.Fatalf("100 distributed failures took %v of simulated time, want %v (> 1h)", took, want)
	}
	// The 101st attempt, right away, is refused whoever sends it.
	if d := mustCheck(t, one, "alice", "192.0.2.200"); d.Verdict != Deny {
		t.Fatalf("101st attempt: %+v", d)
	}
	if d := mustCheck(t, two, "bob", "192.0.2.200"); !d.Allowed() {
		t.Fatalf("another account refused: %+v", d)
	}
	// A password reset (Unlock) lets the user in at once (BF-04).
	if err := one.Unlock(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if d := mustCheck(t, two, "alice", "192.0.2.200"); !d.Allowed() {
		t.Fatalf("after Unlock: %+v", d)
	}
}

func testThrottleIPRate(t *testing.T, b storagetest.Backend) {
	one, two, clk := replicas(t, b, Policy{IPFailures: 10, IPWindow: 10 * time.Minute})
	const sprayer = "2001:db8:bad:1::1"
	for i := range 10 { // one password against many usernames
		th := []*Throttler{one, two}[i%2]
		user := fmt.Sprintf("user%d", i)
		if d := mustCheck(t, th, user, sprayer); !d.Allowed() {
			t.Fatalf("attempt %d refused: %+v", i+1, d)
		}
		mustFail(t, th, user, sprayer)
		clk.Advance(time.Second)
	}
	// Any account, from anywhere in the sprayer's /64, now gets 429.
	d := mustCheck(t, one, "someone-else", "2001:db8:bad:1:ffff::2")
	if d.Verdict != Throttle || d.Kind != KindIP || d.RetryAfter != 10*time.Minute-10*time.Second {
		t.Fatalf("sprayer got %+v", d)
	}
	var oe *web.Error
	if err := d.Err(); !errors.As(err, &oe) || oe.Status != http.StatusTooManyRequests || oe.RetryAfter != d.RetryAfter {
		t.Fatalf("Err() = %v", err)
	}
	// Failed logins are not failed client authentications: the client
	// the logins came through still authenticates from there (issue 12
	// finding 4), and the logins it sends meet the 429 above.
	if d, _ := two.CheckClient(t.Context(), "app", sprayer); d.Verdict != Allow {
		t.Fatalf("client auth from the sprayer: %+v", d)
	}
	if d := mustCheck(t, two, "user1", "2001:db8:bad:2::1"); !d.Allowed() {
		t.Fatalf("the next /64 was throttled: %+v", d)
	}
	// The window ends and the IP may try again; success does not reset it.
	clk.Advance(10 * time.Minute)
	if d := mustCheck(t, one, "user1", sprayer); !d.Allowed() {
		t.Fatalf("after the window: %+v", d)
	}
}

func testThrottleClient(t *testing.T, b storagetest.Backend) {
	one, two, clk := replicas(t, b, Policy{})
	const attacker, legit = "198.51.100.9", "192.0.2.10"
	for i := range 20 {
		th := []*Throttler{one, two}[i%2]
		if d, err := th.CheckClient(t.Context(), "cc", attacker); err != nil || !d.Allowed() {
			t.Fatalf("attempt %d refused: %+v %v", i+1, d, err)
		}
		if err := th.ClientAuthFailed(t.Context(), "cc", attacker); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	d, err := one.CheckClient(t.Context(), "cc", attacker)
	if err != nil || d.Verdict != Throttle || d.Kind != KindClient || d.RetryAfter <= 0 || d.Err() == nil {
		t.Fatalf("21st attempt: %+v %v", d, err)
	}
	// The real client elsewhere, and other clients, are unaffected (CA-08).
	if d, _ := two.CheckClient(t.Context(), "cc", legit); !d.Allowed() {
		t.Fatalf("legitimate client refused: %+v", d)
	}
	if d, _ := two.CheckClient(t.Context(), "other", attacker); !d.Allowed() {
		t.Fatalf("another client refused: %+v", d)
	}
}

func testThrottleRun(t *testing.T, b storagetest.Backend) {
	dsn := b.DSN(t)
	db := storagetest.Open(t, dsn)
	clk := testsupport.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	th := NewThrottler(db, Policy{CleanupInterval: 10 * time.Millisecond}, clk.Now, nil, nil)
	mustFail(t, th, "alice", "192.0.2.1")
	clk.Advance(48 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { th.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := db.SQL().GetContext(t.Context(), &n, `SELECT COUNT(*) FROM throttle_counters`); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("Run did not delete expired counters")
}
