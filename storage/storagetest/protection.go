package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// RunProtection runs only the throttle and audit cases of the suite (Run
// includes them), for a quick check of the protection tables.
func RunProtection(t *testing.T, open func(t *testing.T) *storage.DB) { runProtection(t, open) }

// runProtection runs the throttle and audit cases.
func runProtection(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("ThrottleRecordFailure", func(t *testing.T) { testThrottleRecordFailure(t, open(t)) })
	t.Run("ThrottleExpiredCounterRestarts", func(t *testing.T) { testThrottleExpiredRestarts(t, open(t)) })
	t.Run("ThrottleResetAndPrefix", func(t *testing.T) { testThrottleReset(t, open(t)) })
	t.Run("ThrottleConcurrentFailures", func(t *testing.T) {
		db := open(t)
		ConcurrentFailures(t, []*storage.DB{db}, 50)
	})
	t.Run("AuditAppendAndFilter", func(t *testing.T) { testAuditAppendAndFilter(t, open(t)) })
	t.Run("AuditPaging", func(t *testing.T) { testAuditPaging(t, open(t)) })
	t.Run("AuditCleansText", func(t *testing.T) { testAuditCleansText(t, open(t)) })
	t.Run("AuditRetention", func(t *testing.T) { testAuditRetention(t, open(t)) })
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// doubling blocks for 2^(failures-1) seconds and forgets after an hour.
func doubling(c storage.Counter) (time.Time, time.Time) {
	now := c.UpdatedAt.Time
	return now.Add(time.Second << (c.Failures - 1)), now.Add(time.Hour)
}

func testThrottleRecordFailure(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	if _, err := db.Counter(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("absent counter: %v, want ErrNotFound", err)
	}
	var seen []storage.Counter
	policy := func(c storage.Counter) (time.Time, time.Time) {
		seen = append(seen, c)
		return doubling(c)
	}
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		c, err := db.RecordFailure(ctx, "k", now, policy)
		if err != nil {
			t.Fatal(err)
		}
		wantBlock := now.Add(time.Second << (i - 1))
		if c.Key != "k" || c.Failures != i || !c.BlockedUntil.Equal(wantBlock) || !c.ExpiresAt.Equal(now.Add(time.Hour)) || !c.UpdatedAt.Equal(now) {
			t.Fatalf("failure %d: %+v", i, c)
		}
		got, err := db.Counter(ctx, "k")
		if err != nil || got != c {
			t.Fatalf("read back %+v, %v; recorded %+v", got, err, c)
		}
	}
	// The policy sees the previous block and expiry, zero for a new count.
	if !seen[0].ExpiresAt.IsZero() || !seen[0].BlockedUntil.IsZero() || seen[0].Failures != 1 {
		t.Errorf("first failure showed the policy %+v", seen[0])
	}
	if !seen[2].ExpiresAt.Equal(t0.Add(2*time.Minute+time.Hour)) || seen[2].Failures != 3 {
		t.Errorf("third failure showed the policy %+v", seen[2])
	}
	// A failure whose policy asks for a shorter block keeps the longer one.
	long := t0.Add(24 * time.Hour)
	if _, err := db.RecordFailure(ctx, "k", t0.Add(4*time.Minute), func(c storage.Counter) (time.Time, time.Time) {
		return long, long
	}); err != nil {
		t.Fatal(err)
	}
	c, err := db.RecordFailure(ctx, "k", t0.Add(5*time.Minute), doubling)
	if err != nil || !c.BlockedUntil.Equal(long) || c.Failures != 5 {
		t.Fatalf("shorter block replaced a longer one: %+v, %v", c, err)
	}
	// Several counters in one transaction come back in the order given.
	cs, err := db.RecordFailures(ctx, t0.Add(6*time.Minute),
		storage.Failure{Key: "z", Policy: doubling}, storage.Failure{Key: "k", Policy: doubling}, storage.Failure{Key: "a", Policy: doubling})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].Key != "z" || cs[1].Key != "k" || cs[1].Failures != 6 || cs[2].Key != "a" || cs[2].Failures != 1 {
		t.Fatalf("RecordFailures returned %+v", cs)
	}
	m, err := db.Counters(ctx, "a", "k", "missing")
	if err != nil || len(m) != 2 || m["k"].Failures != 6 || m["a"].Failures != 1 {
		t.Fatalf("Counters: %v %+v", err, m)
	}
}

func testThrottleExpiredRestarts(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	for i := range 4 {
		if _, err := db.RecordFailure(ctx, "k", t0.Add(time.Duration(i)*time.Second), doubling); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := db.Counter(ctx, "k")
	if !c.Live(t0.Add(59*time.Minute)) || c.Live(t0.Add(2*time.Hour)) {
		t.Fatalf("Live wrong for %+v", c)
	}
	later := t0.Add(2 * time.Hour)
	c, err := db.RecordFailure(ctx, "k", later, doubling)
	if err != nil || c.Failures != 1 || !c.BlockedUntil.Equal(later.Add(time.Second)) {
		t.Fatalf("failure after expiry: %+v, %v; want a fresh count of 1", c, err)
	}
	if _, err := db.RecordFailure(ctx, "old", t0, doubling); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteExpiredCounters(ctx, t0.Add(90*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredCounters: %d, %v; want 1", n, err)
	}
	if _, err := db.Counter(ctx, "old"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired counter kept: %v", err)
	}
	if _, err := db.Counter(ctx, "k"); err != nil {
		t.Fatalf("live counter deleted: %v", err)
	}
}

func testThrottleReset(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	for _, k := range []string{"l:acct", "l:acct:ip1", "l:acct:ip2", "l:acct2", "l:acct2:ip1", "l_acct", "i:ip1"} {
		if _, err := db.RecordFailure(ctx, k, t0, doubling); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.ResetCounters(ctx, "l:acct:ip1", "i:ip1", "missing"); err != nil {
		t.Fatal(err)
	}
	if err := db.ResetCounters(ctx); err != nil {
		t.Fatalf("reset nothing: %v", err)
	}
	n, err := db.ResetCountersWithPrefix(ctx, "l:acct:")
	if err != nil || n != 1 {
		t.Fatalf("reset prefix: %d, %v; want 1", n, err)
	}
	// A prefix is not a pattern: "_" and "%" match only themselves.
	if n, err := db.ResetCountersWithPrefix(ctx, "l%"); err != nil || n != 0 {
		t.Fatalf("reset pattern-like prefix: %d, %v; want 0", n, err)
	}
	if _, err := db.ResetCountersWithPrefix(ctx, ""); err == nil {
		t.Fatal("empty prefix accepted")
	}
	m, err := db.Counters(ctx, "l:acct", "l:acct:ip1", "l:acct:ip2", "l:acct2", "l:acct2:ip1", "l_acct", "i:ip1")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, k := range []string{"l:acct", "l:acct:ip1", "l:acct:ip2", "l:acct2", "l:acct2:ip1", "l_acct", "i:ip1"} {
		if _, ok := m[k]; ok {
			left = append(left, k)
		}
	}
	if got := strings.Join(left, " "); got != "l:acct l:acct2 l:acct2:ip1 l_acct" {
		t.Fatalf("left %q", got)
	}
	mark := storage.Counter{Key: "k:marker", Failures: 0, UpdatedAt: storage.At(t0), ExpiresAt: storage.At(t0.Add(time.Hour))}
	if err := db.SetCounter(ctx, mark); err != nil {
		t.Fatal(err)
	}
	mark.ExpiresAt = storage.At(t0.Add(2 * time.Hour))
	if err := db.SetCounter(ctx, mark); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Counter(ctx, "k:marker"); err != nil || got != mark {
		t.Fatalf("SetCounter read back %+v, %v", got, err)
	}
}

// ConcurrentFailures records n failures on one key from n goroutines spread
// over dbs (handles on the same database, as replicas are) and checks that
// the count is exactly n: no increment is lost.
func ConcurrentFailures(t *testing.T, dbs []*storage.DB, n int) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		db := dbs[i%len(dbs)]
		wg.Go(func() {
			_, errs[i] = db.RecordFailure(ctx, "hot", t0.Add(time.Duration(i)*time.Millisecond), func(c storage.Counter) (time.Time, time.Time) {
				return t0.Add(time.Duration(c.Failures) * time.Second), t0.Add(time.Hour)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	c, err := dbs[0].Counter(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if c.Failures != n {
		t.Fatalf("%d failures counted, want %d", c.Failures, n)
	}
	// The block was set from the final count, never from a stale one.
	if want := t0.Add(time.Duration(n) * time.Second); !c.BlockedUntil.Equal(want) {
		t.Fatalf("blocked until %v, want %v", c.BlockedUntil, want)
	}
}

func appendEvents(t *testing.T, db *storage.DB, es ...storage.AuditEvent) []storage.AuditEvent {
	t.Helper()
	for i := range es {
		if err := db.AppendAudit(t.Context(), &es[i]); err != nil {
			t.Fatal(err)
		}
		if es[i].ID == 0 {
			t.Fatalf("event %d got no id", i)
		}
	}
	return es
}

func ids(es []storage.AuditEvent) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s/%s ", e.Type, e.Subject)
	}
	return strings.TrimSpace(b.String())
}

func testAuditAppendAndFilter(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	full := storage.AuditEvent{
		At: storage.At(t0), Type: "login_failed", Actor: "u1", Subject: "u1", ClientID: "app",
		IP: "192.0.2.1", UserAgent: "curl/8", RequestID: "r1", Outcome: "failure", Reason: "bad_password",
	}
	appendEvents(t, db,
		full,
		storage.AuditEvent{At: storage.At(t0.Add(time.Minute)), Type: "login_succeeded", Subject: "u1", ClientID: "app", Outcome: "success"},
		storage.AuditEvent{At: storage.At(t0.Add(2 * time.Minute)), Type: "login_failed", Subject: "u2", ClientID: "other", Outcome: "failure"},
		storage.AuditEvent{At: storage.At(t0.Add(3 * time.Minute)), Type: "token_issued", Subject: "u1", ClientID: "app", Outcome: "success"},
	)
	tests := []struct {
		name string
		f    storage.AuditFilter
		want string
	}{
		{"all, newest first", storage.AuditFilter{}, "token_issued/u1 login_failed/u2 login_succeeded/u1 login_failed/u1"},
		{"by subject", storage.AuditFilter{Subject: "u1"}, "token_issued/u1 login_succeeded/u1 login_failed/u1"},
		{"by type", storage.AuditFilter{Type: "login_failed"}, "login_failed/u2 login_failed/u1"},
		{"by subject and type", storage.AuditFilter{Subject: "u1", Type: "login_failed"}, "login_failed/u1"},
		{"by client", storage.AuditFilter{ClientID: "other"}, "login_failed/u2"},
		{"since inclusive", storage.AuditFilter{Since: t0.Add(2 * time.Minute)}, "token_issued/u1 login_failed/u2"},
		{"until exclusive", storage.AuditFilter{Until: t0.Add(time.Minute)}, "login_failed/u1"},
		{"window", storage.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, "login_failed/u2 login_succeeded/u1"},
		{"limit", storage.AuditFilter{Limit: 2}, "token_issued/u1 login_failed/u2"},
		{"nothing", storage.AuditFilter{Subject: "nobody"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := db.AuditEvents(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(es); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	es, _ := db.AuditEvents(ctx, storage.AuditFilter{Subject: "u1", Type: "login_failed"})
	got := es[0]
	full.ID = got.ID
	if got != full {
		t.Fatalf("read back %+v, want %+v", got, full)
	}
}

func testAuditPaging(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	var es []storage.AuditEvent
	for i := range 7 {
		es = append(es, storage.AuditEvent{At: storage.At(t0.Add(time.Duration(i) * time.Second)), Type: "token_issued", Subject: fmt.Sprint(i)})
	}
	appendEvents(t, db, es...)
	var pages []string
	f := storage.AuditFilter{Limit: 3}
	for {
		page, err := db.AuditEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		var s []string
		for _, e := range page {
			s = append(s, e.Subject)
		}
		pages = append(pages, strings.Join(s, ","))
		f.BeforeID = page[len(page)-1].ID
	}
	if got := strings.Join(pages, " | "); got != "6,5,4 | 3,2,1 | 0" {
		t.Fatalf("pages %q", got)
	}
	if es, err := db.AuditEvents(ctx, storage.AuditFilter{Limit: 1 << 20}); err != nil || len(es) != 7 {
		t.Fatalf("huge limit: %d, %v", len(es), err)
	}
}

func testAuditCleansText(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	e := storage.AuditEvent{Type: "login_failed", UserAgent: "bad\xff\xfe agent\x00", Subject: strings.Repeat("é", 4000)}
	if err := db.AppendAudit(ctx, &e); err != nil {
		t.Fatalf("text a client can send was refused: %v", err)
	}
	es, err := db.AuditEvents(ctx, storage.AuditFilter{})
	if err != nil || len(es) != 1 {
		t.Fatal(err)
	}
	if es[0].UserAgent != "bad\uFFFD agent" {
		t.Errorf("user agent stored as %q", es[0].UserAgent)
	}
	if len(es[0].Subject) > 1024 || !strings.HasPrefix(strings.Repeat("é", 600), es[0].Subject) {
		t.Errorf("long subject stored as %d bytes", len(es[0].Subject))
	}
	if es[0].At.IsZero() {
		t.Error("At not filled in")
	}
}

func testAuditRetention(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	for i := range 5 {
		appendEvents(t, db, storage.AuditEvent{At: storage.At(t0.Add(time.Duration(i) * 24 * time.Hour)), Type: "token_issued", Subject: fmt.Sprint(i)})
	}
	n, err := db.DeleteAuditBefore(ctx, t0.Add(3*24*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("deleted %d, %v; want 3", n, err)
	}
	es, _ := db.AuditEvents(ctx, storage.AuditFilter{})
	if got := ids(es); got != "token_issued/4 token_issued/3" {
		t.Fatalf("left %q", got)
	}
}
