package password

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrOverloaded reports that a hash or verification was refused because too many were
// already running or waiting (AV-01). Test for it with errors.Is; errors.As with
// *OverloadError gives the suggested Retry-After.
var ErrOverloaded = errors.New("password hashing overloaded")

// OverloadError is the error Hash, Verify and VerifyDummy return when the limiter refuses
// work. The HTTP layer answers 503 with Retry-After set from RetryAfter.
type OverloadError struct {
	RetryAfter time.Duration // whole seconds, at least 1 s
	QueueFull  bool          // true: the wait queue was full; false: the wait timed out
}

// Error says the work was refused and why.
func (e *OverloadError) Error() string {
	if e.QueueFull {
		return "password hashing overloaded: wait queue full"
	}
	return "password hashing overloaded: timed out waiting for a slot"
}

// Is makes errors.Is(err, ErrOverloaded) true.
func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// Outcome labels what happened to one request for a hashing slot; the values are stable
// so they can serve as a metric label.
type Outcome string

// Outcomes of a request for a hashing slot.
const (
	OutcomeAdmitted  Outcome = "admitted"   // ran, possibly after waiting
	OutcomeQueueFull Outcome = "queue_full" // refused at once: ErrOverloaded
	OutcomeTimeout   Outcome = "timeout"    // waited MaxWait: ErrOverloaded
	OutcomeCanceled  Outcome = "canceled"   // ctx ended while waiting
)

// Observation describes one request for a hashing slot, for metrics (a wait-time
// histogram and an outcome counter). It is delivered after the request is decided.
type Observation struct {
	Wait    time.Duration // time spent in the queue; 0 when admitted at once
	Outcome Outcome
}

// Stats is a snapshot of the limiter, for gauges.
type Stats struct {
	InFlight      int           // hashes running now
	Queued        int           // requests waiting for a slot now
	MemoryInUse   int64         // bytes of argon2 memory held by running hashes
	MaxConcurrent int           // configured slot count
	MaxQueue      int           // configured queue length
	MemoryBudget  int64         // configured bytes
	Admitted      uint64        // requests that ran, since the Hasher was made
	Rejected      uint64        // requests refused with ErrOverloaded
	Canceled      uint64        // requests whose ctx ended while waiting
	WaitTotal     time.Duration // summed queue wait of admitted requests
}

// limiter admits work while fewer than maxConc run and their memory fits the budget.
// Waiters are served first in, first out, so a large request is not starved by small ones.
type limiter struct {
	maxConc  int
	budget   uint64 // KiB
	maxQueue int
	maxWait  time.Duration
	observe  func(Observation)

	mu       sync.Mutex
	inFlight int
	memUsed  uint64 // KiB
	waiters  list.List
	avgOp    time.Duration // moving average of how long one admitted request held its slot
	stats    Stats
}

type waiter struct {
	mem   uint64
	ready chan struct{} // closed when the slot is granted
}

// fits reports whether mem KiB may start now; l.mu is held.
func (l *limiter) fits(mem uint64) bool {
	return l.inFlight < l.maxConc && l.memUsed+mem <= l.budget
}

// acquire waits for a slot for work needing mem KiB, and returns the function that gives
// it back. It fails with *OverloadError when the queue is full or maxWait passes, and
// with ctx.Err() when ctx ends first.
func (l *limiter) acquire(ctx context.Context, mem uint64) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.waiters.Len() == 0 && l.fits(mem) {
		l.take(mem)
		l.stats.Admitted++
		l.mu.Unlock()
		l.emit(Observation{Outcome: OutcomeAdmitted})
		return l.releaser(mem), nil
	}
	if l.waiters.Len() >= l.maxQueue {
		l.stats.Rejected++
		retry := l.retryAfter()
		l.mu.Unlock()
		l.emit(Observation{Outcome: OutcomeQueueFull})
		return nil, &OverloadError{RetryAfter: retry, QueueFull: true}
	}
	w := &waiter{mem: mem, ready: make(chan struct{})}
	elem := l.waiters.PushBack(w)
	l.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	var cause error
	outcome := OutcomeCanceled
	select {
	case <-w.ready:
		wait := time.Since(start)
		l.mu.Lock()
		l.stats.WaitTotal += wait
		l.mu.Unlock()
		l.emit(Observation{Wait: wait, Outcome: OutcomeAdmitted})
		return l.releaser(mem), nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timer.C:
		outcome = OutcomeTimeout
	}

	l.mu.Lock()
	select {
	case <-w.ready:
		// Granted while we were giving up. A timeout loses the race and runs; a
		// canceled caller hands the slot straight back.
		if outcome == OutcomeTimeout {
			wait := time.Since(start)
			l.stats.WaitTotal += wait
			l.mu.Unlock()
			l.emit(Observation{Wait: wait, Outcome: OutcomeAdmitted})
			return l.releaser(mem), nil
		}
		l.give(mem)
		l.stats.Admitted--
	default:
		l.waiters.Remove(elem)
		// Leaving may unblock those behind us if we were at the front.
		l.grant()
	}
	if outcome == OutcomeTimeout {
		l.stats.Rejected++
		cause = &OverloadError{RetryAfter: l.retryAfter()}
	} else {
		l.stats.Canceled++
	}
	l.mu.Unlock()
	l.emit(Observation{Wait: time.Since(start), Outcome: outcome})
	return nil, cause
}

// take books a slot; l.mu is held.
func (l *limiter) take(mem uint64) {
	l.inFlight++
	l.memUsed += mem
}

// give returns a slot and admits waiters that now fit; l.mu is held.
func (l *limiter) give(mem uint64) {
	l.inFlight--
	l.memUsed -= mem
	l.grant()
}

// grant admits waiters from the front of the queue while they fit; l.mu is held.
func (l *limiter) grant() {
	for e := l.waiters.Front(); e != nil; e = l.waiters.Front() {
		w := e.Value.(*waiter)
		if !l.fits(w.mem) {
			return
		}
		l.take(w.mem)
		l.stats.Admitted++
		l.waiters.Remove(e)
		close(w.ready)
	}
}

// releaser returns the function that gives back a slot taken now, once.
func (l *limiter) releaser(mem uint64) func() {
	start := time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			held := time.Since(start)
			l.mu.Lock()
			if l.avgOp == 0 {
				l.avgOp = held
			} else {
				l.avgOp += (held - l.avgOp) / 8
			}
			l.give(mem)
			l.mu.Unlock()
		})
	}
}

// retryAfter suggests when a refused client should come back: the time to drain the
// queue at the observed rate, in whole seconds, between 1 s and 60 s; l.mu is held.
func (l *limiter) retryAfter() time.Duration {
	drain := l.avgOp * time.Duration(l.waiters.Len()+l.maxConc) / time.Duration(l.maxConc)
	d := (drain + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), time.Minute)
}

// emit hands o to the observer, if any; l.mu is not held.
func (l *limiter) emit(o Observation) {
	if l.observe != nil {
		l.observe(o)
	}
}

// snapshot returns the current Stats.
func (l *limiter) snapshot() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.InFlight = l.inFlight
	s.Queued = l.waiters.Len()
	s.MemoryInUse = int64(l.memUsed) << 10
	s.MaxConcurrent = l.maxConc
	s.MaxQueue = l.maxQueue
	s.MemoryBudget = int64(l.budget) << 10
	return s
}
