package idp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// ThrottleStore is the part of storage login throttling needs. Counters live
// in the database so every replica sees the same ones.
type ThrottleStore interface {
	RecordFailures(ctx context.Context, now time.Time, fs ...storage.Failure) ([]storage.Counter, error)
	Counters(ctx context.Context, keys ...string) (map[string]storage.Counter, error)
	SetCounter(ctx context.Context, c storage.Counter) error
	ResetCounters(ctx context.Context, keys ...string) error
	ResetCountersWithPrefix(ctx context.Context, prefix string) (int64, error)
	DeleteExpiredCounters(ctx context.Context, now time.Time) (int64, error)
}

// ThrottlePolicy sets the brute-force limits (NIST SP 800-63B-4 §3.2.2,
// RFC 6749 §2.3.1 and §4.3.2). A zero field takes the default named in its
// comment; docs/protection.md explains each choice.
type ThrottlePolicy struct {
	// FreeFailures is how many consecutive failures one account may have
	// from one client IP (an IPv6 /64) before backoff starts. Default 5.
	FreeFailures int
	// BaseDelay is the wait after failure FreeFailures+1; each further
	// failure doubles it. Default 1s.
	BaseDelay time.Duration
	// MaxDelay caps the per-(account, IP) wait. Default 15m.
	MaxDelay time.Duration

	// AccountFreeFailures is how many consecutive failures an account may
	// have from all IPs together before every new attempt waits. Default 20.
	AccountFreeFailures int
	// AccountBaseDelay is the first account-wide wait; it doubles with each
	// further failure. Default 30s.
	AccountBaseDelay time.Duration
	// AccountMaxDelay caps the account-wide wait. Default 15m, so a victim
	// signing in from a new place waits at most this long.
	AccountMaxDelay time.Duration
	// KnownIPTTL is how long an IP the account signed in from successfully
	// stays exempt from the account-wide wait. Default 30 days.
	KnownIPTTL time.Duration

	// IPFailures failed logins from one IP within IPWindow answer every
	// further login from it 429 until the window ends; IPFailures failed
	// client authentications from one IP within IPWindow do the same to
	// every further failed client authentication from it (the two are
	// counted apart). Default 30 per 10m.
	IPFailures int
	IPWindow   time.Duration
	// ClientFailures client-authentication failures for one client from one
	// IP within ClientWindow answer 429 until the window ends (CA-08).
	// Default 20 per 10m.
	ClientFailures int
	ClientWindow   time.Duration

	// CallerRate is how many calls per second one authenticated client may
	// make to introspection and revocation together, after a burst of
	// CallerBurst (BF-09); more answer 429 with Retry-After. Counted per
	// process (see callerLimits). Default 50 per second, burst 100.
	CallerRate  float64
	CallerBurst int

	// CounterTTL is how long a failure counter outlives its last failure.
	// Default 24h.
	CounterTTL time.Duration
	// CleanupInterval is how often Run deletes expired counters. Default 10m.
	CleanupInterval time.Duration
}

// DefaultThrottlePolicy is the policy a zero ThrottlePolicy stands for,
// every field filled in.
func DefaultThrottlePolicy() ThrottlePolicy { return ThrottlePolicy{}.withDefaults() }

// withDefaults fills the zero fields of p.
func (p ThrottlePolicy) withDefaults() ThrottlePolicy {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&p.FreeFailures, 5)
	setD(&p.BaseDelay, time.Second)
	setD(&p.MaxDelay, 15*time.Minute)
	set(&p.AccountFreeFailures, 20)
	setD(&p.AccountBaseDelay, 30*time.Second)
	setD(&p.AccountMaxDelay, 15*time.Minute)
	setD(&p.KnownIPTTL, 30*24*time.Hour)
	set(&p.IPFailures, 30)
	setD(&p.IPWindow, 10*time.Minute)
	set(&p.ClientFailures, 20)
	setD(&p.ClientWindow, 10*time.Minute)
	if p.CallerRate <= 0 {
		p.CallerRate = 50
	}
	set(&p.CallerBurst, 100)
	setD(&p.CounterTTL, 24*time.Hour)
	setD(&p.CleanupInterval, 10*time.Minute)
	return p
}

// backoff is the wait after the given number of consecutive failures: none
// for the first free ones, then base, doubling, capped at max.
func backoff(failures, free int, base, max time.Duration) time.Duration {
	n := failures - free - 1
	if n < 0 {
		return 0
	}
	if n >= 62 {
		return max
	}
	d := base << n
	if d <= 0 || d > max || d>>n != base {
		return max
	}
	return d
}

// PairDelay is the wait imposed on one account from one IP after failures
// consecutive failures from there.
func (p ThrottlePolicy) PairDelay(failures int) time.Duration {
	p = p.withDefaults()
	return backoff(failures, p.FreeFailures, p.BaseDelay, p.MaxDelay)
}

// AccountDelay is the wait imposed on an account, from every IP it has not
// signed in from, after failures consecutive failures from anywhere.
func (p ThrottlePolicy) AccountDelay(failures int) time.Duration {
	p = p.withDefaults()
	return backoff(failures, p.AccountFreeFailures, p.AccountBaseDelay, p.AccountMaxDelay)
}

// delayed is a storage.Backoff blocking for delay(failures) and keeping the
// counter ttl past its last failure (and never less than its block).
func delayed(delay func(int) time.Duration, ttl time.Duration) storage.Backoff {
	return func(c storage.Counter) (time.Time, time.Time) {
		now := c.UpdatedAt.Time
		blocked := now.Add(delay(c.Failures))
		return blocked, later(now.Add(ttl), blocked)
	}
}

// windowed is a storage.Backoff counting failures in fixed windows of the
// given length from the first failure, and blocking until the window ends
// once limit failures are in it.
func windowed(limit int, window time.Duration) storage.Backoff {
	return func(c storage.Counter) (time.Time, time.Time) {
		end := c.ExpiresAt.Time
		if end.IsZero() {
			end = c.UpdatedAt.Add(window)
		}
		if c.Failures >= limit {
			return end, end
		}
		return time.Time{}, end
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Verdict is what a throttle check allows.
type Verdict int

const (
	// Allow: go on and verify the credentials.
	Allow Verdict = iota
	// Deny: do not verify the password; answer exactly as for a wrong
	// password (same invalid_grant body, and run the dummy hash so it takes
	// the same time). Never tell the client it was throttled (BF-03).
	Deny
	// Throttle: answer 429 with Retry-After (Decision.Err) before any
	// credential check (BF-06, CA-08).
	Throttle
	// VerifyFirst: the client's IP has failed client authentication too
	// often (client authentication only). Check the credentials: a client
	// that authenticates goes on, as other clients' failures must not shut
	// it out; a failure answers Decision.Err (429) instead of
	// invalid_client.
	VerifyFirst
)

// Throttle kinds, the limit behind a Decision; also the kind label of
// keyward_throttled_total.
const (
	KindAccountIP = "account_ip" // per (account, IP) backoff
	KindAccount   = "account"    // account-wide backoff
	KindIP        = "ip"         // per-IP failure rate (logins, or client authentications)
	KindClient    = "client"     // per (client, IP) authentication failures
)

// Decision is the answer of a throttle check.
type Decision struct {
	Verdict    Verdict
	Kind       string        // which limit decided; "" when allowed
	RetryAfter time.Duration // until the limit lifts; sent only with Throttle

	// key and until name the throttle window that decided: the counter's
	// key and the end of its block (refusals.first).
	key   string
	until time.Time
}

// Allowed reports whether the credentials may be checked.
func (d Decision) Allowed() bool { return d.Verdict == Allow || d.Verdict == VerifyFirst }

// Err is the 429 response of a Throttle decision (and of a failed
// authentication under VerifyFirst), with Retry-After, and nil for any other
// verdict (a Deny answers as a wrong password instead).
func (d Decision) Err() error {
	if d.Verdict != Throttle && d.Verdict != VerifyFirst {
		return nil
	}
	return &web.Error{
		Code: web.ErrTemporarilyUnavail, Description: "too many failed attempts; retry later",
		Status: http.StatusTooManyRequests, RetryAfter: max(d.RetryAfter, time.Second),
	}
}

// blockedBy returns how long c still blocks at now, or 0.
func blockedBy(c storage.Counter, now time.Time) time.Duration {
	if !c.Live(now) || !now.Before(c.BlockedUntil.Time) {
		return 0
	}
	return c.BlockedUntil.Sub(now)
}

// by is the decision v of limit kind, made by counter c blocking for d.
func by(v Verdict, kind string, c storage.Counter, d time.Duration) Decision {
	return Decision{Verdict: v, Kind: kind, RetryAfter: d, key: c.Key, until: c.BlockedUntil.Time}
}

// decideLogin is the login check as a pure function of the counters read
// (zero Counters when absent): the per-IP rate first (429, it says nothing
// about the account), then the (account, IP) backoff, then the account-wide
// backoff unless the IP is one the account signed in from recently.
func decideLogin(now time.Time, pair, account, ip, known storage.Counter) Decision {
	if d := blockedBy(ip, now); d > 0 {
		return by(Throttle, KindIP, ip, d)
	}
	if d := blockedBy(pair, now); d > 0 {
		return by(Deny, KindAccountIP, pair, d)
	}
	if d := blockedBy(account, now); d > 0 && !known.Live(now) {
		return by(Deny, KindAccount, account, d)
	}
	return Decision{}
}

// decideClient is the client-authentication check. A (client, IP) pair
// over its limit is answered 429 before any check. An IP over its limit of
// client-authentication failures is answered 429 before any check only for
// a client that has failed from it in the window; any other client is
// checked first (VerifyFirst), so one that authenticates is not shut out
// by other clients' failures from its address (a backend shared by many
// users), while a guess from that IP costs the guesser a 429 and blocks
// that client from it. After the IP limit each client id so gets at most
// one more guess from the IP per window.
func decideClient(now time.Time, client, ip storage.Counter) Decision {
	if d := blockedBy(client, now); d > 0 {
		return by(Throttle, KindClient, client, d)
	}
	if d := blockedBy(ip, now); d > 0 {
		if client.Live(now) && client.Failures > 0 {
			return by(Throttle, KindIP, ip, d)
		}
		return by(VerifyFirst, KindIP, ip, d)
	}
	return Decision{}
}

// Throttler applies a ThrottlePolicy through counters in the database, so
// all replicas enforce one set of limits. The grants call CheckLogin before
// verifying a password and LoginFailed or LoginSucceeded after; client
// authentication calls CheckClient and ClientAuthFailed. A store error is
// returned, never taken as "allowed": callers fail closed.
type Throttler struct {
	store   ThrottleStore
	p       ThrottlePolicy
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics.Metrics
	reports refusals
}

// NewThrottler returns a Throttler. now, log and m may be nil (time.Now, no
// logging, no metrics).
func NewThrottler(store ThrottleStore, p ThrottlePolicy, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Throttler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Throttler{store: store, p: p.withDefaults(), now: now, log: log, metrics: m}
}

// Policy returns the policy in force, defaults filled in.
func (t *Throttler) Policy() ThrottlePolicy { return t.p }

// maxKeyInput caps what is hashed into a key; longer input (a 1 MB
// username) is cut first, so it costs no more than a short one.
const maxKeyInput = 1024

// hashKey is a short, fixed-length digest of parts, so counter keys stay
// small whatever a client sends and hold no username or address in clear.
func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		if len(p) > maxKeyInput {
			p = p[:maxKeyInput]
		}
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// accountHash identifies an account by its username as storage compares it
// (storage.UsernameKey), so "Alice" and "alice" share one counter whether
// or not the account exists.
func accountHash(account string) string {
	if len(account) > maxKeyInput {
		account = account[:maxKeyInput]
	}
	return hashKey("account", storage.UsernameKey(account))
}

// IPBucket is the network a client address is counted under: the address
// itself for IPv4, its /64 for IPv6 (one subscriber usually holds a whole
// /64). Text that is no address is returned cut to 64 bytes.
func IPBucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		if len(ip) > 64 {
			ip = ip[:64]
		}
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// Counter keys. Every key of one account starts with accountPrefix so
// Unlock clears them with one prefix delete. LoginDenied's keys are these
// behind "d:" (deniedKey).
func accountPrefix(acct string) string { return "l:" + acct }
func pairKey(acct, ipb string) string  { return "l:" + acct + ":" + hashKey("ip", ipb) }
func knownKey(acct, ipb string) string { return "k:" + acct + ":" + hashKey("ip", ipb) }
func ipKey(ipb string) string          { return "i:" + hashKey("ip", ipb) }
func clientIPKey(ipb string) string    { return "ci:" + hashKey("ip", ipb) }
func clientKey(clientID, ipb string) string {
	return "c:" + hashKey("client", clientID) + ":" + hashKey("ip", ipb)
}

// CheckLogin decides whether a password for account (the username as sent,
// or the user's username for a signed-in user) from ip may be verified now.
// Call it before the password hash, on every password path.
func (t *Throttler) CheckLogin(ctx context.Context, account, ip string) (Decision, error) {
	acct, ipb := accountHash(account), IPBucket(ip)
	pk, ak, ik, kk := pairKey(acct, ipb), accountPrefix(acct), ipKey(ipb), knownKey(acct, ipb)
	cs, err := t.store.Counters(ctx, pk, ak, ik, kk)
	if err != nil {
		return Decision{}, fmt.Errorf("check login throttle: %w", err)
	}
	d := decideLogin(t.now(), cs[pk], cs[ak], cs[ik], cs[kk])
	if !d.Allowed() {
		t.metrics.Throttled(d.Kind)
	}
	return d, nil
}

// LoginFailed records a wrong password (or unknown user) for account from
// ip: the (account, IP) and account-wide backoffs and the IP's rate. Do not
// call it for an attempt CheckLogin refused; that attempt guessed nothing.
func (t *Throttler) LoginFailed(ctx context.Context, account, ip string) error {
	acct, ipb := accountHash(account), IPBucket(ip)
	p := t.p
	cs, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: pairKey(acct, ipb), Policy: delayed(p.PairDelay, p.CounterTTL)},
		storage.Failure{Key: accountPrefix(acct), Policy: delayed(p.AccountDelay, p.CounterTTL)},
		storage.Failure{Key: ipKey(ipb), Policy: windowed(p.IPFailures, p.IPWindow)},
	)
	if err != nil {
		return fmt.Errorf("record login failure: %w", err)
	}
	// Log when a limit starts to bite, once, for alerting (BF-07).
	switch {
	case cs[2].Failures == p.IPFailures:
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindIP, "failures", cs[2].Failures, "until", cs[2].BlockedUntil.Time)
	case cs[1].Failures == p.AccountFreeFailures+1:
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindAccount, "account_key", acct, "failures", cs[1].Failures)
	}
	return nil
}

// deniedKey is the key under which LoginDenied counts refused attempts at
// the limit keyed k. No check reads it.
func deniedKey(k string) string { return "d:" + k }

// LoginDenied records an attempt CheckLogin refused (Deny) for account from
// ip. It changes no limit, since nothing was guessed, but it writes what
// LoginFailed writes: three counters in one transaction, here under "d:"
// keys no check reads, counting refused attempts. A refused attempt thus
// takes as long as a wrong password (TE-21). Without this write it came
// back measurably sooner: about 4 ms of 55 on SQLite and PostgreSQL
// (cmd/keyward TestLoginTimingAgainstProcess), enough to tell an attacker
// that the throttle, not the password, answered.
func (t *Throttler) LoginDenied(ctx context.Context, account, ip string) error {
	acct, ipb := accountHash(account), IPBucket(ip)
	ttl := t.p.CounterTTL
	keep := func(c storage.Counter) (time.Time, time.Time) { return time.Time{}, c.UpdatedAt.Add(ttl) }
	if _, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: deniedKey(pairKey(acct, ipb)), Policy: keep},
		storage.Failure{Key: deniedKey(accountPrefix(acct)), Policy: keep},
		storage.Failure{Key: deniedKey(ipKey(ipb)), Policy: keep},
	); err != nil {
		return fmt.Errorf("record refused login: %w", err)
	}
	return nil
}

// LoginSucceeded clears the account-wide failure count and the count from
// ip, and marks ip as one the account signs in from (exempt from the
// account-wide wait for KnownIPTTL). Counts from other IPs are kept, so a
// victim signing in does not lift an attacker's backoff; the per-IP rate is
// kept too, so a spraying IP that guesses one password stays throttled.
func (t *Throttler) LoginSucceeded(ctx context.Context, account, ip string) error {
	acct, ipb := accountHash(account), IPBucket(ip)
	if err := t.store.ResetCounters(ctx, pairKey(acct, ipb), accountPrefix(acct)); err != nil {
		return fmt.Errorf("record login success: %w", err)
	}
	now := storage.At(t.now())
	mark := storage.Counter{Key: knownKey(acct, ipb), UpdatedAt: now, ExpiresAt: storage.At(now.Add(t.p.KnownIPTTL))}
	if err := t.store.SetCounter(ctx, mark); err != nil {
		return fmt.Errorf("record login success: %w", err)
	}
	return nil
}

// Unlock clears every failure count of account, from every IP (an operator
// unlocking it, or a completed password reset: BF-04).
func (t *Throttler) Unlock(ctx context.Context, account string) error {
	if _, err := t.store.ResetCountersWithPrefix(ctx, accountPrefix(accountHash(account))); err != nil {
		return fmt.Errorf("unlock account: %w", err)
	}
	return nil
}

// CheckClient decides whether client authentication for clientID from ip
// may be attempted now (decideClient). A Throttle decision answers 429
// (Decision.Err) before any check; under VerifyFirst a failed check
// answers 429 and a successful one goes on.
func (t *Throttler) CheckClient(ctx context.Context, clientID, ip string) (Decision, error) {
	ipb := IPBucket(ip)
	ck, ik := clientKey(clientID, ipb), clientIPKey(ipb)
	cs, err := t.store.Counters(ctx, ck, ik)
	if err != nil {
		return Decision{}, fmt.Errorf("check client throttle: %w", err)
	}
	d := decideClient(t.now(), cs[ck], cs[ik])
	if d.Verdict == Throttle {
		t.metrics.Throttled(d.Kind)
	}
	return d, nil
}

// ClientAuthFailed records a failed client authentication (unknown client
// or wrong secret) for clientID from ip: the (client, IP) count and the
// IP's count of client-authentication failures. Counting per (client, IP)
// keeps an attacker elsewhere from locking a legitimate client out; the
// IP's count is kept apart from its failed logins, so client failures never
// refuse a login.
func (t *Throttler) ClientAuthFailed(ctx context.Context, clientID, ip string) error {
	ipb := IPBucket(ip)
	p := t.p
	cs, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: clientKey(clientID, ipb), Policy: windowed(p.ClientFailures, p.ClientWindow)},
		storage.Failure{Key: clientIPKey(ipb), Policy: windowed(p.IPFailures, p.IPWindow)},
	)
	if err != nil {
		return fmt.Errorf("record client authentication failure: %w", err)
	}
	// Log when a limit starts to bite, once per window, for alerting (BF-07).
	if cs[0].Failures == p.ClientFailures {
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindClient, "client_id", web.Truncate(clientID, 128), "failures", cs[0].Failures, "until", cs[0].BlockedUntil.Time)
	}
	if cs[1].Failures == p.IPFailures {
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindIP, "failures", cs[1].Failures, "until", cs[1].BlockedUntil.Time)
	}
	return nil
}

// refusals remembers which throttle windows this process has reported, so
// that refused traffic costs one audit row and one log line per limit and
// window, not one per request. It holds at most maxRefusals windows: past
// that, windows that have ended are forgotten first and then any, so
// memory stays bounded whatever an attacker sends (a forgotten window is
// at worst reported once more).
type refusals struct {
	mu   sync.Mutex
	seen map[refusal]struct{}
}

type refusal struct {
	key   string
	until time.Time
}

// maxRefusals bounds the windows refusals remembers. Each window is opened
// by failures counted in the database first (a limit's free ones), so a
// real attack fills few.
const maxRefusals = 4096

// first reports whether d is the first refusal of its window seen here, and
// remembers the window.
func (r *refusals) first(d Decision, now time.Time) bool {
	k := refusal{key: d.key, until: d.until.UTC().Truncate(time.Second)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[k]; ok {
		return false
	}
	if r.seen == nil {
		r.seen = map[refusal]struct{}{}
	}
	if len(r.seen) >= maxRefusals {
		for old := range r.seen {
			if !old.until.After(now) {
				delete(r.seen, old)
			}
		}
		for old := range r.seen { // map order is random: drop any quarter
			if len(r.seen) < maxRefusals*3/4 {
				break
			}
			delete(r.seen, old)
		}
	}
	r.seen[k] = struct{}{}
	return true
}

// firstRefusal reports whether d (a refusing decision) is the first refusal
// of its limit and window in this process.
func (t *Throttler) firstRefusal(d Decision) bool { return t.reports.first(d, t.now()) }

// refusedQuietly stands in for the audit row of a Deny that is not the
// first of its window: one single-row write, which costs what the row's
// insert costs, so a refused attempt still takes as long as a wrong
// password (TE-21), but it rewrites one counter under the window's "d:"
// key instead of adding a row.
func (t *Throttler) refusedQuietly(ctx context.Context, d Decision) error {
	now := storage.At(t.now())
	c := storage.Counter{Key: deniedKey("r:" + d.key), UpdatedAt: now, ExpiresAt: storage.At(later(d.until, now.Add(time.Minute)))}
	if err := t.store.SetCounter(ctx, c); err != nil {
		return fmt.Errorf("record refused login: %w", err)
	}
	return nil
}

// recordThrottled reports an attempt a throttle refused, as e (a
// login_throttled event). The check has counted it in
// keyward_throttled_total already; the audit row, and the WARN log line
// that goes with it, are written only for the first refusal of d's limit
// and window in this process, so throttled traffic costs O(1) rows and log
// lines per window and replica, however much of it comes. A Deny that is
// not reported still costs a write like the row's (refusedQuietly).
func (s *Server) recordThrottled(ctx context.Context, d Decision, e audit.Event) {
	if s.throttle.firstRefusal(d) {
		s.audit.Record(ctx, e)
		return
	}
	if d.Verdict == Deny {
		if err := s.throttle.refusedQuietly(ctx, d); err != nil {
			s.log.ErrorContext(ctx, "login throttle: record refusal", "err", err)
		}
	}
}

// Run deletes expired counters every CleanupInterval until ctx ends.
func (t *Throttler) Run(ctx context.Context) {
	tick := time.NewTicker(t.p.CleanupInterval)
	defer tick.Stop()
	for {
		if n, err := t.store.DeleteExpiredCounters(ctx, t.now()); err != nil && ctx.Err() == nil {
			t.log.ErrorContext(ctx, "delete expired throttle counters", "err", err)
		} else if n > 0 {
			t.log.DebugContext(ctx, "deleted expired throttle counters", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Throttler returns the server's brute-force throttle, for the grants and
// for cmd/keyward to Run.
func (s *Server) Throttler() *Throttler { return s.throttle }
