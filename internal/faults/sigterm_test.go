package faults

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/storage/storagetest"
)

// TestSIGTERMUnderLoad sends SIGTERM to keyward under a mixed load (its
// graceful shutdown: http.Server.Shutdown) and keeps the load going until
// the process has exited. No request is cut mid-way: every request either
// gets a full, parseable answer or was never accepted (its connection
// refused, or reset before the request was taken; each request has a
// connection of its own). Those without an answer had no effect: a refresh
// left its old token the chain's head (or, within the reuse window, its
// same successor: never half-rotated), and a registration left no account.
// A second keyward on the same database then finds every acknowledged
// write.
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	runSIGTERM(t, false)
}

// TestSIGTERMNegativeControl is the scenario against a server that
// acknowledges before it commits: the checker must find the writes lost
// when the process exited.
func TestSIGTERMNegativeControl(t *testing.T) {
	t.Parallel()
	runSIGTERM(t, true)
}

func runSIGTERM(t *testing.T, faulty bool) {
	c := newCluster(t, storagetest.PostgresDSN(t), faulty, 4)
	chains := 12
	if faulty {
		// Graceful shutdown takes a second or two, time enough for
		// commits a short delay behind: keep them open longer than that,
		// and each chain's rotations further apart.
		c.commitDelay, chains = 5*time.Second, 24
	}
	p := c.serve()
	kinds := []string{kindClientCredentials, kindRefresh, kindPassword, kindRefresh, kindRegister}
	before := 3 * time.Second
	if faulty {
		// Logins and registrations of one client address share throttle
		// rows, which the delayed commits hold locked: they would queue
		// behind one another until shutdown had flushed them all. Refresh
		// chains hold no row in common.
		kinds = []string{kindClientCredentials, kindRefresh}
		before = 8 * time.Second
	}
	w := newWorkload(t, c, []string{p.URL}, kinds...)
	if faulty {
		w.pace = c.commitDelay + 500*time.Millisecond
	}
	w.login(t.Context(), chains)

	ctx, cancel := context.WithCancel(t.Context())
	wg := w.run(ctx, 4)
	time.Sleep(before)
	termAt := time.Now()
	signal(t, p, syscall.SIGTERM)
	exited := time.Now()
	time.Sleep(time.Second) // the load meets the closed port
	cancel()
	wg.Wait()

	w.mu.Lock()
	after := map[string]int{}
	for _, e := range w.events {
		if e.at.After(termAt) {
			after[e.class]++
		}
	}
	w.mu.Unlock()
	t.Logf("SIGTERM: the process exited %v later; answers from the signal on: %v", exited.Sub(termAt).Round(time.Millisecond), after)
	if after[ansRefused] == 0 && !faulty {
		t.Errorf("no request was refused after SIGTERM: the load did not meet the shutdown")
	}

	next := c.serve()
	chains, regs, unanswered := w.verify(t.Context(), next.URL)
	t.Logf("on a new process: %d of %d chains rotate from their acknowledged head, %d answered registrations sign in, %d unanswered registrations took effect",
		chains, len(w.chains), regs, unanswered)
	if unanswered > 0 && !faulty {
		t.Errorf("%d registrations took effect without an answer: cut mid-way", unanswered)
	}
	w.report(faulty)
}
