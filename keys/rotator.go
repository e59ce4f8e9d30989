package keys

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keyward/keyward/storage"
)

// Store is the part of storage that rotation needs.
type Store interface {
	KeySet(ctx context.Context) (storage.KeySet, error)
	KeySetVersion(ctx context.Context) (int64, error)
	UpdateKeySet(ctx context.Context, update func(storage.KeySet) (storage.KeySet, error)) error
}

// Rotator runs the changes an operator asks for (Rotate, Revoke) on the stored
// key set. It holds no state of its own: each call decides on what the
// store holds inside Store.UpdateKeySet. Manager uses one for its schedule.
type Rotator struct {
	store Store
	kek   []byte
	p     Policy
	now   func() time.Time
}

// NewRotator returns a Rotator that seals new keys under kek. A nil now means
// time.Now.
func NewRotator(store Store, kek []byte, p Policy, now func() time.Time) (*Rotator, error) {
	p, err := p.WithDefaults()
	if err != nil {
		return nil, err
	}
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(kek))
	}
	if now == nil {
		now = time.Now
	}
	return &Rotator{store: store, kek: kek, p: p, now: now}, nil
}

// decision is a pure change to the key set: advance, promote or revoke with
// their other arguments bound.
type decision func(set storage.KeySet, now time.Time, newKey newKeyFunc) (storage.KeySet, bool, error)

// dryRun runs decide on set with placeholder keys, and reports the
// algorithm of each fresh key it asked for and whether it would change
// anything.
func dryRun(set storage.KeySet, now time.Time, decide decision) (need []string, changed bool) {
	_, changed, err := decide(set, now, func(alg string) (storage.Key, error) {
		need = append(need, alg)
		return storage.Key{KID: fmt.Sprint("dry-run-", len(need)), Alg: alg}, nil
	})
	return need, changed && err == nil
}

// update applies decide to the stored key set and returns the set it wrote
// (or found, when nothing changed). Fresh keys are generated before the
// transaction, from a dry run on an unlocked read, so RSA key generation
// never holds the key-set lock (on SQLite, the database's one write lock).
// Inside the transaction decide runs again on what the store holds; if that
// asks for more keys than were made, they are generated there.
//
// Every stored key must open under r.kek first: a replica with another KEK
// must never add keys the others cannot read.
func (r *Rotator) update(ctx context.Context, decide decision) (storage.KeySet, bool, error) {
	cur, err := r.store.KeySet(ctx)
	if err != nil {
		return storage.KeySet{}, false, err
	}
	need, _ := dryRun(cur, r.now(), decide)
	pool := make([]storage.Key, 0, len(need))
	for _, alg := range need {
		k, err := r.generate(alg)
		if err != nil {
			return storage.KeySet{}, false, err
		}
		pool = append(pool, k)
	}
	newKey := func(alg string) (storage.Key, error) {
		if i := slices.IndexFunc(pool, func(k storage.Key) bool { return k.Alg == alg }); i >= 0 {
			k := pool[i]
			pool = slices.Delete(pool, i, i+1)
			return k, nil
		}
		return r.generate(alg)
	}
	var (
		out     storage.KeySet
		changed bool
	)
	err = r.store.UpdateKeySet(ctx, func(set storage.KeySet) (storage.KeySet, error) {
		out, changed = set, false
		if err := checkKEK(set, r.kek); err != nil {
			return set, err
		}
		next, ch, err := decide(set, r.now(), newKey)
		if err != nil {
			return set, err
		}
		if !ch {
			return set, storage.ErrNoChange
		}
		out, changed = next, true
		return next, nil
	})
	if err != nil {
		return storage.KeySet{}, false, err
	}
	return out, changed, nil
}

// generate makes a fresh key for alg, of r's RSA key size.
func (r *Rotator) generate(alg string) (storage.Key, error) {
	p := r.p
	p.Algorithm = alg
	return generate(p, r.kek)
}

// checkKEK opens every stored private key under kek and reports the first
// that does not open (ErrWrongKEK).
func checkKEK(set storage.KeySet, kek []byte) error {
	for _, k := range set.Keys {
		pt, err := open(kek, k.KID, k.PrivateKey)
		if err != nil {
			return err
		}
		clear(pt)
	}
	return nil
}

// Rotate asks for a rotation as soon as it is safe. When the next key has
// been published long enough (the JWKS max-age and margin the servers record
// in the key set, else r's policy), the active key retires now, the next key
// signs and a fresh next key is published. Otherwise the rotation is written
// into the key set for the earliest safe moment (Rotation.Scheduled, At) and
// the servers' schedule (Manager.Run) carries it out then; a resource server
// with a cached JWKS never meets an unknown kid either way. With force it
// rotates now anyway (with no next key, to a fresh one): for when the active
// key must stop signing now but need not be withdrawn (use Revoke for a
// compromised key).
func (r *Rotator) Rotate(ctx context.Context, force bool) (Rotation, error) {
	var rot Rotation
	_, _, err := r.update(ctx, func(set storage.KeySet, now time.Time, newKey newKeyFunc) (storage.KeySet, bool, error) {
		out, rr, err := promote(set, now, r.p, force, newKey)
		rot = rr
		return out, err == nil, err
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate signing key: %w", err)
	}
	return rot, nil
}

// Revoke removes the key kid from the set at once (emergency revocation): it
// leaves the JWKS on every replica's next reload and no replica signs with it
// after that. A revoked active key is replaced by the next key immediately,
// published long enough or not; a fresh next key is published. An unknown
// kid gives ErrUnknownKey.
func (r *Rotator) Revoke(ctx context.Context, kid string) (Revocation, error) {
	var rev Revocation
	_, _, err := r.update(ctx, func(set storage.KeySet, now time.Time, newKey newKeyFunc) (storage.KeySet, bool, error) {
		out, rr, err := revoke(set, kid, now, r.p, newKey)
		rev = rr
		return out, err == nil, err
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke signing key: %w", err)
	}
	return rev, nil
}

// KeyInfo describes one key of the set, without its key material, times in
// UTC. Its JSON is the one shape of a key in the admin API
// (GET /admin/v1/keys) and in `keyward keys list --output json`.
type KeyInfo struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"` // next, active or retired
	Alg         string    `json:"alg"`
	CreatedAt   time.Time `json:"created_at"`            // first published
	ActivatesAt time.Time `json:"activates_at,omitzero"` // started, or is planned to start, signing
	RetiresAt   time.Time `json:"retires_at,omitzero"`   // stopped, or is planned to stop, signing
	ExpiresAt   time.Time `json:"expires_at,omitzero"`   // leaves, or is planned to leave, the JWKS
}

// infos describes set oldest first; keys made together (an active key and
// its next key) in the order they sign.
func infos(set storage.KeySet) []KeyInfo {
	out := make([]KeyInfo, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, KeyInfo{
			KID: k.KID, State: k.State, Alg: k.Alg, CreatedAt: k.CreatedAt.UTC(),
			ActivatesAt: k.ActivatesAt.UTC(), RetiresAt: k.RetiresAt.UTC(), ExpiresAt: k.ExpiresAt.UTC(),
		})
	}
	order := map[string]int{storage.KeyRetired: 0, storage.KeyActive: 1, storage.KeyNext: 2}
	slices.SortStableFunc(out, func(x, y KeyInfo) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(order[x.State], order[y.State]))
	})
	return out
}

// List returns the stored keys, oldest first. It needs no key-encryption key.
func List(ctx context.Context, store Store) ([]KeyInfo, error) {
	set, err := store.KeySet(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return infos(set), nil
}

// Rewrap re-encrypts every stored private key from oldKEK to newKEK in one
// transaction and returns how many it re-encrypted. If any key does not open
// under oldKEK nothing is written (ErrWrongKEK). Replicas running with the
// old KEK keep signing with the key they hold but cannot load a new one:
// restart them with the new KEK before the next rotation.
func Rewrap(ctx context.Context, store Store, oldKEK, newKEK []byte) (int, error) {
	if len(newKEK) != KEKSize {
		return 0, fmt.Errorf("rewrap signing keys: new key-encryption key must be %d bytes, got %d", KEKSize, len(newKEK))
	}
	n := 0
	err := store.UpdateKeySet(ctx, func(set storage.KeySet) (storage.KeySet, error) {
		n = 0
		for i, k := range set.Keys {
			pt, err := open(oldKEK, k.KID, k.PrivateKey)
			if err != nil {
				return set, err
			}
			sealed, err := seal(newKEK, k.KID, pt)
			clear(pt)
			if err != nil {
				return set, err
			}
			set.Keys[i].PrivateKey = sealed
			n++
		}
		if n == 0 {
			return set, storage.ErrNoChange
		}
		return set, nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrap signing keys: %w", err)
	}
	return n, nil
}
