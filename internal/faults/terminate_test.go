package faults

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/storage/storagetest"
)

// TestBackendsTerminatedDuringRotation kills keyward's PostgreSQL
// connections from the server side (pg_terminate_backend, as the superuser,
// of every backend of the test's own database, in a loop) while refresh
// rotations run. Each client sees success or a retryable error (503
// temporarily_unavailable, or another 5xx in RFC 6749 JSON), never a
// half-rotated family: after each retryable error the old token still
// works; after each 200 a retry of the old token gives the same successor
// (the reuse window), never a second one, and the new token works; and at
// the end each chain's head rotates and the token before it is refused.
func TestBackendsTerminatedDuringRotation(t *testing.T) {
	t.Parallel()
	runTerminate(t, false, 8*time.Second)
}

// TestBackendsTerminatedNegativeControl is the scenario, shorter, against
// a server that acknowledges before it commits: the checker must find the
// rotations the killed connections lost.
func TestBackendsTerminatedNegativeControl(t *testing.T) {
	t.Parallel()
	runTerminate(t, true, 4*time.Second)
}

func runTerminate(t *testing.T, faulty bool, d time.Duration) {
	dsn := storagetest.PostgresDSN(t)
	c := newCluster(t, dsn, faulty, 4)
	p := c.serve()
	w := newWorkload(t, c, []string{p.URL}, kindRefresh, kindRefresh, kindRefresh, kindClientCredentials)
	w.allow5xx, w.checkReplay = true, true
	w.pace = 600 * time.Millisecond
	w.login(t.Context(), 16)

	admin, err := sql.Open("postgres", storagetest.PostgresServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")

	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	wg := w.run(ctx, 4)
	killed, rounds := 0, 0
	for ctx.Err() == nil {
		var n int
		err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, name).Scan(&n)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		killed += n
		rounds++
		time.Sleep(time.Duration(20+rounds%5*20) * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d backends of keyward terminated in %d rounds over %v", killed, rounds, d)
	if killed == 0 && !faulty {
		t.Errorf("no backend was terminated: the fault did not happen")
	}
	chains, _, _ := w.verify(t.Context(), p.URL)
	t.Logf("after the terminations: %d of %d chains rotate from their acknowledged head, the token before refused", chains, len(w.chains))
	w.report(faulty)
}
