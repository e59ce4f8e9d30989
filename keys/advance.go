package keys

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyward/keyward/storage"
)

// ErrTooEarly is returned by a rotation that is not forced when the next key
// has not been published for JWKSMaxAge + PublishMargin yet.
var ErrTooEarly = errors.New("next key not published long enough")

// ErrUnknownKey is returned when a kid is not in the key set.
var ErrUnknownKey = errors.New("no such signing key")

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
//     has been published for p.publishDelay(); until both hold it keeps signing;
//   - with no next key, a fresh one is published, planned to activate at the
//     later of now + p.publishDelay() and the active key's RetiresAt.
func advance(set storage.KeySet, now time.Time, p Policy, newKey func() (storage.Key, error)) (storage.KeySet, bool, error) {
	out := storage.KeySet{Version: set.Version, Keys: slices.Clone(set.Keys)}
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
	switch {
	case active < 0 && next >= 0:
		activate(&out.Keys[next], now, p)
		next = -1
		changed = true
	case active < 0:
		k, err := newKey()
		if err != nil {
			return set, false, err
		}
		k.CreatedAt = storage.At(now)
		activate(&k, now, p)
		out.Keys = append(out.Keys, k)
		changed = true
	case next >= 0 && !now.Before(out.Keys[active].RetiresAt.Time) && published(out.Keys[next], now, p):
		retire(&out.Keys[active], now, p)
		activate(&out.Keys[next], now, p)
		next = -1
		changed = true
	}
	if next < 0 {
		k, err := newKey()
		if err != nil {
			return set, false, err
		}
		a, _, _ := find(out.Keys)
		plan(&k, now, out.Keys[a].RetiresAt.Time, p)
		out.Keys = append(out.Keys, k)
		changed = true
	}
	if !changed {
		return set, false, nil
	}
	return out, true, nil
}

// Rotation reports what a manual rotation did.
type Rotation struct {
	Retired   string // kid that stopped signing
	Activated string // kid that signs now
	Next      string // kid published to sign after it
	Forced    bool   // the next key signs before it was published long enough
}

// promote rotates now: the active key retires and the next key (with force and
// no next key, a fresh one) signs. Without force it refuses, with
// ErrTooEarly, while the next key has not been published for
// p.publishDelay(): a resource server with a cached JWKS would not know it.
func promote(set storage.KeySet, now time.Time, p Policy, force bool, newKey func() (storage.Key, error)) (storage.KeySet, Rotation, error) {
	var r Rotation
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
	if !force {
		if next < 0 {
			return set, r, fmt.Errorf("%w: no next key is published", ErrTooEarly)
		}
		if from := keys[next].CreatedAt.Add(p.publishDelay()); now.Before(from) {
			return set, r, fmt.Errorf("%w: next key %s may sign from %s", ErrTooEarly, keys[next].KID, from.Format(time.RFC3339))
		}
	}
	r.Retired = keys[active].KID
	r.Forced = next < 0 || !published(keys[next], now, p)
	retire(&keys[active], now, p)
	if next >= 0 {
		activate(&keys[next], now, p)
	} else {
		k, err := newKey()
		if err != nil {
			return set, r, err
		}
		k.CreatedAt = storage.At(now)
		activate(&k, now, p)
		keys = append(keys, k)
	}
	out, _, err := advance(storage.KeySet{Version: set.Version, Keys: keys}, now, p, newKey)
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
	Activated string // kid that signs now, if the revoked key was active
	Next      string // kid of the next key afterwards
}

// revoke removes kid from the set at once. A revoked active key is replaced
// immediately by the next key (or, without one, a fresh key) even though it
// may not have been published for long: with the old key compromised, some
// resource servers refetching the JWKS is the lesser harm. A revoked next key
// is replaced by a fresh next key, whose publication wait starts anew.
func revoke(set storage.KeySet, kid string, now time.Time, p Policy, newKey func() (storage.Key, error)) (storage.KeySet, Revocation, error) {
	r := Revocation{KID: kid}
	i := slices.IndexFunc(set.Keys, func(k storage.Key) bool { return k.KID == kid })
	if i < 0 {
		return set, r, fmt.Errorf("revoke %s: %w", kid, ErrUnknownKey)
	}
	r.State = set.Keys[i].State
	keys := slices.Delete(slices.Clone(set.Keys), i, i+1)
	// advance activates the next key (or a fresh one) when none is active,
	// and publishes a fresh next key when none is left.
	out, _, err := advance(storage.KeySet{Version: set.Version, Keys: keys}, now, p, newKey)
	if err != nil {
		return set, r, err
	}
	a, n := kidsOf(out.Keys)
	if r.State == storage.KeyActive {
		r.Activated = a
	}
	r.Next = n
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

// published reports whether a next key has been in the JWKS long enough
// that every cached copy of the JWKS holds it.
func published(k storage.Key, now time.Time, p Policy) bool {
	return !now.Before(k.CreatedAt.Add(p.publishDelay()))
}

// expired reports whether a retired key may leave the JWKS: every token it
// signed has expired, by its recorded ExpiresAt and by the current policy.
func expired(k storage.Key, now time.Time, p Policy) bool {
	return !now.Before(k.ExpiresAt.Time) && !now.Before(k.RetiresAt.Add(p.retention()))
}

// plan makes k the next key, published at now.
func plan(k *storage.Key, now, activeRetires time.Time, p Policy) {
	at := now.Add(p.publishDelay())
	if activeRetires.After(at) {
		at = activeRetires
	}
	k.State = storage.KeyNext
	k.CreatedAt = storage.At(now)
	k.ActivatesAt = storage.At(at)
	k.RetiresAt = storage.At(at.Add(p.RotationPeriod))
	k.ExpiresAt = storage.At(at.Add(p.RotationPeriod + p.retention()))
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
