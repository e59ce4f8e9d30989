package password

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Ceiling is the costliest stored hash a Hasher checks (TE-21). Every failed check and
// every VerifyDummy lasts at least as long as a check of a hash at the ceiling would (the
// floor), so the time of a failure tells neither whether the account exists nor which
// parameters its hash has. A stored hash above the ceiling would take longer than the
// floor, and so would stand out: Verify refuses it with ErrUnsupportedHash, after the
// time a failure takes, and the operator raises the ceiling or resets the password.
//
// The argon2id ceiling is on m·t, the work of a hash whatever its split between memory
// and passes; the current parameters are always within it.
type Ceiling struct {
	Memory     uint32 // KiB; with Time: argon2id hashes with m·t ≤ Memory·Time are checked
	Time       uint32 // passes
	BcryptCost int    // imported bcrypt hashes up to this cost are checked
}

// DefaultCeiling covers argon2id at RFC 9106's second recommended option (64 MiB, three
// passes: any OWASP or RFC row, and Keyward's default of 19 MiB and two passes) and
// bcrypt up to cost 12, the default of bcrypt in Rails, Laravel 11 and PHP 8.4 (most
// others use 10). On the 2-core test machine, idle, that floor is about 0.35 s: the time
// of every failed login, spent asleep and holding no hashing slot; a successful one is
// not slowed.
func DefaultCeiling() Ceiling { return Ceiling{Memory: 64 << 10, Time: 3, BcryptCost: 12} }

// WithCeiling sets the costliest stored hash the Hasher checks, and so the floor on the
// time of every failed check; the default is DefaultCeiling. Lower it when no stored
// hash can be costlier (failed logins then return sooner); raise it to check older,
// costlier hashes.
func WithCeiling(c Ceiling) Option { return func(h *Hasher) { h.ceiling = c } }

// String renders c as ParseCeiling reads it: m=KiB,t=passes,bcrypt=cost.
func (c Ceiling) String() string {
	return fmt.Sprintf("m=%d,t=%d,bcrypt=%d", c.Memory, c.Time, c.BcryptCost)
}

// ParseCeiling reads a Ceiling written as m=KiB,t=passes,bcrypt=cost (all three, in
// that order, as String writes it), for a command-line flag.
func ParseCeiling(s string) (Ceiling, error) {
	bad := fmt.Errorf("ceiling %q is not m=KiB,t=passes,bcrypt=cost (such as %s)", s, DefaultCeiling())
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return Ceiling{}, bad
	}
	var vals [3]uint64
	for i, name := range [3]string{"m=", "t=", "bcrypt="} {
		digits, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return Ceiling{}, bad
		}
		v, err := parseDecimal(digits)
		if err != nil || v > maxMemoryKiB {
			return Ceiling{}, bad
		}
		vals[i] = v
	}
	c := Ceiling{Memory: uint32(vals[0]), Time: uint32(vals[1]), BcryptCost: int(vals[2])}
	if err := c.validate(); err != nil {
		return Ceiling{}, err
	}
	return c, nil
}

func (c Ceiling) validate() error {
	switch {
	case c.Memory < 8 || c.Memory > maxMemoryKiB:
		return fmt.Errorf("ceiling memory %d KiB not in 8..%d", c.Memory, maxMemoryKiB)
	case c.Time < 1 || c.Time > maxTime:
		return fmt.Errorf("ceiling time %d not in 1..%d", c.Time, maxTime)
	case c.BcryptCost < minBcryptCost || c.BcryptCost > maxBcryptCost:
		return fmt.Errorf("ceiling bcrypt cost %d not in %d..%d", c.BcryptCost, minBcryptCost, maxBcryptCost)
	}
	return nil
}

// floorMargin is how much longer than the estimate of a check at the ceiling the floor
// is. The estimate is linear in m·t, but a larger memory runs a few per cent slower per
// KiB (caches), and on a loaded machine the time of one hash varies by tens of per cent
// from one to the next.
const floorMargin = 1.5

// ewmaWeight is the weight of a new observation in the running estimates.
const ewmaWeight = 1.0 / 8

// calibrationBcryptCost is the bcrypt cost of the calibration: about 2 ms, long enough
// that bcrypt's fixed set-up is a small part of it.
const calibrationBcryptCost = 5

// pacer holds the floor on the time of failed checks. It estimates the time of a check
// at the ceiling from two running figures: unit, the time of one KiB·pass of argon2id
// (observed on every argon2id check at the current parameters, VerifyDummy's included,
// so it follows the machine's load), and ratio, what one bcrypt round costs in units
// (calibrated by NewHasher, then averaged over every bcrypt check).
type pacer struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration)

	current    Params  // the Hasher's parameters: only their checks move unit
	argonCost  float64 // KiB·passes at the ceiling
	bcryptCost int     // cost at the ceiling

	mu    sync.Mutex
	unit  float64 // ns per KiB·pass; 0 until the first observation
	ratio float64 // units per bcrypt round; 0 until calibrated
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ewma folds sample into the running estimate cur (0: none yet). It rises at once to a
// larger sample and falls slowly, so the floor follows a machine getting busier at the
// next check, and a quieter one over some ten.
func ewma(cur, sample float64) float64 {
	if cur == 0 || sample > cur {
		return sample
	}
	return cur + (sample-cur)*ewmaWeight
}

// observeArgon2 records that an argon2id check of want took d. Only checks at the
// current parameters count (VerifyDummy's and those of current hashes): they are the
// same work each time, so they measure the machine's load, and a slow stored hash does
// not move the floor that the next failures wait for.
func (p *pacer) observeArgon2(want phc, d time.Duration) {
	if want.memory != p.current.Memory || want.time != p.current.Time || want.threads != p.current.Threads || d <= 0 {
		return
	}
	p.mu.Lock()
	p.unit = ewma(p.unit, float64(d)/(float64(want.memory)*float64(want.time)))
	p.mu.Unlock()
}

// observeBcrypt records that a bcrypt check at cost took d.
func (p *pacer) observeBcrypt(cost int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unit == 0 || d <= 0 {
		return
	}
	// The ratio is a property of the processor more than of its load: a plain average.
	p.ratio += (float64(d)/float64(uint64(1)<<cost)/p.unit - p.ratio) * ewmaWeight
}

// floorFor is the floor for a unit (ns per KiB·pass of argon2id) and a ratio (units per
// bcrypt round): floorMargin times the costlier of a check at each ceiling. It is pure;
// pacer.floor runs it on the current estimates.
func floorFor(unit, ratio, argonCost float64, bcryptCost int) time.Duration {
	argon := unit * argonCost
	bc := unit * ratio * float64(uint64(1)<<bcryptCost)
	return time.Duration(floorMargin * max(argon, bc))
}

// floor returns the current floor.
func (p *pacer) floor() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return floorFor(p.unit, p.ratio, p.argonCost, p.bcryptCost)
}

// measure calibrates the pacer: argon2id with memory m and one pass, and bcrypt at
// calibrationBcryptCost, alternately, three times each, keeping the fastest of each
// (about 3·m/2000 ms plus 6 ms). It gives the bcrypt ratio and a first argon2id unit,
// so the floor covers every hash within the ceiling before the first is checked.
// NewHasher runs it, before the Hasher is shared.
func (p *pacer) measure(m uint32) {
	hash, err := bcrypt.GenerateFromPassword([]byte("keyward calibration"), calibrationBcryptCost)
	if err != nil {
		return
	}
	salt := randomBytes(16)
	argonBest, bcryptBest := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 3 {
		start := p.now()
		argon2.IDKey([]byte("keyward calibration"), salt, 1, m, 1, 32)
		argonBest = min(argonBest, p.now().Sub(start))
		start = p.now()
		bcrypt.CompareHashAndPassword(hash, []byte("not the calibration password"))
		bcryptBest = min(bcryptBest, p.now().Sub(start))
	}
	if argonBest <= 0 || bcryptBest <= 0 {
		return
	}
	unit := float64(argonBest) / float64(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unit = unit
	p.ratio = float64(bcryptBest) / float64(uint64(1)<<calibrationBcryptCost) / unit
}

// pad sleeps until a failed check that spent spent hashing has lasted floor, the floor
// read when the check began: a check's own time moves the estimates only for the checks
// after it, so a slow hash does not lengthen its own wait. The caller has given back
// its hashing slot: the sleep holds none.
func (p *pacer) pad(ctx context.Context, floor, spent time.Duration) {
	if d := floor - spent; d > 0 {
		p.sleep(ctx, d)
	}
}

// withClock replaces the pacer's clock and sleep, for tests.
func withClock(now func() time.Time, sleep func(context.Context, time.Duration)) Option {
	return func(h *Hasher) { h.pace.now, h.pace.sleep = now, sleep }
}

// ceilingUnits is the cost of a check at the ceiling, in KiB·passes of argon2id: the
// costlier of the argon2id and the bcrypt ceiling.
func (p *pacer) ceilingUnits() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.argonCost, p.ratio*float64(uint64(1)<<p.bcryptCost))
}
