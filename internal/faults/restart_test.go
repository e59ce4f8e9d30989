package faults

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// TestPostgresRestartUnderLoad stops the test's own PostgreSQL cluster
// (pg_ctl stop -m fast) under a steady mixed load (client_credentials,
// password, refresh rotations, registrations), keeps it down for a few
// seconds and starts it again, with the same keyward process serving
// throughout. While it is down every answer is 503 with Retry-After and
// temporarily_unavailable (never a 500, nor a request hanging past the
// client's bound); each kind of request succeeds again within seconds of
// PostgreSQL's return, without a restart of keyward; and every rotation
// and registration answered before the outage is still there and usable.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	runPostgresRestart(t, false, 4*time.Second, 4*time.Second)
}

// TestPostgresRestartNegativeControl runs the same scenario, shorter,
// against a server that acknowledges before it commits: the checker must
// find the writes the stop lost.
func TestPostgresRestartNegativeControl(t *testing.T) {
	t.Parallel()
	runPostgresRestart(t, true, 4*time.Second, 2*time.Second)
}

func runPostgresRestart(t *testing.T, faulty bool, before, down time.Duration) {
	pg := testsupport.StartPrivatePostgres(t)
	c := newCluster(t, pg.DSN, faulty, 4)
	p := c.serve()
	kinds := []string{kindClientCredentials, kindRefresh, kindPassword, kindRefresh, kindRegister}
	if faulty {
		// Logins and registrations of one client address share throttle
		// rows, which the delayed commits hold locked: the workers would
		// queue behind them instead of rotating. Refresh chains share none.
		kinds = []string{kindClientCredentials, kindRefresh}
	}
	w := newWorkload(t, c, []string{p.URL}, kinds...)
	w.login(t.Context(), 12)

	ctx, cancel := context.WithCancel(t.Context())
	wg := w.run(ctx, 4)
	time.Sleep(before)
	stopAt := time.Now()
	pg.Stop(t, "fast")
	stopped := time.Now()
	time.Sleep(down)
	pg.Start(t)
	upAt := time.Now()
	deadline := upAt.Add(15 * time.Second)
	recovered := map[string]time.Duration{}
	for time.Now().Before(deadline) && len(recovered) < len(slices.Compact(slices.Sorted(slices.Values(kinds)))) {
		time.Sleep(100 * time.Millisecond)
		w.mu.Lock()
		recovered = firstOKAfter(w, upAt)
		w.mu.Unlock()
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()

	// While PostgreSQL was down (from the moment pg_ctl returned until it
	// started again), only 503 temporarily_unavailable with Retry-After.
	w.mu.Lock()
	var downCounts = map[string]int{}
	for _, e := range w.events {
		if e.at.After(stopped) && e.at.Before(upAt.Add(-500*time.Millisecond)) {
			downCounts[e.class]++
			if e.class != ansUnavailable && !faulty {
				w.problems = append(w.problems, "while PostgreSQL was down: "+e.class)
			}
		}
	}
	w.mu.Unlock()
	t.Logf("PostgreSQL stopped in %v, down %v; answers while down: %v", stopped.Sub(stopAt).Round(time.Millisecond), upAt.Sub(stopped).Round(time.Millisecond), downCounts)
	t.Logf("first success after PostgreSQL came back, by kind: %v", recovered)
	if !faulty {
		if downCounts[ansUnavailable] == 0 {
			t.Errorf("no request was answered while PostgreSQL was down: the outage was not observed")
		}
		for _, k := range []string{kindClientCredentials, kindPassword, kindRefresh, kindRegister} {
			if _, ok := recovered[k]; !ok {
				t.Errorf("%s did not recover within 15 s of PostgreSQL's return", k)
			}
		}
	}
	chains, regs, _ := w.verify(t.Context(), p.URL)
	t.Logf("after the restart: %d of %d chains rotate from their acknowledged head, %d answered registrations sign in", chains, len(w.chains), regs)
	w.report(faulty)
}

// firstOKAfter is, per kind, how long after t0 its first success came.
// The caller holds w.mu.
func firstOKAfter(w *workload, t0 time.Time) map[string]time.Duration {
	got := map[string]time.Duration{}
	for _, e := range w.events {
		if e.class == ansOK && e.at.After(t0) {
			k := e.kind
			if d, ok := got[k]; !ok || e.at.Sub(t0) < d {
				got[k] = e.at.Sub(t0).Round(10 * time.Millisecond)
			}
		}
	}
	return got
}
