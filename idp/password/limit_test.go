package password

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// holdSlot takes a hashing slot as a running hash would, and returns its release.
func holdSlot(t *testing.T, h *Hasher) func() {
	t.Helper()
	release, err := h.lim.acquire(t.Context(), uint64(h.params.Memory))
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return release
}

func TestOverloadQueueFull(t *testing.T) {
	var mu sync.Mutex
	var outcomes []Outcome
	h := newTestHasher(t, fastParams, WithMaxConcurrent(1), WithMaxQueue(0),
		WithObserver(func(o Observation) { mu.Lock(); outcomes = append(outcomes, o.Outcome); mu.Unlock() }))
	release := holdSlot(t, h)
	defer release()

	start := time.Now()
	_, err := h.Hash(t.Context(), "correct horse battery staple")
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Hash err = %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a full queue took %v to refuse, want at once", d)
	}
	var oe *OverloadError
	if !errors.As(err, &oe) || !oe.QueueFull || oe.RetryAfter < time.Second || oe.RetryAfter%time.Second != 0 {
		t.Errorf("error %#v, want *OverloadError, QueueFull, RetryAfter whole seconds >= 1s", oe)
	}
	if err := h.VerifyDummy(t.Context(), "correct horse battery staple"); !errors.Is(err, ErrOverloaded) {
		t.Errorf("VerifyDummy err = %v, want ErrOverloaded", err)
	}
	if s := h.Stats(); s.Rejected != 2 || s.InFlight != 1 || s.Queued != 0 {
		t.Errorf("stats %+v, want 2 rejected, 1 in flight, 0 queued", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []Outcome{OutcomeAdmitted, OutcomeQueueFull, OutcomeQueueFull}; len(outcomes) != 3 || outcomes[1] != want[1] || outcomes[2] != want[2] {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
}

func TestOverloadTimeout(t *testing.T) {
	h := newTestHasher(t, fastParams, WithMaxConcurrent(1), WithMaxQueue(4), WithMaxWait(50*time.Millisecond))
	release := holdSlot(t, h)
	defer release()

	start := time.Now()
	_, _, err := h.Verify(t.Context(), "correct horse battery staple", h.dummy.encode())
	var oe *OverloadError
	if !errors.As(err, &oe) || oe.QueueFull {
		t.Fatalf("Verify err = %v, want a timed-out *OverloadError", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("refused after %v, want about 50ms", d)
	}
	if s := h.Stats(); s.Queued != 0 || s.Rejected != 1 {
		t.Errorf("stats %+v, want empty queue, 1 rejected", s)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	h := newTestHasher(t, fastParams, WithMaxConcurrent(1), WithMaxQueue(4), WithMaxWait(time.Minute))
	release := holdSlot(t, h)
	defer release()

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := h.Hash(ctx, "correct horse battery staple")
		errc <- err
	}()
	testsupport.Eventually(t, "the hash to queue", time.Second, func() bool { return h.Stats().Queued == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Hash err = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Hash still waiting a second after cancel")
	}
	if s := h.Stats(); s.Queued != 0 || s.Canceled != 1 || s.InFlight != 1 {
		t.Errorf("stats %+v, want 0 queued, 1 canceled, 1 in flight", s)
	}
	if _, err := h.Hash(ctx, "correct horse battery staple"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a canceled ctx err = %v, want context.Canceled", err)
	}
}

func TestWaiterRunsAfterRelease(t *testing.T) {
	h := newTestHasher(t, fastParams, WithMaxConcurrent(1), WithMaxQueue(4))
	release := holdSlot(t, h)
	errc := make(chan error, 1)
	go func() {
		_, err := h.Hash(t.Context(), "correct horse battery staple")
		errc <- err
	}()
	testsupport.Eventually(t, "the hash to queue", time.Second, func() bool { return h.Stats().Queued == 1 })
	release()
	release() // a second call is a no-op
	if err := <-errc; err != nil {
		t.Fatalf("queued Hash: %v", err)
	}
	if s := h.Stats(); s.InFlight != 0 || s.Queued != 0 || s.Admitted != 2 || s.WaitTotal <= 0 {
		t.Errorf("stats %+v, want idle, 2 admitted, some wait", s)
	}
}

// TestMemoryBudgetBoundsConcurrency checks AV-01: with room for two hashes in the
// budget, a third waits even though slots are free, and a large stored hash waits until
// it fits rather than overtaking the budget.
func TestMemoryBudgetBoundsConcurrency(t *testing.T) {
	p := Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := newTestHasher(t, p, WithMaxConcurrent(8), WithMemoryBudget(2<<20),
		WithCeiling(Ceiling{Memory: 2048, Time: 1, BcryptCost: minBcryptCost}))
	if s := h.Stats(); s.MaxConcurrent != 8 || s.MemoryBudget != 2<<20 {
		t.Fatalf("stats %+v", s)
	}
	r1, r2 := holdSlot(t, h), holdSlot(t, h)
	done := make(chan error, 1)
	go func() { done <- h.VerifyDummy(t.Context(), "correct horse battery staple") }()
	testsupport.Eventually(t, "the third to queue", time.Second, func() bool { return h.Stats().Queued == 1 })
	if s := h.Stats(); s.InFlight != 2 || s.MemoryInUse != 2<<20 {
		t.Errorf("stats %+v, want 2 in flight using the whole budget", s)
	}
	r1()
	if err := <-done; err != nil {
		t.Fatalf("VerifyDummy: %v", err)
	}
	r2()

	// A stored hash using the whole budget waits for both smaller ones to finish.
	big := phc{memory: 2048, time: 1, threads: 1, salt: make([]byte, 16), key: make([]byte, 32)}
	r1 = holdSlot(t, h)
	done2 := make(chan bool, 1)
	go func() {
		_, _, err := h.Verify(t.Context(), "correct horse battery staple", big.encode())
		done2 <- err == nil
	}()
	testsupport.Eventually(t, "the large hash to queue", time.Second, func() bool { return h.Stats().Queued == 1 })
	r1()
	if !<-done2 {
		t.Error("large stored hash did not verify once the budget was free")
	}
}

func TestDefaultMaxConcurrent(t *testing.T) {
	h := newTestHasher(t, DefaultParams())
	s := h.Stats()
	want := max(1, min(runtimeProcs(), (256<<10)/19456))
	if s.MaxConcurrent != want || s.MaxQueue != DefaultMaxQueue || s.MemoryBudget != DefaultMemoryBudget {
		t.Errorf("stats %+v, want max concurrent %d, queue %d, budget %d", s, want, DefaultMaxQueue, DefaultMemoryBudget)
	}
	h = newTestHasher(t, DefaultParams(), WithMemoryBudget(40<<20))
	if got := h.Stats().MaxConcurrent; got != min(2, runtimeProcs()) {
		t.Errorf("max concurrent with a 40 MiB budget = %d, want %d (two 19 MiB hashes, one per core)", got, min(2, runtimeProcs()))
	}
}

// TestConcurrentUse runs many hashes and verifications at once under -race and checks
// that the limiter never lets more than MaxConcurrent run or exceeds the budget.
func TestConcurrentUse(t *testing.T) {
	const maxConc = 2
	var running, peak atomic.Int32
	h := newTestHasher(t, fastParams, WithMaxConcurrent(maxConc), WithMaxQueue(64), WithMaxWait(10*time.Second))
	enc := mustHash(t, h, "correct horse battery staple")

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := h.Stats()
			if s.InFlight > maxConc || s.MemoryInUse > s.MemoryBudget {
				t.Errorf("stats %+v exceed the limits", s)
			}
			n := int32(s.InFlight)
			if n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(50 * time.Microsecond)
		}
	})

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			running.Add(1)
			defer running.Add(-1)
			for range 5 {
				switch i % 3 {
				case 0:
					if ok, _, err := h.Verify(t.Context(), "correct horse battery staple", enc); !ok || err != nil {
						t.Errorf("Verify = %v, %v", ok, err)
					}
				case 1:
					if _, err := h.Hash(t.Context(), "another good passphrase"); err != nil {
						t.Errorf("Hash: %v", err)
					}
				default:
					if err := h.VerifyDummy(t.Context(), "nobody's password"); err != nil {
						t.Errorf("VerifyDummy: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if s := h.Stats(); s.InFlight != 0 || s.Queued != 0 || s.MemoryInUse != 0 || s.Admitted != 16*5+1 {
		t.Errorf("final stats %+v, want idle with %d admitted", s, 16*5+1)
	}
	if peak.Load() > maxConc {
		t.Errorf("peak in flight %d > %d", peak.Load(), maxConc)
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
