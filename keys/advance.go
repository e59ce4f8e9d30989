package keys

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyward/keyward/storage"
)

// ErrUnknownKey is returned when a kid is not in the key set.
var ErrUnknownKey = errors.New("no such signing key")

// newKeyFunc makes a fresh key for alg (its state and times are left to the
// caller).
type newKeyFunc = func(alg string) (storage.Key, error)

// advance decides what the key set becomes at now (next → active → retired →
// removed). It does no I/O beyond calling newKey for a fresh key's material,
// so tests drive it with plain values; Manager runs it inside UpdateKeySet.
// The result has exactly one active and one next key. The rules:
//
//   - a retired key is removed once now reaches its ExpiresAt, or RetiresAt +
//     p.retention() if the policy now asks for longer;
//   - with no active key, the next key (or else a fresh one) becomes active at
//     once: a gap in signing is worse than an early key;
//   - the active key is replaced when its RetiresAt has come and the next key
//     may sign (timing.signsFrom: published for the recorded JWKS max-age plus
//     margin, and not before the floor); until both hold it keeps signing. A
//     rotation an operator asked for (promote) brings RetiresAt forward to
//     that moment, so this rule carries it out;
//   - with no next key, a fresh one is published, planned to activate at the
//     later of the moment it may sign and the active key's RetiresAt;
//   - algorithm migration: a next key of another algorithm than the one the
//     key set records (algorithmOf) is replaced by a fresh key of that
//     algorithm, whose publication wait starts anew; an active key of
//     another algorithm retires as soon as a next key of the recorded one
//     may sign, without waiting for its RetiresAt.
func advance(set storage.KeySet, now time.Time, p Policy, newKey newKeyFunc) (storage.KeySet, bool, error) {
	out := set
	out.Keys = slices.Clone(set.Keys)
	tm := timingOf(set, p)
	changed := false
	out.Keys = slices.DeleteFunc(out.Keys, func(k storage.Key) bool {
		gone := k.State == storage.KeyRetired && expired(k, now, p)
		changed = changed || gone
		return gone
	})
	active, next, err := find(out.Keys)
	if err != nil {
		return set, false, err
	}
	alg := algorithmOf(set, p)
	if next >= 0 && out.Keys[next].Alg != alg {
		// Migration: withdraw the next key of the old algorithm; one of
		// the new is published below. It never signed, so it may go.
		out.Keys = slices.Delete(out.Keys, next, next+1)
		changed = true
		active, next, _ = find(out.Keys)
	}
	switch {
	case active < 0 && next >= 0:
		activate(&out.Keys[next], now, p)
		next = -1
		changed = true
	case active < 0:
		k, err := newKey(alg)
		if err != nil {
			return set, false, err
		}
		k.CreatedAt = storage.At(now)
		activate(&k, now, p)
		out.Keys = append(out.Keys, k)
		changed = true
	case next >= 0 && !now.Before(tm.signsFrom(out.Keys[next])) &&
		(!now.Before(out.Keys[active].RetiresAt.Time) || out.Keys[active].Alg != alg):
		retire(&out.Keys[active], now, p)
		activate(&out.Keys[next], now, p)
		next = -1
		changed = true
	}
	if next < 0 {
		k, err := newKey(alg)
		if err != nil {
			return set, false, err
		}
		a, _, _ := find(out.Keys)
		if out.Keys[a].Alg != alg {
			// Migrating: the new key signs once it is safe, and the plan
			// (keys list) shows the old one retiring then.
			plan(&k, now, time.Time{}, tm, p)
			schedule(&out.Keys[a], &k, k.ActivatesAt.Time, p)
		} else {
			plan(&k, now, out.Keys[a].RetiresAt.Time, tm, p)
		}
		out.Keys = append(out.Keys, k)
		changed = true
	}
	if !changed {
		return set, false, nil
	}
	return out, true, nil
}

// Rotation reports what a manual rotation did, or will do when the servers
// carry it out.
type Rotation struct {
	Retired   string    // kid that stops signing
	Activated string    // kid that signs after it
	Next      string    // kid published to sign after Activated; "" while Scheduled
	Forced    bool      // Activated signs before it was published long enough
	Scheduled bool      // the promotion waits until At; the servers' schedule carries it out
	At        time.Time // when Activated signs: now, or the earliest safe moment
}

// promote rotates as soon as it is safe: the active key retires and the next
// key signs, at once if the next key may sign now (timing.signsFrom), else at
// the moment it may. A rotation for later is written into the key set as the
// active key's RetiresAt and the next key's ActivatesAt, which advance, run
// by every server's schedule, honours; asking again changes nothing. With
// force it rotates now whatever the next key's age (with no next key, to a
// fresh one): a resource server with a cached JWKS may meet an unknown kid.
func promote(set storage.KeySet, now time.Time, p Policy, force bool, newKey newKeyFunc) (storage.KeySet, Rotation, error) {
	r := Rotation{At: now}
	keys := slices.Clone(set.Keys)
	active, next, err := find(keys)
	if err != nil {
		return set, r, err
	}
	if active < 0 {
		// Nothing signs: advance activates a key, which is what was asked.
		out, _, err := advance(set, now, p, newKey)
		if err != nil {
			return set, r, err
		}
		r.Activated, r.Next = kidsOf(out.Keys)
		return out, r, nil
	}
	tm := timingOf(set, p)
	if !force {
		if next < 0 {
			k, err := newKey(algorithmOf(set, p))
			if err != nil {
				return set, r, err
			}
			plan(&k, now, keys[active].RetiresAt.Time, tm, p)
			keys = append(keys, k)
			next = len(keys) - 1
		}
		if at := tm.signsFrom(keys[next]); now.Before(at) {
			schedule(&keys[active], &keys[next], at, p)
			out := set
			out.Keys = keys
			return out, Rotation{Retired: keys[active].KID, Activated: keys[next].KID, Scheduled: true, At: at}, nil
		}
	}
	r.Retired = keys[active].KID
	r.Forced = next < 0 || now.Before(tm.signsFrom(keys[next]))
	retire(&keys[active], now, p)
	if next >= 0 {
		activate(&keys[next], now, p)
	} else {
		k, err := newKey(algorithmOf(set, p))
		if err != nil {
			return set, r, err
		}
		k.CreatedAt = storage.At(now)
		activate(&k, now, p)
		keys = append(keys, k)
	}
	in := set
	in.Keys = keys
	out, _, err := advance(in, now, p, newKey)
	if err != nil {
		return set, r, err
	}
	r.Activated, r.Next = kidsOf(out.Keys)
	return out, r, nil
}

// Revocation reports what an emergency revocation did.
type Revocation struct {
	KID       string // the key removed
	State     string // the state it was in
	Active    string // kid that signs afterwards
	Activated string // Active, if the revoked key was active (so Active is new)
	Next      string // kid of the next key afterwards
}

// revoke removes kid from the set at once. A revoked active key is replaced
// immediately by the next key (or, without one, a fresh key) even though it
// may not have been published for long: with the old key compromised, some
// resource servers refetching the JWKS is the lesser harm. A revoked next key
// is replaced by a fresh next key, whose publication wait starts anew.
func revoke(set storage.KeySet, kid string, now time.Time, p Policy, newKey newKeyFunc) (storage.KeySet, Revocation, error) {
	r := Revocation{KID: kid}
	i := slices.IndexFunc(set.Keys, func(k storage.Key) bool { return k.KID == kid })
	if i < 0 {
		return set, r, fmt.Errorf("revoke %s: %w", kid, ErrUnknownKey)
	}
	r.State = set.Keys[i].State
	in := set
	in.Keys = slices.Delete(slices.Clone(set.Keys), i, i+1)
	// advance activates the next key (or a fresh one) when none is active,
	// and publishes a fresh next key when none is left.
	out, _, err := advance(in, now, p, newKey)
	if err != nil {
		return set, r, err
	}
	r.Active, r.Next = kidsOf(out.Keys)
	if r.State == storage.KeyActive {
		r.Activated = r.Active
	}
	return out, r, nil
}

// find returns the indexes of the active and the next key, -1 when absent.
func find(keys []storage.Key) (active, next int, err error) {
	active, next = -1, -1
	for i, k := range keys {
		switch k.State {
		case storage.KeyActive:
			if active >= 0 {
				return -1, -1, fmt.Errorf("key set has two active keys, %s and %s", keys[active].KID, k.KID)
			}
			active = i
		case storage.KeyNext:
			if next >= 0 {
				return -1, -1, fmt.Errorf("key set has two next keys, %s and %s", keys[next].KID, k.KID)
			}
			next = i
		case storage.KeyRetired:
		default:
			return -1, -1, fmt.Errorf("key %s has unknown state %q", k.KID, k.State)
		}
	}
	return active, next, nil
}

func kidsOf(keys []storage.Key) (active, next string) {
	a, n, _ := find(keys)
	if a >= 0 {
		active = keys[a].KID
	}
	if n >= 0 {
		next = keys[n].KID
	}
	return active, next
}

// timing says when a next key may sign. It takes the JWKS max-age and margin
// the key set records (what the servers publish with; see
// recordPublication), and p's only where nothing is recorded, so the CLI
// and every replica compute the same moment without repeating flags.
type timing struct {
	maxAge, margin time.Duration
	floor          time.Time // no next key signs before it
}

func timingOf(set storage.KeySet, p Policy) timing {
	pub := set.Publication
	t := timing{maxAge: p.JWKSMaxAge, margin: p.PublishMargin, floor: pub.Floor.Time}
	if pub.JWKSMaxAge > 0 {
		t.maxAge = pub.JWKSMaxAge
	}
	if pub.PublishMargin > 0 {
		t.margin = pub.PublishMargin
	}
	return t
}

// delay is how long a next key is published before it may sign.
func (t timing) delay() time.Duration { return t.maxAge + t.margin }

// signsFrom is the earliest moment the next key k may sign: once every copy
// of the JWKS cached before k appeared has expired.
func (t timing) signsFrom(k storage.Key) time.Time {
	at := k.CreatedAt.Add(t.delay())
	if t.floor.After(at) {
		at = t.floor
	}
	return at
}

// recordPublication makes the key set record the JWKS max-age and margin this
// server publishes with (p), and the algorithm it makes keys for. A starting
// server records its own, raising or lowering what is there: the operator
// changed the setting. A running server
// only raises: while replicas with different settings run side by side, the
// larger ones win within one round, since a resource server may hold a copy
// cached under the longest max-age any replica sends. Whenever the recorded
// delay goes down, the floor moves to now plus the old delay, so a copy
// cached under the old max-age (from this replica before its restart, or
// from a replica still running with it until it raises the record again,
// which PublishMargin's reload allowance covers) has expired before any
// next key signs. It does no I/O.
func recordPublication(set storage.KeySet, now time.Time, p Policy, starting bool) (storage.KeySet, bool) {
	old := set.Publication
	pub := old
	maxAge, margin := p.JWKSMaxAge.Truncate(time.Millisecond), p.PublishMargin.Truncate(time.Millisecond)
	if starting || maxAge > pub.JWKSMaxAge {
		pub.JWKSMaxAge = maxAge
	}
	if starting || margin > pub.PublishMargin {
		pub.PublishMargin = margin
	}
	// The algorithm: a starting server records its own, so the newest
	// decision wins (and the CLI's flag no longer stands in); a running one
	// leaves the record, and follows it.
	if starting && p.Algorithm != "" {
		pub.Algorithm = p.Algorithm
	}
	if pub.JWKSMaxAge == old.JWKSMaxAge && pub.PublishMargin == old.PublishMargin && pub.Algorithm == old.Algorithm {
		return set, false
	}
	if oldDelay := old.JWKSMaxAge + old.PublishMargin; pub.JWKSMaxAge+pub.PublishMargin < oldDelay {
		if f := now.Add(oldDelay); f.After(pub.Floor.Time) {
			pub.Floor = storage.At(f)
		}
	}
	out := set
	out.Publication = pub
	return out, true
}

// algorithmOf is the algorithm new keys of set are made for: what the key
// set records (the setting of the server started last), else p's.
func algorithmOf(set storage.KeySet, p Policy) string {
	if set.Publication.Algorithm != "" {
		return set.Publication.Algorithm
	}
	if p.Algorithm != "" {
		return p.Algorithm
	}
	return AlgRS256
}

// expired reports whether a retired key may leave the JWKS: every token it
// signed has expired, by its recorded ExpiresAt and by the current policy.
func expired(k storage.Key, now time.Time, p Policy) bool {
	return !now.Before(k.ExpiresAt.Time) && !now.Before(k.RetiresAt.Add(p.retention()))
}

// plan makes k the next key, published at now.
func plan(k *storage.Key, now, activeRetires time.Time, tm timing, p Policy) {
	k.CreatedAt = storage.At(now)
	at := tm.signsFrom(*k)
	if activeRetires.After(at) {
		at = activeRetires
	}
	k.State = storage.KeyNext
	k.ActivatesAt = storage.At(at)
	k.RetiresAt = storage.At(at.Add(p.RotationPeriod))
	k.ExpiresAt = storage.At(at.Add(p.RotationPeriod + p.retention()))
}

// schedule plans the rotation from active to next for at: active signs
// until then, next from then.
func schedule(active, next *storage.Key, at time.Time, p Policy) {
	if active.RetiresAt.After(at) {
		active.RetiresAt = storage.At(at)
		active.ExpiresAt = storage.At(at.Add(p.retention()))
	}
	next.ActivatesAt = storage.At(at)
	next.RetiresAt = storage.At(at.Add(p.RotationPeriod))
	next.ExpiresAt = storage.At(at.Add(p.RotationPeriod + p.retention()))
}

func activate(k *storage.Key, now time.Time, p Policy) {
	k.State = storage.KeyActive
	k.ActivatesAt = storage.At(now)
	k.RetiresAt = storage.At(now.Add(p.RotationPeriod))
	k.ExpiresAt = storage.At(now.Add(p.RotationPeriod + p.retention()))
}

func retire(k *storage.Key, now time.Time, p Policy) {
	k.State = storage.KeyRetired
	k.RetiresAt = storage.At(now)
	k.ExpiresAt = storage.At(now.Add(p.retention()))
}
