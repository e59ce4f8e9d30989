package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Store is the part of storage login throttling needs. Counters live
// in the database so every replica sees the same ones.
type Store interface {
	RecordFailures(ctx context.Context, now time.Time, fs ...storage.Failure) ([]storage.Counter, error)
	Counters(ctx context.Context, keys ...string) (map[string]storage.Counter, error)
	SetCounter(ctx context.Context, c storage.Counter) error
	ResetCounters(ctx context.Context, keys ...string) error
	ResetCountersWithPrefix(ctx context.Context, prefix string) (int64, error)
	DeleteExpiredCounters(ctx context.Context, now time.Time) (int64, error)
}

// Throttler applies a Policy through counters in the database, so
// all replicas enforce one set of limits. The grants call CheckLogin before
// verifying a password and LoginFailed or LoginSucceeded after; client
// authentication calls CheckClient and ClientAuthFailed. A store error is
// returned, never taken as "allowed": callers fail closed.
type Throttler struct {
	store   Store
	p       Policy
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics.Metrics
	reports refusals
}

// NewThrottler returns a Throttler. now, log and m may be nil (time.Now, no
// logging, no metrics).
func NewThrottler(store Store, p Policy, now func() time.Time, log *slog.Logger, m *metrics.Metrics) *Throttler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Throttler{store: store, p: p.withDefaults(), now: now, log: log, metrics: m}
}

// Policy returns the policy in force, defaults filled in.
func (t *Throttler) Policy() Policy { return t.p }

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
