package guard

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
)

// TestCallerRateLimitLogsOncePerRun: a caller held at the limit, whose
// refused and allowed calls interleave as its bucket refills, gets a
// metric per refusal but one log line per run of refusals, not one per
// refill (issue 12 finding 2); a run after a quiet spell is logged again.
// The buckets stay bounded whatever number of public callers (one per
// IPv6 /64) calls.
func TestCallerRateLimitLogsOncePerRun(t *testing.T) {
	clk := testsupport.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := &bytes.Buffer{}
	l := &Callers{every: 10, burst: 5, now: clk.Now, log: slog.New(slog.NewJSONHandler(logs, nil)),
		buckets: map[string]*callerBucket{}}
	rs := storage.Client{ID: "RS"}
	refused := 0
	for range 3000 { // 100 calls a second against 10
		if l.Allow(t.Context(), rs) != nil {
			refused++
		}
		clk.Advance(10 * time.Millisecond)
	}
	if refused < 2500 || refused == 3000 {
		t.Fatalf("%d of 3000 calls refused, want about 2,700 with some allowed between", refused)
	}
	if n := strings.Count(logs.String(), "caller rate limit reached"); n != 1 {
		t.Fatalf("%d log lines for one run of %d refusals, want 1", n, refused)
	}
	clk.Advance(callerQuiet)
	for range 10 {
		l.Allow(t.Context(), rs)
	}
	if n := strings.Count(logs.String(), "caller rate limit reached"); n != 2 {
		t.Fatalf("%d log lines after a quiet spell and a new run, want 2", n)
	}

	pub := storage.Client{ID: "pub1", Public: true}
	for i := range 3 * maxCallerBuckets {
		ctx := web.WithClientIP(t.Context(), fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff))
		for range 6 { // empty each bucket, so none is dropped as full
			l.Allow(ctx, pub)
		}
		if len(l.buckets) > maxCallerBuckets {
			t.Fatalf("%d buckets after %d public callers, want at most %d", len(l.buckets), i+1, maxCallerBuckets)
		}
	}
}
