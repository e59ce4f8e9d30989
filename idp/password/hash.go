package password

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// MaxBytes is the longest password accepted, in UTF-8 bytes, both as received and after
// NFKC normalisation. Longer passwords get an explicit error and are never truncated
// (PW-06); 64 characters of up to 4 bytes each always fit.
const MaxBytes = 256

// ErrTooLong reports a password over MaxBytes. Hash and Verify return it before spending
// any hashing time (AV-02).
var ErrTooLong = fmt.Errorf("password longer than %d bytes", MaxBytes)

// Params are the argon2id parameters for new hashes (RFC 9106 §3.1).
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes; 1 keeps one login on one core
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams returns the OWASP row Keyward uses by default (PW-01): 19 MiB, two
// passes, one lane, a 16-byte salt and a 32-byte key.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// validate checks p against the bounds a stored hash must meet, and salt and key
// lengths against what a new hash should have (PW-02).
func (p Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d not in 1..%d", p.Threads, maxThreads)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d not in 1..%d", p.Time, maxTime)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB not in %d..%d", p.Memory, 8*uint32(p.Threads), maxMemoryKiB)
	case p.SaltLen < 16 || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d not in 16..%d", p.SaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d not in %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// DefaultMemoryBudget is the argon2 memory all concurrent hashes may hold together.
const DefaultMemoryBudget = 256 << 20

// Defaults for the wait queue in front of the hashing slots.
const (
	DefaultMaxQueue = 64
	DefaultMaxWait  = 2 * time.Second
)

// bcryptWeight is the memory booked for a bcrypt check, in KiB (bcrypt needs about 4 KiB).
const bcryptWeight = 4

// Option configures a Hasher's limits.
type Option func(*Hasher)

// WithMaxConcurrent sets how many hashes may run at once. The default is
// max(1, min(GOMAXPROCS, budget/memory)): one hash per core. argon2id keeps
// a core busy, so more slots only make hashes share cores and caches (two
// per core measured about 5 % fewer logins per second).
func WithMaxConcurrent(n int) Option { return func(h *Hasher) { h.lim.maxConc = n } }

// WithMemoryBudget sets the bytes of argon2 memory concurrent hashes may hold together;
// the default is DefaultMemoryBudget.
func WithMemoryBudget(bytes int64) Option {
	return func(h *Hasher) { h.lim.budget = uint64(max(bytes, 0)) >> 10 }
}

// WithMaxQueue sets how many requests may wait for a slot; 0 refuses any request that
// cannot start at once. The default is DefaultMaxQueue.
func WithMaxQueue(n int) Option { return func(h *Hasher) { h.lim.maxQueue = n } }

// WithMaxWait sets how long a request waits for a slot before ErrOverloaded; the default
// is DefaultMaxWait.
func WithMaxWait(d time.Duration) Option { return func(h *Hasher) { h.lim.maxWait = d } }

// WithObserver registers f to be called once per request for a slot, for metrics. f runs
// on the caller's goroutine and must not block.
func WithObserver(f func(Observation)) Option { return func(h *Hasher) { h.lim.observe = f } }

// MinPepperLen is the shortest pepper WithPepper accepts, in bytes.
const MinPepperLen = 32

// maxPepperLen bounds a pepper; HMAC-SHA256 hashes longer keys down to 32 bytes anyway.
const maxPepperLen = 1024

// ErrWrongPepper reports a peppered hash (one whose PHC parameters carry a keyid) that
// this Hasher cannot check: it holds no pepper, or one with another keyid. It is an
// operator's error, not a wrong password, so Verify returns it instead of false.
var ErrWrongPepper = errors.New("password hash made with a pepper this hasher does not hold")

// WithPepper makes the Hasher pepper its hashes (PW-04, OWASP Password Storage
// "Peppering"): argon2id is fed HMAC-SHA256(key, NFKC(password)) instead of the password,
// and the PHC string carries keyid=<base64 of 6 bytes>, an identifier derived from key
// (the first 6 bytes of HMAC-SHA256(key, "keyward password pepper keyid")), so a verifier
// knows a hash needs the key and which one. The key is held outside the database
// (a file from a KMS or secret store), so a database dump alone cannot be checked
// offline. key must be at least MinPepperLen random bytes; WithPepper copies it.
func WithPepper(key []byte) Option {
	k := bytes.Clone(key) // now, so the caller may clear key before NewHasher runs
	if k == nil {
		k = []byte{} // set but empty: NewHasher refuses it
	}
	return func(h *Hasher) { h.pepper = k }
}

// Hasher hashes and verifies passwords under a concurrency and memory limit. It is safe
// for concurrent use.
type Hasher struct {
	params Params
	lim    *limiter
	pepper []byte // nil: no pepper
	keyid  []byte // derived from pepper; nil without one
	dummy  phc    // a hash no password matches, at params and keyid, for VerifyDummy

	ceiling Ceiling // the costliest stored hash checked
	pace    *pacer  // the floor on the time of failed checks (TE-21)
}

// NewHasher returns a Hasher making argon2id hashes with p. It fails when p is out of
// bounds or one hash at p does not fit the memory budget. It calibrates the floor on
// failed checks (Floor) with a few small hashes, some milliseconds at DefaultParams.
func NewHasher(p Params, opts ...Option) (*Hasher, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("new password hasher: %w", err)
	}
	h := &Hasher{params: p, lim: &limiter{
		maxConc: -1, budget: DefaultMemoryBudget >> 10,
		maxQueue: DefaultMaxQueue, maxWait: DefaultMaxWait,
	}, ceiling: DefaultCeiling(), pace: &pacer{now: time.Now, sleep: sleepCtx}}
	for _, opt := range opts {
		opt(h)
	}
	l := h.lim
	switch {
	case uint64(p.Memory) > l.budget:
		return nil, fmt.Errorf("new password hasher: memory budget %d KiB below one hash (%d KiB)", l.budget, p.Memory)
	case l.maxConc == 0 || l.maxConc < -1:
		return nil, fmt.Errorf("new password hasher: max concurrent %d below 1", l.maxConc)
	case l.maxQueue < 0:
		return nil, fmt.Errorf("new password hasher: max queue %d below 0", l.maxQueue)
	case l.maxWait <= 0:
		return nil, fmt.Errorf("new password hasher: max wait %v not positive", l.maxWait)
	case h.pepper != nil && (len(h.pepper) < MinPepperLen || len(h.pepper) > maxPepperLen):
		return nil, fmt.Errorf("new password hasher: pepper is %d bytes, want %d to %d", len(h.pepper), MinPepperLen, maxPepperLen)
	}
	if err := h.ceiling.validate(); err != nil {
		return nil, fmt.Errorf("new password hasher: %w", err)
	}
	h.pace.current = p
	h.pace.argonCost = float64(max(uint64(h.ceiling.Memory)*uint64(h.ceiling.Time), uint64(p.Memory)*uint64(p.Time)))
	h.pace.bcryptCost = h.ceiling.BcryptCost
	if h.pepper != nil {
		h.keyid = pepperKeyID(h.pepper)
	}
	if l.maxConc == -1 {
		l.maxConc = max(1, min(runtime.GOMAXPROCS(0), int(l.budget/uint64(p.Memory))))
	}
	h.pace.measure(p.Memory)
	h.dummy = phc{memory: p.Memory, time: p.Time, threads: p.Threads, keyid: h.keyid,
		salt: randomBytes(p.SaltLen), key: randomBytes(p.KeyLen)}
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Stats returns a snapshot of the limiter, for gauges (queue depth, in-flight, memory).
func (h *Hasher) Stats() Stats { return h.lim.snapshot() }

// Floor returns how long every failed check and every VerifyDummy lasts at least, now:
// the estimated time of a check at the Ceiling, with a margin. It follows the machine's
// load.
func (h *Hasher) Floor() time.Duration { return h.pace.floor() }

// Peppered reports whether the Hasher peppers its hashes (WithPepper).
func (h *Hasher) Peppered() bool { return h.pepper != nil }

// Hash returns the argon2id PHC string for pw after NFKC normalisation, with a fresh
// random salt (PW-02), peppered when the Hasher has a pepper (PW-04). It fails with
// ErrTooLong, ErrOverloaded or ctx's error.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	n, err := prepare(pw)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	p := h.params
	release, err := h.lim.acquire(ctx, uint64(p.Memory))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer release()
	enc := phc{memory: p.Memory, time: p.Time, threads: p.Threads, keyid: h.keyid, salt: randomBytes(p.SaltLen)}
	enc.key = argon2.IDKey(h.input(n, enc.keyid), enc.salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return enc.encode(), nil
}

// Verify reports whether pw matches encoded, an argon2id PHC string or an imported
// bcrypt hash, comparing in constant time. rehash is true when pw matched and encoded
// should be replaced by Hash(pw): it is bcrypt, has other parameters (PW-03), or is not
// peppered with the Hasher's pepper (PW-04: an unpeppered hash verifies without the
// pepper and is upgraded at the next login). A wrong password is (false, false, nil);
// a hash that cannot be checked is an error wrapping ErrMalformedHash,
// ErrUnsupportedHash or ErrWrongPepper (a peppered hash and no pepper, or another one).
//
// Every check that does not match lasts at least Floor, whatever the stored hash, as
// VerifyDummy does (TE-21): a wrong password, a hash that cannot be checked (which costs
// a dummy check first) and a hash above the Ceiling (refused with ErrUnsupportedHash)
// take the same time, so timing tells no account from another or from an unknown user.
// The wait after the hash holds no hashing slot. A match returns at once.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	n, err := prepare(pw)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	floor := h.pace.floor() // before this check's own time moves it
	ok, rehash, spent, err := h.verify(ctx, pw, n, encoded)
	if err != nil && !errors.Is(err, errHashUnusable) {
		return false, false, fmt.Errorf("verify password: %w", err) // overloaded or ctx ended: as VerifyDummy
	}
	if ok {
		return true, rehash, nil
	}
	if err != nil && spent == 0 {
		// Nothing was hashed: cost what an unknown user costs.
		var derr error
		if _, spent, derr = h.verifyArgon2(ctx, n, h.dummy); derr != nil {
			return false, false, fmt.Errorf("verify password: %w", derr)
		}
	}
	h.pace.pad(ctx, floor, spent)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	return false, false, nil
}

// VerifyDummy costs what a failed Verify costs, whatever the stored hash, and never
// matches: a check at the current parameters, then a wait until Floor has passed. Call
// it for an unknown user so the answer takes as long as for a known one (TE-21). It
// returns the errors Verify would: ErrTooLong, ErrOverloaded, ctx's error.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) error {
	n, err := prepare(pw)
	if err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	floor := h.pace.floor()
	_, spent, err := h.verifyArgon2(ctx, n, h.dummy)
	if err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	h.pace.pad(ctx, floor, spent)
	return nil
}

// NeedsRehash reports whether encoded should be replaced at the next login: it is
// bcrypt, has other parameters or another pepper keyid than the Hasher's, or cannot be
// parsed.
func (h *Hasher) NeedsRehash(encoded string) bool {
	s, err := classify(encoded)
	if err != nil || s != schemeArgon2id {
		return true
	}
	parsed, err := parsePHC(encoded)
	return err != nil || h.stale(parsed)
}

// stale reports whether a parsed hash differs from what Hash makes now: parameters or
// pepper.
func (h *Hasher) stale(parsed phc) bool {
	return parsed.params() != h.params || !bytes.Equal(parsed.keyid, h.keyid)
}

// errHashUnusable marks the errors of verify that come from the stored hash (it cannot
// be parsed, is unsupported, above the ceiling or peppered with another key), as
// opposed to the limiter's or ctx's.
var errHashUnusable = errors.New("stored hash cannot be checked")

// unusable marks err, an error about the stored hash, with errHashUnusable.
func unusable(err error) error { return unusableError{err} }

// unusableError is an error about the stored hash; errors.Is finds errHashUnusable in it
// and the error it carries, whose text it has.
type unusableError struct{ error }

func (e unusableError) Unwrap() []error { return []error{e.error, errHashUnusable} }

// verify checks normalised password n (pw as received) against encoded. spent is the
// time spent hashing in a slot, 0 if nothing was hashed.
func (h *Hasher) verify(ctx context.Context, pw, n, encoded string) (ok, rehash bool, spent time.Duration, err error) {
	s, err := classify(encoded)
	if err != nil {
		return false, false, 0, unusable(err)
	}
	if s == schemeBcrypt {
		ok, spent, err := h.verifyBcrypt(ctx, pw, n, encoded)
		return ok, ok, spent, err
	}
	if s == schemeImported {
		ok, spent, err := h.verifyImported(ctx, pw, encoded)
		return ok, ok, spent, err
	}
	parsed, err := parsePHC(encoded)
	if err != nil {
		return false, false, 0, unusable(err)
	}
	if uint64(parsed.memory) > h.lim.budget {
		return false, false, 0, unusable(fmt.Errorf("%w: needs %d KiB, budget is %d KiB",
			ErrUnsupportedHash, parsed.memory, h.lim.budget))
	}
	if cost := uint64(parsed.memory) * uint64(parsed.time); float64(cost) > h.pace.argonCost {
		return false, false, 0, unusable(fmt.Errorf("%w: m·t is %d KiB·passes, above the ceiling of %.0f",
			ErrUnsupportedHash, cost, h.pace.argonCost))
	}
	if parsed.keyid != nil && !bytes.Equal(parsed.keyid, h.keyid) {
		if h.keyid == nil {
			return false, false, 0, unusable(fmt.Errorf("%w: hash has pepper keyid %s, no pepper is configured",
				ErrWrongPepper, b64.EncodeToString(parsed.keyid)))
		}
		return false, false, 0, unusable(fmt.Errorf("%w: hash has pepper keyid %s, the configured pepper is %s",
			ErrWrongPepper, b64.EncodeToString(parsed.keyid), b64.EncodeToString(h.keyid)))
	}
	ok, spent, err = h.verifyArgon2(ctx, n, parsed)
	return ok, ok && h.stale(parsed), spent, err
}

// input is what argon2id is fed for normalised password n in a hash with keyid: n itself
// for an unpeppered hash, HMAC-SHA256(pepper, n) for a peppered one. The caller has
// checked that keyid is nil or the Hasher's.
func (h *Hasher) input(n string, keyid []byte) []byte {
	if keyid == nil {
		return []byte(n)
	}
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(n))
	return m.Sum(nil)
}

// pepperKeyID derives the keyid a peppered PHC string carries: the first keyIDLen bytes
// of HMAC-SHA256(pepper, a fixed label). It names the key without revealing it.
func pepperKeyID(pepper []byte) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte("keyward password pepper keyid"))
	return m.Sum(nil)[:keyIDLen]
}

// verifyArgon2 recomputes the key for normalised password n under want's parameters and
// pepper; VerifyDummy takes the same path. spent is the time the hash took.
func (h *Hasher) verifyArgon2(ctx context.Context, n string, want phc) (ok bool, spent time.Duration, err error) {
	release, err := h.lim.acquire(ctx, uint64(want.memory))
	if err != nil {
		return false, 0, err
	}
	defer release()
	start := h.pace.now()
	got := argon2.IDKey(h.input(n, want.keyid), want.salt, want.time, want.memory, want.threads, uint32(len(want.key)))
	spent = max(h.pace.now().Sub(start), 1)
	h.pace.observeArgon2(want, spent)
	return subtle.ConstantTimeCompare(got, want.key) == 1, spent, nil
}

// verifyBcrypt checks an imported bcrypt hash. It tries the normalised password, then,
// if different, the password as received, since the system that made the hash may not
// have normalised. bcrypt reads only the first 72 bytes; the hash is replaced by argon2id
// of the whole password at this login.
//
// A password whose normalised form differs from it costs two bcrypt checks, where an
// argon2id hash costs one; the floor covers a bcrypt hash at the ceiling checked once
// (the margin covers some of a second), and a server with many such passwords and
// bcrypt hashes near the ceiling lowers the ceiling's bcrypt cost by one.
func (h *Hasher) verifyBcrypt(ctx context.Context, raw, n, encoded string) (ok bool, spent time.Duration, err error) {
	cost, err := checkBcrypt(encoded)
	if err != nil {
		return false, 0, unusable(err)
	}
	if cost > h.ceiling.BcryptCost {
		return false, 0, unusable(fmt.Errorf("%w: bcrypt cost %d is above the ceiling of %d",
			ErrUnsupportedHash, cost, h.ceiling.BcryptCost))
	}
	release, err := h.lim.acquire(ctx, bcryptWeight)
	if err != nil {
		return false, 0, err
	}
	defer release()
	for i, candidate := range []string{n, raw} {
		if i == 1 && raw == n {
			break
		}
		start := h.pace.now()
		err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(candidate))
		d := max(h.pace.now().Sub(start), 1)
		spent += d
		switch {
		case err == nil:
			return true, spent, nil
		case !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, spent, unusable(fmt.Errorf("%w: bcrypt: %v", ErrMalformedHash, err))
		}
		h.pace.observeBcrypt(cost, d)
	}
	return false, spent, nil
}

// prepare enforces MaxBytes on pw as received and after NFKC, and returns the
// normalised form. The first check keeps a megabyte password from costing anything.
func prepare(pw string) (string, error) {
	if len(pw) > MaxBytes {
		return "", ErrTooLong
	}
	n := Normalize(pw)
	if len(n) > MaxBytes {
		return "", ErrTooLong
	}
	return n, nil
}

// Normalize returns pw in Unicode NFKC, the form Keyward hashes and checks (PW-09), so
// the same password typed as composed or decomposed, ligature or letters, full-width or
// ASCII, matches.
func Normalize(pw string) string { return norm.NFKC.String(pw) }

// randomBytes returns n bytes from crypto/rand, which does not fail.
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
