package guard

import (
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Policy sets the brute-force limits (NIST SP 800-63B-4 §3.2.2,
// RFC 6749 §2.3.1 and §4.3.2). A zero field takes the default named in its
// comment; docs/protection.md explains each choice.
type Policy struct {
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

	// ForgotAccountLimit forgot-password requests for one account (by the
	// username or address sent) within ForgotAccountWindow are served; more
	// are answered alike but mail nothing (RR-09: no lockout, no flood of
	// mail). Per IP, forgot-password requests share the registration limit's
	// numbers, IPFailures per IPWindow, and answer 429 past it. Default 5
	// per hour.
	ForgotAccountLimit  int
	ForgotAccountWindow time.Duration

	// CallerRate is how many calls per second one authenticated client may
	// make to introspection and revocation together, after a burst of
	// CallerBurst (BF-09); more answer 429 with Retry-After. Counted per
	// process (see Callers). Default 50 per second, burst 100.
	CallerRate  float64
	CallerBurst int

	// CounterTTL is how long a failure counter outlives its last failure.
	// Default 24h.
	CounterTTL time.Duration
	// CleanupInterval is how often Run deletes expired counters. Default 10m.
	CleanupInterval time.Duration
}

// DefaultPolicy is the policy a zero Policy stands for,
// every field filled in.
func DefaultPolicy() Policy { return Policy{}.withDefaults() }

// withDefaults fills the zero fields of p.
func (p Policy) withDefaults() Policy {
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
	set(&p.ForgotAccountLimit, 5)
	setD(&p.ForgotAccountWindow, time.Hour)
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
func (p Policy) PairDelay(failures int) time.Duration {
	p = p.withDefaults()
	return backoff(failures, p.FreeFailures, p.BaseDelay, p.MaxDelay)
}

// AccountDelay is the wait imposed on an account, from every IP it has not
// signed in from, after failures consecutive failures from anywhere.
func (p Policy) AccountDelay(failures int) time.Duration {
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
