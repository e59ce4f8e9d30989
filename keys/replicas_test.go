package keys

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestReplicasFirstStart starts four replicas, each with its own handle, on
// one empty database at once: they create one key set and all sign with it.
func TestReplicasFirstStart(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		const n = 4
		kek, c := NewKEK(), newClock()
		dbs := make([]*storage.DB, n)
		for i := range dbs {
			dbs[i] = storagetest.Open(t, dsn)
		}
		ms := make([]*Manager, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { ms[i], errs[i] = NewManager(t.Context(), dbs[i], kek, managerPolicy, nil, c.Now) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if v, _ := dbs[0].KeySetVersion(t.Context()); v != 1 {
			t.Fatalf("version %d, want 1: the set was created more than once", v)
		}
		for i, m := range ms {
			if activeKID(m) != activeKID(ms[0]) || len(m.Keys()) != 2 {
				t.Fatalf("replica %d sees %+v, replica 0 %+v", i, m.Keys(), ms[0].Keys())
			}
		}
	})
}

// TestReplicasRotateOnce runs two Managers on separate handles to one
// database, ticking concurrently through three rotation periods: one key set,
// one write per transition, and both sign with the same key once each has
// reloaded.
func TestReplicasRotateOnce(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		a := newManager(t, storagetest.Open(t, dsn), kek, c)
		b := newManager(t, storagetest.Open(t, dsn), kek, c)
		rotations := 0
		prev := activeKID(a)
		for end := t0.Add(3*time.Hour + 30*time.Minute); c.Now().Before(end); c.Advance(time.Minute) {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, m := range []*Manager{a, b} {
				wg.Go(func() { errs[i] = m.tick(t.Context()) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			tick(t, a) // the replica that lost the race reloads on its next round
			tick(t, b)
			ta, err := a.Sign("at+jwt", []byte(accessToken))
			if err != nil {
				t.Fatal(err)
			}
			tb, _ := b.Sign("at+jwt", []byte(accessToken))
			docA, _ := a.JWKS()
			kidA, _, errA := verifyToken(ta, docA)
			kidB, _, errB := verifyToken(tb, docA)
			if errA != nil || errB != nil || kidA != kidB {
				t.Fatalf("at %v replicas sign with %s and %s (%v, %v)", c.Now().Sub(t0), kidA, kidB, errA, errB)
			}
			if kidA != prev {
				rotations++
				prev = kidA
			}
			if _, etagB := b.JWKS(); func() string { _, e := a.JWKS(); return e }() != etagB {
				t.Fatalf("at %v replicas publish different JWKS", c.Now().Sub(t0))
			}
		}
		if rotations != 3 {
			t.Fatalf("%d rotations in 3h30m with a 1h period, want 3", rotations)
		}
		// 1 (creation) + 3 rotations + 3 removals of retired keys; a
		// transition done twice would show as extra versions.
		if v, _ := storagetest.Open(t, dsn).KeySetVersion(t.Context()); v != 7 {
			t.Fatalf("version %d, want 7: some transition was written twice", v)
		}
	})
}

func TestRevokeReachesReplicas(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		a := newManager(t, storagetest.Open(t, dsn), kek, c)
		b := newManager(t, storagetest.Open(t, dsn), kek, c)
		old := activeKID(a)
		oldTok, _ := b.Sign("at+jwt", []byte(accessToken))
		rev, err := a.Revoke(t.Context(), old)
		if err != nil {
			t.Fatal(err)
		}
		if rev.KID != old || rev.State != storage.KeyActive || rev.Activated == "" || rev.Activated == old || rev.Next == "" {
			t.Fatalf("revocation %+v", rev)
		}
		doc, _ := a.JWKS()
		if slices.Contains(jwksKIDs(doc), old) {
			t.Fatal("the revoking replica still publishes the revoked key")
		}
		if _, _, err := verifyToken(oldTok, doc); err == nil {
			t.Fatal("a token of the revoked key still verifies")
		}
		if tok, _ := a.Sign("at+jwt", []byte(accessToken)); mustKID(t, tok) != rev.Activated {
			t.Fatal("the revoking replica does not sign with the activated key")
		}
		tick(t, b)
		docB, _ := b.JWKS()
		if slices.Contains(jwksKIDs(docB), old) {
			t.Fatal("the other replica still publishes the revoked key after reloading")
		}
		if tok, _ := b.Sign("at+jwt", []byte(accessToken)); mustKID(t, tok) != rev.Activated {
			t.Fatal("the other replica still signs with the revoked key after reloading")
		}
		if _, err := a.Revoke(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("revoking twice: %v", err)
		}
	})
}

// TestRunFollowsOtherReplica runs the real loop (with a short interval) and
// has another replica revoke the active key.
func TestRunFollowsOtherReplica(t *testing.T) {
	dsn := storagetest.SQLiteDSN(t)
	kek, c := NewKEK(), newClock()
	a := newManager(t, storagetest.Open(t, dsn), kek, c)
	b := newManager(t, storagetest.Open(t, dsn), kek, c)
	a.poll = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	rev, err := b.Revoke(t.Context(), activeKID(b))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for activeKID(a) != rev.Activated {
		if time.Now().After(deadline) {
			t.Fatal("Run did not pick up the other replica's revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

// TestReplicasDisagreeOnMaxAge: a replica starting with a shorter JWKS
// max-age lowers the recorded one, with a floor at now + the old delay; a
// replica still running with the longer one raises it back on its next
// round and the shorter one leaves it there, so the larger wins. A rotation
// asked for meanwhile waits for the floor, when every copy of the JWKS cached
// under the longer max-age has expired.
func TestReplicasDisagreeOnMaxAge(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		long := newManager(t, storagetest.Open(t, dsn), kek, c) // 5m + 1m
		db := storagetest.Open(t, dsn)
		want := func(what string, maxAge, margin time.Duration, floor time.Time) {
			t.Helper()
			if pub := mustKeySet(t, db).Publication; pub.JWKSMaxAge != maxAge || pub.PublishMargin != margin || !pub.Floor.Equal(floor) {
				t.Fatalf("%s: recorded %+v, want max-age %v, margin %v, floor %v", what, pub, maxAge, margin, floor)
			}
		}
		want("first replica started", 5*time.Minute, time.Minute, time.Time{})

		c.Advance(time.Minute)
		p := managerPolicy
		p.JWKSMaxAge, p.PublishMargin = 30*time.Second, 5*time.Second
		short, err := NewManager(t.Context(), storagetest.Open(t, dsn), kek, p, nil, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		floor := t0.Add(7 * time.Minute) // lowered at 1m; the old delay was 6m
		want("shorter replica started", 30*time.Second, 5*time.Second, floor)
		tick(t, long)
		want("longer replica's round", 5*time.Minute, time.Minute, floor)
		v := mustKeySet(t, db).Version
		tick(t, short)
		want("shorter replica's round", 5*time.Minute, time.Minute, floor)
		if got := mustKeySet(t, db).Version; got != v {
			t.Fatalf("the shorter replica's round wrote version %d: the replicas flap", got)
		}

		r, err := short.Rotate(t.Context(), false)
		if err != nil || !r.Scheduled || !r.At.Equal(floor) {
			t.Fatalf("rotation at 1m: %+v, %v; want it scheduled for the floor at 7m", r, err)
		}
	})
}
