package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// runKeys runs the signing-key cases.
func runKeys(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("KeySetRoundTrip", func(t *testing.T) { testKeySetRoundTrip(t, open(t)) })
	t.Run("KeySetUpdateErrorWritesNothing", func(t *testing.T) { testKeySetUpdateErrorWritesNothing(t, open(t)) })
	t.Run("KeySetConcurrentEnsure", func(t *testing.T) { testKeySetConcurrentEnsure(t, open(t)) })
	t.Run("KeySetConcurrentReplicas", func(t *testing.T) { testKeySetConcurrentReplicas(t, open(t)) })
	t.Run("KeySetPublication", func(t *testing.T) { testKeySetPublication(t, open(t)) })
}

// newKey returns a key record with made-up contents: storage neither parses
// nor checks them.
func newKey(kid, state string, created time.Time) storage.Key {
	return storage.Key{
		KID: kid, State: state, Alg: "RS256",
		PublicJWK:  `{"kty":"RSA","kid":"` + kid + `","n":"AQAB","e":"AQAB"}`,
		PrivateKey: []byte("\x01ciphertext of " + kid + "\x00\xff"),
		CreatedAt:  storage.At(created), ActivatesAt: storage.At(created.Add(time.Hour)),
		RetiresAt: storage.At(created.Add(2 * time.Hour)), ExpiresAt: storage.At(created.Add(3 * time.Hour)),
	}
}

func wantKeySet(t *testing.T, db *storage.DB, version int64, want ...storage.Key) {
	t.Helper()
	ctx := t.Context()
	got, err := db.KeySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != version {
		t.Errorf("version %d, want %d", got.Version, version)
	}
	if v, err := db.KeySetVersion(ctx); err != nil || v != version {
		t.Errorf("KeySetVersion = %d, %v; want %d", v, err, version)
	}
	byKID := func(a, b storage.Key) int {
		if a.KID < b.KID {
			return -1
		}
		if a.KID > b.KID {
			return 1
		}
		return 0
	}
	want = slices.Clone(want)
	slices.SortFunc(want, byKID)
	keys := slices.Clone(got.Keys)
	slices.SortFunc(keys, byKID)
	if len(keys) != len(want) {
		t.Fatalf("%d keys %v, want %d", len(keys), kids(keys), len(want))
	}
	for i := range want {
		g, w := keys[i], want[i]
		if g.KID != w.KID || g.State != w.State || g.Alg != w.Alg || g.PublicJWK != w.PublicJWK ||
			string(g.PrivateKey) != string(w.PrivateKey) ||
			!g.CreatedAt.Equal(w.CreatedAt.Time) || !g.ActivatesAt.Equal(w.ActivatesAt.Time) ||
			!g.RetiresAt.Equal(w.RetiresAt.Time) || !g.ExpiresAt.Equal(w.ExpiresAt.Time) {
			t.Errorf("key %d read back\n%+v\nwant\n%+v", i, g, w)
		}
	}
}

func kids(keys []storage.Key) []string {
	var s []string
	for _, k := range keys {
		s = append(s, k.KID+":"+k.State)
	}
	return s
}

func testKeySetRoundTrip(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	wantKeySet(t, db, 0)

	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123_456_789, time.UTC) // sub-ms part is dropped
	a, n := newKey("kid-a", storage.KeyActive, t0), newKey("kid-n", storage.KeyNext, t0.Add(time.Minute))
	a.RetiresAt = storage.Time{} // zero times survive as zero
	if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) {
		if len(s.Keys) != 0 || s.Version != 0 {
			t.Errorf("update saw %+v, want the empty set at version 0", s)
		}
		s.Keys = append(s.Keys, a, n)
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	a.CreatedAt = storage.At(t0)
	wantKeySet(t, db, 1, a, n)

	// Promote: next -> active, active -> retired, a new next, in one write.
	n2 := newKey("kid-n2", storage.KeyNext, t0.Add(2*time.Minute))
	if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) {
		if s.Version != 1 || len(s.Keys) != 2 {
			t.Errorf("update saw %+v", s)
		}
		for i := range s.Keys {
			switch s.Keys[i].State {
			case storage.KeyActive:
				s.Keys[i].State = storage.KeyRetired
			case storage.KeyNext:
				s.Keys[i].State = storage.KeyActive
			}
		}
		s.Keys = append(s.Keys, n2)
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	a.State, n.State = storage.KeyRetired, storage.KeyActive
	wantKeySet(t, db, 2, a, n, n2)

	// Nothing changed: no write, no new version.
	for name, update := range map[string]func(storage.KeySet) (storage.KeySet, error){
		"same set":    func(s storage.KeySet) (storage.KeySet, error) { return s, nil },
		"ErrNoChange": func(s storage.KeySet) (storage.KeySet, error) { return storage.KeySet{}, storage.ErrNoChange },
		"reordered":   func(s storage.KeySet) (storage.KeySet, error) { slices.Reverse(s.Keys); return s, nil },
		"sub-ms times": func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys[0].CreatedAt.Time = s.Keys[0].CreatedAt.Add(999)
			return s, nil
		},
	} {
		if err := db.UpdateKeySet(ctx, update); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	wantKeySet(t, db, 2, a, n, n2)

	// Remove the retired key and change the ciphertext of another (a rewrap).
	if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) {
		s.Keys = slices.DeleteFunc(s.Keys, func(k storage.Key) bool { return k.KID == "kid-a" })
		for i := range s.Keys {
			s.Keys[i].PrivateKey = append(s.Keys[i].PrivateKey, '!')
		}
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	n.PrivateKey, n2.PrivateKey = append(n.PrivateKey, '!'), append(n2.PrivateKey, '!')
	wantKeySet(t, db, 3, n, n2)
}

func testKeySetUpdateErrorWritesNothing(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	t0 := time.Now()
	a := newKey("kid-a", storage.KeyActive, t0)
	if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) {
		s.Keys = append(s.Keys, a)
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	a = normalized(a)
	boom := errors.New("boom")
	tests := []struct {
		name    string
		update  func(storage.KeySet) (storage.KeySet, error)
		wantErr error // nil: any error
	}{
		{"update error", func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys[0].State = storage.KeyRetired
			return s, boom
		}, boom},
		{"second active key", func(s storage.KeySet) (storage.KeySet, error) {
			// The first row is written before the second fails the
			// one-active rule; the transaction must take both back.
			s.Keys = append(s.Keys, newKey("kid-b", storage.KeyNext, t0), newKey("kid-c", storage.KeyActive, t0))
			return s, nil
		}, storage.ErrConflict},
		{"two next keys", func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys = append(s.Keys, newKey("kid-b", storage.KeyNext, t0), newKey("kid-c", storage.KeyNext, t0))
			return s, nil
		}, storage.ErrConflict},
		{"unknown state", func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys = append(s.Keys, newKey("kid-b", "pending", t0))
			return s, nil
		}, nil},
		{"duplicate kid", func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys = append(s.Keys, newKey("kid-b", storage.KeyNext, t0), newKey("kid-b", storage.KeyRetired, t0))
			return s, nil
		}, nil},
		{"empty kid", func(s storage.KeySet) (storage.KeySet, error) {
			s.Keys = append(s.Keys, newKey("", storage.KeyNext, t0))
			return s, nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.UpdateKeySet(ctx, tt.update)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("UpdateKeySet = %v, want %v", err, tt.wantErr)
			}
			wantKeySet(t, db, 1, a)
		})
	}
}

func normalized(k storage.Key) storage.Key {
	k.CreatedAt, k.ActivatesAt = storage.At(k.CreatedAt.Time), storage.At(k.ActivatesAt.Time)
	k.RetiresAt, k.ExpiresAt = storage.At(k.RetiresAt.Time), storage.At(k.ExpiresAt.Time)
	return k
}

// ensureActiveAndNext is the update every replica runs at start: add an
// active and a next key when they are missing.
func ensureActiveAndNext(tag string) func(storage.KeySet) (storage.KeySet, error) {
	return func(s storage.KeySet) (storage.KeySet, error) {
		has := map[string]bool{}
		for _, k := range s.Keys {
			has[k.State] = true
		}
		if has[storage.KeyActive] && has[storage.KeyNext] {
			return s, storage.ErrNoChange
		}
		now := time.Now()
		for _, state := range []string{storage.KeyActive, storage.KeyNext} {
			if !has[state] {
				s.Keys = append(s.Keys, newKey(tag+"-"+state+"-"+storage.NewID()[:8], state, now))
			}
		}
		return s, nil
	}
}

func wantOneActiveOneNext(t *testing.T, db *storage.DB) {
	t.Helper()
	set, err := db.KeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, k := range set.Keys {
		count[k.State]++
	}
	if len(set.Keys) != 2 || count[storage.KeyActive] != 1 || count[storage.KeyNext] != 1 {
		t.Fatalf("key set %v, want one active and one next", kids(set.Keys))
	}
	if set.Version != 1 {
		t.Fatalf("version %d, want 1: the set was written more than once", set.Version)
	}
}

func testKeySetConcurrentEnsure(t *testing.T, db *storage.DB) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = db.UpdateKeySet(t.Context(), ensureActiveAndNext(fmt.Sprint("g", i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	wantOneActiveOneNext(t, db)
}

// testKeySetConcurrentReplicas runs the same race through separate handles
// (separate connection pools, as separate replicas have) on one database.
func testKeySetConcurrentReplicas(t *testing.T, db *storage.DB) {
	var dsn string
	switch db.Dialect() {
	case storage.Postgres:
		dsn = PostgresDSN(t)
	default:
		dsn = SQLiteDSN(t) // not a deployment Keyward supports, but the lock holds
	}
	const n = 8
	dbs := make([]*storage.DB, n)
	for i := range dbs {
		dbs[i] = Open(t, dsn)
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			errs[i] = db.UpdateKeySet(t.Context(), ensureActiveAndNext(fmt.Sprint("replica", i)))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	wantOneActiveOneNext(t, dbs[0])
}

// testKeySetPublication: the publication recorded with the key set is read
// back exactly (to the millisecond), a change of it alone is a write that
// bumps the version, and the same publication is no write.
func testKeySetPublication(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	read := func() storage.KeySet {
		t.Helper()
		s, err := db.KeySet(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p := read().Publication; p != (storage.Publication{}) {
		t.Fatalf("fresh database records %+v, want nothing", p)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := storage.Publication{JWKSMaxAge: 30 * time.Second, PublishMargin: 5*time.Second + 250*time.Millisecond, Floor: storage.At(t0)}
	steps := []struct {
		name        string
		update      func(storage.KeySet) storage.KeySet
		want        storage.Publication
		wantVersion int64
	}{
		{"publication of an empty set", func(s storage.KeySet) storage.KeySet { s.Publication = want; return s }, want, 1},
		{"same publication, sub-ms apart: no write", func(s storage.KeySet) storage.KeySet {
			s.Publication.JWKSMaxAge += 999 * time.Microsecond
			s.Publication.Floor.Time = s.Publication.Floor.Add(999 * time.Microsecond)
			return s
		}, want, 1},
		{"keys change, publication kept", func(s storage.KeySet) storage.KeySet {
			s.Keys = append(s.Keys, newKey("kid-a", storage.KeyActive, t0), newKey("kid-n", storage.KeyNext, t0))
			return s
		}, want, 2},
		{"max-age alone changes", func(s storage.KeySet) storage.KeySet { s.Publication.JWKSMaxAge = 5 * time.Minute; return s },
			storage.Publication{JWKSMaxAge: 5 * time.Minute, PublishMargin: want.PublishMargin, Floor: want.Floor}, 3},
		{"floor cleared", func(s storage.KeySet) storage.KeySet { s.Publication.Floor = storage.Time{}; return s },
			storage.Publication{JWKSMaxAge: 5 * time.Minute, PublishMargin: want.PublishMargin}, 4},
		{"algorithm alone changes", func(s storage.KeySet) storage.KeySet { s.Publication.Algorithm = "ES256"; return s },
			storage.Publication{JWKSMaxAge: 5 * time.Minute, PublishMargin: want.PublishMargin, Algorithm: "ES256"}, 5},
		{"same algorithm: no write", func(s storage.KeySet) storage.KeySet { return s },
			storage.Publication{JWKSMaxAge: 5 * time.Minute, PublishMargin: want.PublishMargin, Algorithm: "ES256"}, 5},
	}
	for _, st := range steps {
		if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) { return st.update(s), nil }); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := read()
		if got.Publication != st.want || got.Version != st.wantVersion {
			t.Fatalf("%s: read back %+v at version %d, want %+v at version %d", st.name, got.Publication, got.Version, st.want, st.wantVersion)
		}
		if len(got.Keys) != 0 && len(got.Keys) != 2 {
			t.Fatalf("%s: keys %v", st.name, kids(got.Keys))
		}
	}
	if err := db.UpdateKeySet(ctx, func(s storage.KeySet) (storage.KeySet, error) {
		s.Publication.PublishMargin = -time.Second
		return s, nil
	}); err == nil {
		t.Fatal("a negative publish margin was written")
	}
}
