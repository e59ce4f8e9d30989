package guard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/storage"
)

// refusals remembers which throttle windows this process has reported, so
// that refused traffic costs one audit row and one log line per limit and
// window, not one per request. It holds at most maxRefusals windows: past
// that, windows that have ended are forgotten first and then any, so
// memory stays bounded whatever an attacker sends (a forgotten window is
// at worst reported once more).
type refusals struct {
	mu   sync.Mutex
	seen map[refusal]struct{}
}

type refusal struct {
	key   string
	until time.Time
}

// maxRefusals bounds the windows refusals remembers. Each window is opened
// by failures counted in the database first (a limit's free ones), so a
// real attack fills few.
const maxRefusals = 4096

// first reports whether d is the first refusal of its window seen here, and
// remembers the window.
func (r *refusals) first(d Decision, now time.Time) bool {
	k := refusal{key: d.key, until: d.until.UTC().Truncate(time.Second)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[k]; ok {
		return false
	}
	if r.seen == nil {
		r.seen = map[refusal]struct{}{}
	}
	if len(r.seen) >= maxRefusals {
		for old := range r.seen {
			if !old.until.After(now) {
				delete(r.seen, old)
			}
		}
		for old := range r.seen { // map order is random: drop any quarter
			if len(r.seen) < maxRefusals*3/4 {
				break
			}
			delete(r.seen, old)
		}
	}
	r.seen[k] = struct{}{}
	return true
}

// firstRefusal reports whether d (a refusing decision) is the first refusal
// of its limit and window in this process.
func (t *Throttler) firstRefusal(d Decision) bool { return t.reports.first(d, t.now()) }

// refusedQuietly stands in for the audit row of a Deny that is not the
// first of its window: one single-row write, which costs what the row's
// insert costs, so a refused attempt still takes as long as a wrong
// password (TE-21), but it rewrites one counter under the window's "d:"
// key instead of adding a row.
func (t *Throttler) refusedQuietly(ctx context.Context, d Decision) error {
	now := storage.At(t.now())
	c := storage.Counter{Key: deniedKey("r:" + d.key), UpdatedAt: now, ExpiresAt: storage.At(later(d.until, now.Add(time.Minute)))}
	if err := t.store.SetCounter(ctx, c); err != nil {
		return fmt.Errorf("record refused login: %w", err)
	}
	return nil
}

// Recorder is the part of the audit trail Report needs (*audit.Auditor).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Report reports an attempt the throttle refused, as e (a
// login_throttled event) recorded on rec. The check has counted it in
// keyward_throttled_total already; the audit row, and the WARN log line
// that goes with it, are written only for the first refusal of d's limit
// and window in this process, so throttled traffic costs O(1) rows and log
// lines per window and replica, however much of it comes. A Deny that is
// not reported still costs a write like the row's (refusedQuietly).
func (t *Throttler) Report(ctx context.Context, rec Recorder, d Decision, e audit.Event) {
	if t.firstRefusal(d) {
		rec.Record(ctx, e)
		return
	}
	if d.Verdict == Deny {
		if err := t.refusedQuietly(ctx, d); err != nil {
			t.log.ErrorContext(ctx, "login throttle: record refusal", "err", err)
		}
	}
}
