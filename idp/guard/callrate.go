package guard

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// KindCaller is the throttle kind of an authenticated client calling
// introspection or revocation faster than Policy.CallerRate.
const KindCaller = "caller"

// Callers rate-limits the authenticated callers of introspection and
// revocation (BF-09: RFC 7662 §2.1 warns of token scanning; both endpoints
// cost a database read per call). Each caller has a token bucket of
// CallerBurst calls refilled at CallerRate per second, shared by the two
// endpoints. A confidential client is one caller wherever it calls from; a
// public client, whose id anyone may send, is one caller per IP (an IPv6
// /64), so nobody can use up another's budget. The buckets live in this
// process: N replicas allow N times the rate, which bounds the load on
// each replica and keeps a database write off every call.
type Callers struct {
	every   rate.Limit
	burst   int
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics.Metrics

	mu      sync.Mutex
	buckets map[string]*callerBucket
}

type callerBucket struct {
	lim     *rate.Limiter
	refused time.Time // the last refusal; zero when none
}

// maxCallerBuckets bounds the buckets kept. Past it, full (idle) buckets
// are dropped first, which forgets nothing (a full bucket is a fresh one),
// then any, so memory stays bounded whoever calls. A dropped bucket gives
// its caller what a caller from a new address gets, nothing more.
const maxCallerBuckets = 10000

// callerQuiet is how long a caller must go without a refusal before its
// next refusal counts as a new run and is logged again. A caller held at
// the limit (its refused and allowed calls interleave as the bucket
// refills) so logs one line per run, not one per refill.
const callerQuiet = time.Minute

// NewCallers returns the per-caller rate limits of policy p (its CallerRate
// and CallerBurst). now, log and m may be nil (time.Now, no logging, no
// metrics).
func NewCallers(p Policy, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Callers {
	p = p.withDefaults()
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Callers{every: rate.Limit(p.CallerRate), burst: p.CallerBurst, now: now,
		log: log, metrics: m, buckets: map[string]*callerBucket{}}
}

// Allow takes one call from c's bucket, or answers 429 with the time until
// the bucket holds a call again.
func (l *Callers) Allow(ctx context.Context, c storage.Client) error {
	key := c.ID
	if c.Public {
		key = c.ID + "\x00" + IPBucket(web.ClientIP(ctx))
	}
	now := l.now()
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxCallerBuckets {
			l.dropFull(now)
		}
		b = &callerBucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.buckets[key] = b
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait > 0 {
		r.CancelAt(now)
	}
	first := false
	if wait > 0 {
		first = b.refused.IsZero() || now.Sub(b.refused) >= callerQuiet
		b.refused = now
	}
	l.mu.Unlock()

	if wait == 0 {
		return nil
	}
	l.metrics.Throttled(KindCaller)
	if first {
		l.log.WarnContext(ctx, "caller rate limit reached", "client_id", c.ID,
			"rate_per_second", float64(l.every), "burst", l.burst)
	}
	return &web.Error{
		Code: web.ErrTemporarilyUnavail, Description: "too many requests; retry later",
		Status: http.StatusTooManyRequests, RetryAfter: max(time.Second, time.Duration(math.Ceil(wait.Seconds()))*time.Second),
	}
}

// dropFull forgets the buckets that have refilled completely and, if that
// leaves too many, any others until a quarter of the room is free.
func (l *Callers) dropFull(now time.Time) {
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets { // map order is random
		if len(l.buckets) < maxCallerBuckets*3/4 {
			break
		}
		delete(l.buckets, k)
	}
}
