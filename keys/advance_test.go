package keys

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
)

// Times in these tables are offsets from t0; the policy gives a publish delay
// of 6m (5m max-age + 1m margin) and a retention of 62m (1h tokens + 1m skew
// + 1m margin).
var (
	t0         = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testPolicy = Policy{
		RotationPeriod: 24 * time.Hour, JWKSMaxAge: 5 * time.Minute, PublishMargin: time.Minute,
		TokenLifetime: time.Hour, ClockSkew: time.Minute, KeySize: 2048,
	}
)

const (
	h      = time.Hour
	minute = time.Minute
	ret    = 62 * minute // retention
)

func key(kid, state string, created, activates, retires, expires time.Duration) storage.Key {
	return storage.Key{
		KID: kid, State: state, Alg: "RS256", PublicJWK: "{}", PrivateKey: []byte("sealed " + kid),
		CreatedAt: storage.At(t0.Add(created)), ActivatesAt: storage.At(t0.Add(activates)),
		RetiresAt: storage.At(t0.Add(retires)), ExpiresAt: storage.At(t0.Add(expires)),
	}
}

// fakeKeys returns a newKey that hands out new1, new2, ... and counts calls.
func fakeKeys() (newKeyFunc, *int) {
	n := 0
	return func(alg string) (storage.Key, error) {
		n++
		kid := fmt.Sprint("new", n)
		return storage.Key{KID: kid, Alg: alg, PublicJWK: "{}", PrivateKey: []byte("sealed " + kid)}, nil
	}, &n
}

// describe renders a key set for comparison: kid state created activates
// retires expires, as offsets from t0, sorted by kid.
func describe(keys []storage.Key) string {
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%s %s c=%v a=%v r=%v e=%v", k.KID, k.State,
			k.CreatedAt.Sub(t0), k.ActivatesAt.Sub(t0), k.RetiresAt.Sub(t0), k.ExpiresAt.Sub(t0)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func set(keys ...storage.Key) storage.KeySet { return storage.KeySet{Keys: keys, Version: 7} }

// published returns s recording the given JWKS max-age, margin and floor
// (an offset from t0; 0 means none), as the servers record them.
func published(s storage.KeySet, maxAge, margin, floor time.Duration) storage.KeySet {
	s.Publication = storage.Publication{JWKSMaxAge: maxAge, PublishMargin: margin}
	if floor != 0 {
		s.Publication.Floor = storage.At(t0.Add(floor))
	}
	return s
}

var (
	steadyActive = key("A", storage.KeyActive, -2*h, -1*h, 23*h, 23*h+ret)
	steadyNext   = key("N", storage.KeyNext, -1*h, 23*h, 47*h, 47*h+ret)
)

func TestAdvance(t *testing.T) {
	tests := []struct {
		name        string
		set         storage.KeySet
		want        []storage.Key // nil: unchanged
		wantErr     string
		failNewKeys bool
	}{
		{name: "empty set gets an active and a next key", set: set(), want: []storage.Key{
			key("new1", storage.KeyActive, 0, 0, 24*h, 24*h+ret),
			key("new2", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
		}},
		{name: "steady state waits", set: set(steadyActive, steadyNext)},
		{name: "active at its period with next published long enough rotates",
			set: set(key("A", storage.KeyActive, -30*h, -24*h, 0, ret), key("N", storage.KeyNext, -1*h, 0, 24*h, 24*h+ret)),
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("N", storage.KeyActive, -1*h, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			}},
		{name: "next published exactly the publish delay rotates",
			set: set(key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret), key("N", storage.KeyNext, -6*minute, 0, 24*h, 24*h+ret)),
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -25*h, 0, ret),
				key("N", storage.KeyActive, -6*minute, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			}},
		{name: "next not published long enough: the active key keeps signing past its period",
			set: set(key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret), key("N", storage.KeyNext, -6*minute+time.Millisecond, 0, 24*h, 24*h+ret))},
		{name: "active not due yet though next is old",
			set: set(key("A", storage.KeyActive, -30*h, -1*h, time.Millisecond, ret), key("N", storage.KeyNext, -10*h, 0, 24*h, 24*h+ret))},
		{name: "overdue active without next gets a next planned a publish delay ahead",
			set: set(key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret)),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret),
				key("new1", storage.KeyNext, 0, 6*minute, 24*h+6*minute, 24*h+6*minute+ret),
			}},
		{name: "active without next gets a next planned for the active key's retirement",
			set:  set(steadyActive),
			want: []storage.Key{steadyActive, key("new1", storage.KeyNext, 0, 23*h, 47*h, 47*h+ret)}},
		{name: "retired key past its expiry is removed",
			set:  set(steadyActive, steadyNext, key("R", storage.KeyRetired, -50*h, -26*h, -2*h, -2*h+ret)),
			want: []storage.Key{steadyActive, steadyNext}},
		{name: "retired key at exactly its expiry is removed",
			set:  set(steadyActive, steadyNext, key("R", storage.KeyRetired, -50*h, -26*h, -ret, 0)),
			want: []storage.Key{steadyActive, steadyNext}},
		{name: "retired key still covering live tokens stays",
			set: set(steadyActive, steadyNext, key("R", storage.KeyRetired, -50*h, -26*h, -30*minute, 32*minute))},
		{name: "retired key stays while the current policy keeps it longer than recorded",
			set: set(steadyActive, steadyNext, key("R", storage.KeyRetired, -50*h, -26*h, -30*minute, -1*minute))},
		{name: "no active key: next signs at once",
			set: set(key("N", storage.KeyNext, -1*minute, 23*h, 47*h, 47*h+ret)),
			want: []storage.Key{
				key("N", storage.KeyActive, -1*minute, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			}},
		{name: "recorded publication counts, not the policy: 35s old next key rotates",
			set: published(set(key("A", storage.KeyActive, -30*h, -24*h, 0, ret), key("N", storage.KeyNext, -35*time.Second, 0, 24*h, 24*h+ret)), 30*time.Second, 5*time.Second, 0),
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("N", storage.KeyActive, -35*time.Second, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			}},
		{name: "recorded longer max-age holds the next key back",
			set: published(set(key("A", storage.KeyActive, -30*h, -24*h, 0, ret), key("N", storage.KeyNext, -10*minute, 0, 24*h, 24*h+ret)), 10*minute, minute, 0)},
		{name: "the floor holds an old next key back",
			set: published(set(key("A", storage.KeyActive, -30*h, -24*h, 0, ret), key("N", storage.KeyNext, -10*h, 0, 24*h, 24*h+ret)), 5*minute, minute, time.Millisecond)},
		{name: "a fresh next key is planned with the recorded delay and the floor",
			set: published(set(key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret)), 30*time.Second, 5*time.Second, 2*minute),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret),
				key("new1", storage.KeyNext, 0, 2*minute, 24*h+2*minute, 24*h+2*minute+ret),
			}},
		{name: "two active keys is an error", set: set(steadyActive, key("B", storage.KeyActive, 0, 0, 24*h, 25*h)), wantErr: "two active keys"},
		{name: "two next keys is an error", set: set(steadyActive, steadyNext, key("M", storage.KeyNext, 0, 0, 24*h, 25*h)), wantErr: "two next keys"},
		{name: "unknown state is an error", set: set(key("X", "pending", 0, 0, 0, 0)), wantErr: "unknown state"},
		{name: "failing key generation changes nothing", set: set(), failNewKeys: true, wantErr: "no entropy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newKey, _ := fakeKeys()
			if tt.failNewKeys {
				newKey = func(string) (storage.Key, error) { return storage.Key{}, errors.New("no entropy") }
			}
			before := describe(tt.set.Keys)
			got, changed, err := advance(tt.set, t0, testPolicy, newKey)
			if describe(tt.set.Keys) != before {
				t.Fatal("advance modified its input")
			}
			if testsupport.WantError(t, err, tt.wantErr) {
				return
			}
			want := tt.want
			if want == nil {
				want = tt.set.Keys
			}
			if changed != (tt.want != nil) {
				t.Errorf("changed = %v, want %v", changed, tt.want != nil)
			}
			if g, w := describe(got.Keys), describe(want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if got.Version != tt.set.Version || got.Publication != tt.set.Publication {
				t.Errorf("version %d, publication %+v; want them kept at %d, %+v", got.Version, got.Publication, tt.set.Version, tt.set.Publication)
			}
		})
	}
}

// TestAdvanceNeverLeavesAGap runs advance minute by minute over several
// rotation periods and checks the invariants every resource server relies on.
func TestAdvanceNeverLeavesAGap(t *testing.T) {
	p := testPolicy
	p.RotationPeriod = 3 * h
	newKey, _ := fakeKeys()
	var s storage.KeySet
	firstActive := ""
	stopped := map[string]time.Time{} // kid -> when it stopped signing
	rotations := 0
	prevActive := ""
	for now := t0; now.Before(t0.Add(30 * h)); now = now.Add(time.Minute) {
		out, _, err := advance(s, now, p, newKey)
		if err != nil {
			t.Fatal(err)
		}
		s = out
		active, next, err := find(s.Keys)
		if err != nil || active < 0 || next < 0 {
			t.Fatalf("%v: want one active and one next key: %s (%v)", now.Sub(t0), describe(s.Keys), err)
		}
		a := s.Keys[active]
		if firstActive == "" {
			firstActive = a.KID
		}
		if a.KID != prevActive && prevActive != "" {
			rotations++
			stopped[prevActive] = now
			if delay := p.JWKSMaxAge + p.PublishMargin; now.Sub(a.CreatedAt.Time) < delay {
				t.Fatalf("%v: %s signs %v after it was published, want at least %v", now.Sub(t0), a.KID, now.Sub(a.CreatedAt.Time), delay)
			}
		}
		prevActive = a.KID
		for kid, at := range stopped {
			inSet := slices.ContainsFunc(s.Keys, func(k storage.Key) bool { return k.KID == kid })
			live := now.Sub(at) < p.TokenLifetime+p.ClockSkew
			if live && !inSet {
				t.Fatalf("%v: %s removed %v after it stopped signing, its tokens still live", now.Sub(t0), kid, now.Sub(at))
			}
			if !live && now.Sub(at) > p.retention()+time.Minute && inSet {
				t.Fatalf("%v: %s still published %v after it stopped signing", now.Sub(t0), kid, now.Sub(at))
			}
		}
	}
	if rotations != 9 {
		t.Errorf("%d rotations in 30h with a 3h period, want 9", rotations)
	}
}

func TestPromote(t *testing.T) {
	active := key("A", storage.KeyActive, -30*h, -24*h, 1*h, 1*h+ret)
	young := key("N", storage.KeyNext, -5*minute, 1*h, 25*h, 25*h+ret)
	// young may sign 6m after it was published: 1m from t0.
	youngScheduled := []storage.Key{
		key("A", storage.KeyActive, -30*h, -24*h, 1*minute, 1*minute+ret),
		key("N", storage.KeyNext, -5*minute, 1*minute, 24*h+1*minute, 24*h+1*minute+ret),
	}
	now := func(r Rotation) Rotation { r.At = t0; return r }
	later := func(d time.Duration, r Rotation) Rotation { r.At, r.Scheduled = t0.Add(d), true; return r }
	tests := []struct {
		name    string
		set     storage.KeySet
		force   bool
		want    []storage.Key
		wantRot Rotation
	}{
		{name: "next published long enough rotates now", set: set(active, key("N", storage.KeyNext, -10*minute, 1*h, 25*h, 25*h+ret)),
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("N", storage.KeyActive, -10*minute, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRot: now(Rotation{Retired: "A", Activated: "N", Next: "new1"})},
		{name: "next too young: scheduled for when it may sign", set: set(active, young),
			want: youngScheduled, wantRot: later(minute, Rotation{Retired: "A", Activated: "N"})},
		{name: "asking again changes nothing", set: set(youngScheduled...),
			want: youngScheduled, wantRot: later(minute, Rotation{Retired: "A", Activated: "N"})},
		{name: "active already overdue keeps its retirement, next waits", set: set(key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret), young),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -25*h, -1*h, -1*h+ret),
				key("N", storage.KeyNext, -5*minute, 1*minute, 24*h+1*minute, 24*h+1*minute+ret),
			},
			wantRot: later(minute, Rotation{Retired: "A", Activated: "N"})},
		{name: "next too young, forced", set: set(active, young), force: true,
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("N", storage.KeyActive, -5*minute, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRot: now(Rotation{Retired: "A", Activated: "N", Next: "new1", Forced: true})},
		{name: "recorded short max-age: a 35s old next key rotates now", force: false,
			set: published(set(active, key("N", storage.KeyNext, -35*time.Second, 1*h, 25*h, 25*h+ret)), 30*time.Second, 5*time.Second, 0),
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("N", storage.KeyActive, -35*time.Second, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRot: now(Rotation{Retired: "A", Activated: "N", Next: "new1"})},
		{name: "recorded short max-age: a 20s old next key is scheduled 15s ahead",
			set: published(set(active, key("N", storage.KeyNext, -20*time.Second, 1*h, 25*h, 25*h+ret)), 30*time.Second, 5*time.Second, 0),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -24*h, 15*time.Second, 15*time.Second+ret),
				key("N", storage.KeyNext, -20*time.Second, 15*time.Second, 24*h+15*time.Second, 24*h+15*time.Second+ret),
			},
			wantRot: later(15*time.Second, Rotation{Retired: "A", Activated: "N"})},
		{name: "recorded long max-age: a 10m old next key is scheduled",
			set: published(set(active, key("N", storage.KeyNext, -10*minute, 1*h, 25*h, 25*h+ret)), 10*minute, minute, 0),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -24*h, 1*minute, 1*minute+ret),
				key("N", storage.KeyNext, -10*minute, 1*minute, 24*h+1*minute, 24*h+1*minute+ret),
			},
			wantRot: later(minute, Rotation{Retired: "A", Activated: "N"})},
		{name: "the floor schedules an old next key",
			set: published(set(active, key("N", storage.KeyNext, -10*h, 1*h, 25*h, 25*h+ret)), 5*minute, minute, 3*minute),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -24*h, 3*minute, 3*minute+ret),
				key("N", storage.KeyNext, -10*h, 3*minute, 24*h+3*minute, 24*h+3*minute+ret),
			},
			wantRot: later(3*minute, Rotation{Retired: "A", Activated: "N"})},
		{name: "no next key: a fresh one is published and scheduled", set: set(active),
			want: []storage.Key{
				key("A", storage.KeyActive, -30*h, -24*h, 6*minute, 6*minute+ret),
				key("new1", storage.KeyNext, 0, 6*minute, 24*h+6*minute, 24*h+6*minute+ret),
			},
			wantRot: later(6*minute, Rotation{Retired: "A", Activated: "new1"})},
		{name: "no next key, forced", set: set(active), force: true,
			want: []storage.Key{
				key("A", storage.KeyRetired, -30*h, -24*h, 0, ret),
				key("new1", storage.KeyActive, 0, 0, 24*h, 24*h+ret),
				key("new2", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRot: now(Rotation{Retired: "A", Activated: "new1", Next: "new2", Forced: true})},
		{name: "no key at all", set: set(),
			want: []storage.Key{
				key("new1", storage.KeyActive, 0, 0, 24*h, 24*h+ret),
				key("new2", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRot: now(Rotation{Activated: "new1", Next: "new2"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newKey, _ := fakeKeys()
			before := describe(tt.set.Keys)
			got, rot, err := promote(tt.set, t0, testPolicy, tt.force, newKey)
			if err != nil {
				t.Fatal(err)
			}
			if describe(tt.set.Keys) != before {
				t.Fatal("promote modified its input")
			}
			if g, w := describe(got.Keys), describe(tt.want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if rot != tt.wantRot {
				t.Errorf("rotation %+v, want %+v", rot, tt.wantRot)
			}
			if got.Publication != tt.set.Publication {
				t.Errorf("publication %+v, want it kept at %+v", got.Publication, tt.set.Publication)
			}
			if !rot.Scheduled {
				return
			}
			// The schedule carries it out: nothing before At, the rotation at At.
			if out, changed, err := advance(got, rot.At.Add(-time.Millisecond), testPolicy, newKey); err != nil || changed {
				t.Fatalf("advance before the scheduled moment changed the set: %s (%v)", describe(out.Keys), err)
			}
			out, _, err := advance(got, rot.At, testPolicy, newKey)
			if a, _ := kidsOf(out.Keys); err != nil || a != rot.Activated {
				t.Fatalf("advance at the scheduled moment: %s signs, want %s (%v)", a, rot.Activated, err)
			}
		})
	}
}

// TestRecordPublication: a starting server records its own JWKS max-age and
// margin, a running one only raises them, and lowering them sets a floor.
func TestRecordPublication(t *testing.T) {
	pol := func(maxAge, margin time.Duration) Policy {
		p := testPolicy
		p.JWKSMaxAge, p.PublishMargin = maxAge, margin
		return p
	}
	empty := set(steadyActive, steadyNext)
	recorded := published(empty, 5*minute, minute, 0)
	tests := []struct {
		name     string
		set      storage.KeySet
		p        Policy
		starting bool
		want     storage.KeySet // its Publication; nil Keys: unchanged
	}{
		{"nothing recorded, starting", empty, pol(30*time.Second, 5*time.Second), true, published(empty, 30*time.Second, 5*time.Second, 0)},
		{"nothing recorded, running", empty, pol(5*minute, minute), false, recorded},
		{"same values", recorded, pol(5*minute, minute), true, storage.KeySet{}},
		{"running with smaller: the larger stays", recorded, pol(30*time.Second, 5*time.Second), false, storage.KeySet{}},
		{"running with a larger max-age raises it", recorded, pol(10*minute, 5*time.Second), false, published(empty, 10*minute, minute, 0)},
		{"running with a larger margin raises it", recorded, pol(time.Second, 2*minute), false, published(empty, 5*minute, 2*minute, 0)},
		{"starting with larger raises, no floor", recorded, pol(10*minute, minute), true, published(empty, 10*minute, minute, 0)},
		{"starting with smaller lowers, floor at now + old delay", recorded, pol(30*time.Second, 5*time.Second), true,
			published(empty, 30*time.Second, 5*time.Second, 6*minute)},
		{"a later floor stays", published(empty, 5*minute, minute, h), pol(30*time.Second, 5*time.Second), true,
			published(empty, 30*time.Second, 5*time.Second, h)},
		{"larger max-age, smaller margin, shorter delay: floor", recorded, pol(5*minute+time.Second, 5*time.Second), true,
			published(empty, 5*minute+time.Second, 5*time.Second, 6*minute)},
		{"sub-millisecond parts are not recorded", recorded, pol(5*minute+time.Microsecond, minute), false, storage.KeySet{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := recordPublication(tt.set, t0, tt.p, tt.starting)
			want := tt.want
			if want.Keys == nil {
				want = tt.set
			}
			if changed != (tt.want.Keys != nil) || got.Publication != want.Publication {
				t.Fatalf("got %+v (changed %v), want %+v", got.Publication, changed, want.Publication)
			}
			if describe(got.Keys) != describe(tt.set.Keys) || got.Version != tt.set.Version {
				t.Fatal("recordPublication changed the keys or the version")
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	retired := key("R", storage.KeyRetired, -50*h, -26*h, -30*minute, 32*minute)
	tests := []struct {
		name    string
		set     storage.KeySet
		kid     string
		want    []storage.Key
		wantRev Revocation
		wantErr error
	}{
		{name: "active key: next signs at once though young", kid: "A",
			set: set(steadyActive, key("N", storage.KeyNext, -1*minute, 23*h, 47*h, 47*h+ret), retired),
			want: []storage.Key{
				key("N", storage.KeyActive, -1*minute, 0, 24*h, 24*h+ret),
				key("new1", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
				retired,
			},
			wantRev: Revocation{KID: "A", State: storage.KeyActive, Active: "N", Activated: "N", Next: "new1"}},
		{name: "active key without next: a fresh key signs", kid: "A", set: set(steadyActive),
			want: []storage.Key{
				key("new1", storage.KeyActive, 0, 0, 24*h, 24*h+ret),
				key("new2", storage.KeyNext, 0, 24*h, 48*h, 48*h+ret),
			},
			wantRev: Revocation{KID: "A", State: storage.KeyActive, Active: "new1", Activated: "new1", Next: "new2"}},
		{name: "next key: a fresh next, its wait starts again", kid: "N", set: set(steadyActive, steadyNext),
			want:    []storage.Key{steadyActive, key("new1", storage.KeyNext, 0, 23*h, 47*h, 47*h+ret)},
			wantRev: Revocation{KID: "N", State: storage.KeyNext, Active: "A", Next: "new1"}},
		{name: "retired key", kid: "R", set: set(steadyActive, steadyNext, retired),
			want:    []storage.Key{steadyActive, steadyNext},
			wantRev: Revocation{KID: "R", State: storage.KeyRetired, Active: "A", Next: "N"}},
		{name: "unknown kid", kid: "nope", set: set(steadyActive, steadyNext), wantErr: ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newKey, _ := fakeKeys()
			got, rev, err := revoke(tt.set, tt.kid, t0, testPolicy, newKey)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := describe(got.Keys), describe(tt.want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if rev != tt.wantRev {
				t.Errorf("revocation %+v, want %+v", rev, tt.wantRev)
			}
		})
	}
}

func TestPolicyWithDefaults(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		wantErr string
	}{
		{"zero takes defaults", Policy{}, ""},
		{"3072 bits", Policy{KeySize: 3072}, ""},
		{"4096 bits", Policy{KeySize: 4096}, ""},
		{"1024 bits", Policy{KeySize: 1024}, "2048, 3072 or 4096"},
		{"2049 bits", Policy{KeySize: 2049}, "2048, 3072 or 4096"},
		{"rotation below a minute", Policy{RotationPeriod: 59 * time.Second}, "at least 1m0s"},
		{"negative max-age", Policy{JWKSMaxAge: -time.Second}, "must not be negative"},
		{"margin below the reload interval", Policy{PublishMargin: time.Second}, "reload interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.p.WithDefaults()
			if testsupport.WantError(t, err, tt.wantErr) {
				return
			}
			if p.RotationPeriod == 0 || p.JWKSMaxAge == 0 || p.PublishMargin == 0 || p.TokenLifetime == 0 || p.ClockSkew == 0 || p.KeySize == 0 {
				t.Fatalf("defaults not filled: %+v", p)
			}
		})
	}
	p, _ := Policy{}.WithDefaults()
	if p.RotationPeriod != 24*time.Hour || p.JWKSMaxAge != 5*time.Minute || p.KeySize != 2048 || p.pollInterval() != 5*time.Second {
		t.Errorf("defaults %+v, poll %v", p, p.pollInterval())
	}
}
