package password

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock moves on by step at every reading, so each hash "takes" step, and by d at
// every sleep(d). It records the sleeps and whether a hashing slot was held during one.
type fakeClock struct {
	mu       sync.Mutex
	t        time.Time
	step     time.Duration
	sleeps   []time.Duration
	h        *Hasher
	heldSlot bool
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *fakeClock) sleep(_ context.Context, d time.Duration) {
	inFlight := c.h.Stats().InFlight
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	c.heldSlot = c.heldSlot || inFlight != 0
}

// peek reads the clock without moving it.
func (c *fakeClock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func newPacedHasher(t *testing.T, p Params, c Ceiling, opts ...Option) (*Hasher, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1e9, 0), step: time.Millisecond}
	h := newTestHasher(t, p, append([]Option{WithCeiling(c), withClock(clock.now, clock.sleep)}, opts...)...)
	clock.h = h
	return h, clock
}

func TestFloorFor(t *testing.T) {
	tests := []struct {
		name        string
		unit, ratio float64
		argonCost   float64
		bcryptCost  int
		want        time.Duration
	}{
		{"argon2id dominates", 500, 100, 64 << 10 * 3, 4, time.Duration(1.5 * 500 * (64 << 10 * 3))},
		{"bcrypt dominates", 500, 100, 19456 * 2, 12, time.Duration(1.5 * 500 * 100 * 4096)},
		{"not calibrated", 0, 0, 19456 * 2, 12, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := floorFor(tt.unit, tt.ratio, tt.argonCost, tt.bcryptCost); got != tt.want {
				t.Errorf("floorFor = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFailedChecksLastTheFloor checks TE-21 with an injected clock: whatever the stored
// hash (current parameters, older costlier ones within the ceiling, bcrypt, corrupt, above
// the ceiling, another pepper) a failed check and VerifyDummy last exactly the floor (plus
// the clock's step for the last reading), sleeping without a hashing slot; a successful
// check does not sleep.
func TestFailedChecksLastTheFloor(t *testing.T) {
	const pw = "correct horse battery staple"
	ceiling := Ceiling{Memory: 256, Time: 2, BcryptCost: 5}
	h, clock := newPacedHasher(t, fastParams, ceiling)
	current := mustHash(t, h, pw)
	older := mustHash(t, newTestHasher(t, Params{Memory: 256, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}), pw)
	bc5, err := bcrypt.GenerateFromPassword([]byte(pw), 5)
	if err != nil {
		t.Fatal(err)
	}
	bc6, err := bcrypt.GenerateFromPassword([]byte(pw), 6)
	if err != nil {
		t.Fatal(err)
	}
	above := mustHash(t, newTestHasher(t, Params{Memory: 256, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32}), pw)
	peppered := mustHash(t, newTestHasher(t, fastParams, WithPepper(make([]byte, 32))), pw)
	tests := []struct {
		name    string
		encoded string // "" means VerifyDummy
		pw      string
		wantOK  bool
		wantErr error
	}{
		{"dummy", "", pw, false, nil},
		{"current, wrong", current, "wrong", false, nil},
		{"older parameters, wrong", older, "wrong", false, nil},
		{"bcrypt, wrong", string(bc5), "wrong", false, nil},
		{"corrupt", "$argon2id$v=19$m=64,t=1,p=1$!!$!!", pw, false, ErrMalformedHash},
		{"argon2id above the ceiling", above, pw, false, ErrUnsupportedHash},
		{"bcrypt above the ceiling", string(bc6), pw, false, ErrUnsupportedHash},
		{"another pepper", peppered, pw, false, ErrWrongPepper},
		{"current, right", current, pw, true, nil},
		{"older parameters, right", older, pw, true, nil},
		{"bcrypt, right", string(bc5), pw, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.sleeps = nil
			floor := h.Floor() // the floor when the check begins
			start := clock.peek()
			var ok bool
			var err error
			if tt.encoded == "" {
				err = h.VerifyDummy(t.Context(), tt.pw)
			} else {
				ok, _, err = h.Verify(t.Context(), tt.pw, tt.encoded)
			}
			elapsed := clock.peek().Sub(start)
			if ok != tt.wantOK || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ok %v, err %v; want %v, %v", ok, err, tt.wantOK, tt.wantErr)
			}
			if tt.wantOK {
				if len(clock.sleeps) != 0 {
					t.Errorf("a successful check slept %v", clock.sleeps)
				}
				return
			}
			if elapsed != floor+clock.step || len(clock.sleeps) != 1 {
				t.Errorf("took %v with sleeps %v, want the floor %v (+%v)", elapsed, clock.sleeps, floor, clock.step)
			}
		})
	}
	if clock.heldSlot {
		t.Error("a hashing slot was held while sleeping")
	}
	// The floor covers a check at the ceiling: at least floorMargin × (unit × m·t) for
	// the argon2id ceiling, floorMargin × (unit × ratio × 2^cost) for bcrypt.
	h.pace.mu.Lock()
	unit, ratio := h.pace.unit, h.pace.ratio
	h.pace.mu.Unlock()
	argon := unit * float64(ceiling.Memory*ceiling.Time)
	bc := unit * ratio * math.Exp2(float64(ceiling.BcryptCost))
	if f := float64(h.Floor()) + 1; f < floorMargin*argon || f < floorMargin*bc { // +1: rounding to ns
		t.Errorf("floor %v below floorMargin × a check at the ceiling (argon2id %v, bcrypt %v)", h.Floor(), time.Duration(argon), time.Duration(bc))
	}
}

// TestCalibration checks that NewHasher calibrates the floor, so the first failed check
// against a costly hash is already covered: with every hash taking the clock's step,
// argon2id's unit is step/m and bcrypt's ratio is m/2^calibrationBcryptCost.
func TestCalibration(t *testing.T) {
	h, clock := newPacedHasher(t, fastParams, Ceiling{Memory: 1024, Time: 2, BcryptCost: 9})
	unit := float64(clock.step) / float64(fastParams.Memory)
	ratio := float64(fastParams.Memory) / 32
	if got, want := h.Floor(), floorFor(unit, ratio, 2048, 9); got != want || got == 0 {
		t.Errorf("floor %v, want %v", got, want)
	}
}

func TestCeilingBounds(t *testing.T) {
	for _, c := range []Ceiling{
		{Memory: 0, Time: 1, BcryptCost: 10},
		{Memory: 64, Time: 0, BcryptCost: 10},
		{Memory: 64, Time: maxTime + 1, BcryptCost: 10},
		{Memory: maxMemoryKiB + 1, Time: 1, BcryptCost: 10},
		{Memory: 64, Time: 1, BcryptCost: 3},
		{Memory: 64, Time: 1, BcryptCost: maxBcryptCost + 1},
	} {
		if _, err := NewHasher(fastParams, WithCeiling(c)); err == nil {
			t.Errorf("NewHasher took ceiling %+v", c)
		}
	}
	// The current parameters are always within the ceiling.
	h := newTestHasher(t, Params{Memory: 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		WithCeiling(Ceiling{Memory: 64, Time: 1, BcryptCost: 4}))
	enc := mustHash(t, h, "correct horse battery staple")
	if ok, _, err := h.Verify(t.Context(), "correct horse battery staple", enc); !ok || err != nil {
		t.Errorf("Verify of a current hash under a lower ceiling: %v, %v", ok, err)
	}
}

// TestPadEndsWithContext: a canceled request does not sleep out the floor.
func TestPadEndsWithContext(t *testing.T) {
	h := newTestHasher(t, fastParams, WithCeiling(Ceiling{Memory: 64 << 10, Time: 16, BcryptCost: 16}))
	ctx, cancel := context.WithCancel(t.Context())
	start := time.Now()
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := h.VerifyDummy(ctx, "wrong"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > h.Floor()/2 || d > time.Second {
		t.Errorf("VerifyDummy took %v after its context ended (floor %v)", d, h.Floor())
	}
}

// TestFailedCheckTiming measures, with the real clock and the default parameters and
// ceiling, a failed check against hashes the server may hold — current parameters,
// RFC 9106's m=64 MiB t=3, bcrypt at cost 10 and 12 — and VerifyDummy: the medians are
// within 10 % (TE-21). Opt-in with KEYWARD_TIMING_TEST=1, as idp's TestLoginTiming.
func TestFailedCheckTiming(t *testing.T) {
	if os.Getenv("KEYWARD_TIMING_TEST") != "1" {
		t.Skip("set KEYWARD_TIMING_TEST=1 to measure failed-check timing (TE-21)")
	}
	const pw = "correct horse battery staple"
	h, err := NewHasher(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	old, err := NewHasher(Params{Memory: 64 << 10, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	current, older := mustHash(t, h, pw), mustHash(t, old, pw)
	bc10, _ := bcrypt.GenerateFromPassword([]byte(pw), 10)
	bc12, _ := bcrypt.GenerateFromPassword([]byte(pw), 12)
	kinds := []struct{ name, encoded string }{
		{"unknown user", ""}, {"current", current}, {"m=64MiB,t=3", older},
		{"bcrypt 10", string(bc10)}, {"bcrypt 12", string(bc12)},
	}
	const rounds = 21
	ds := make([][]time.Duration, len(kinds))
	for round := range rounds {
		for j := range kinds {
			k := (round + j) % len(kinds)
			start := time.Now()
			if kinds[k].encoded == "" {
				err = h.VerifyDummy(t.Context(), "wrong")
			} else {
				_, _, err = h.Verify(t.Context(), "wrong", kinds[k].encoded)
			}
			if err != nil {
				t.Fatal(err)
			}
			ds[k] = append(ds[k], time.Since(start))
		}
	}
	medians := make([]time.Duration, len(kinds))
	for k := range kinds {
		slices.Sort(ds[k])
		medians[k] = ds[k][rounds/2]
		t.Logf("%s: median %v", kinds[k].name, medians[k].Round(100*time.Microsecond))
	}
	lo, hi := slices.Min(medians), slices.Max(medians)
	if spread := float64(hi-lo) / float64(lo); spread >= 0.10 {
		t.Errorf("medians differ by %.1f %% (floor now %v)", 100*spread, h.Floor())
	}
}

func TestParseCeiling(t *testing.T) {
	tests := []struct {
		in      string
		want    Ceiling
		wantErr bool
	}{
		{"m=65536,t=3,bcrypt=12", DefaultCeiling(), false},
		{DefaultCeiling().String(), DefaultCeiling(), false},
		{"m=19456,t=2,bcrypt=10", Ceiling{Memory: 19456, Time: 2, BcryptCost: 10}, false},
		{"m=65536,t=3", Ceiling{}, true},
		{"t=3,m=65536,bcrypt=12", Ceiling{}, true},
		{"m=065536,t=3,bcrypt=12", Ceiling{}, true},
		{"m=65536,t=3,bcrypt=17", Ceiling{}, true},
		{"m=65536,t=0,bcrypt=12", Ceiling{}, true},
		{"m=99999999999,t=3,bcrypt=12", Ceiling{}, true},
		{"", Ceiling{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCeiling(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseCeiling(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
