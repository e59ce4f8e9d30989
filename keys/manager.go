package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage"
)

// ErrNotReady is returned by Sign and wrapped by Ready while no active key is
// loaded.
var ErrNotReady = errors.New("no active signing key loaded")

// Manager keeps one replica's view of the key set: it signs with the active
// key, serves the JWKS, follows changes other replicas make, and applies the
// rotation schedule. Its methods are safe for concurrent use; readers see an
// immutable snapshot swapped in whole on each change.
type Manager struct {
	rot   *Rotator
	store Store
	kek   []byte
	p     Policy
	log   *slog.Logger
	now   func() time.Time
	poll  time.Duration // how often Run checks; Policy.pollInterval

	snap     atomic.Pointer[snapshot]
	reloadMu sync.Mutex // one reload at a time, so an older read never replaces a newer one

	onRotate func(ctx context.Context, r Rotation) // set before Run; see OnRotate
}

// OnRotate registers f to hear of every scheduled rotation this replica
// performs (for the audit trail). Call it before Run.
func (m *Manager) OnRotate(f func(ctx context.Context, r Rotation)) { m.onRotate = f }

// NewManager loads the stored key set, creating one (an active and a next
// key) if there is none, and applies any transition that is due. Replicas
// starting together create exactly one set. It fails with ErrWrongKEK when
// kek does not decrypt the stored keys, and never replaces them. A nil log
// discards; a nil now means time.Now.
func NewManager(ctx context.Context, store Store, kek []byte, p Policy, log *slog.Logger, now func() time.Time) (*Manager, error) {
	rot, err := NewRotator(store, kek, p, now)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{rot: rot, store: store, kek: kek, p: rot.p, log: log, now: rot.now, poll: rot.p.pollInterval()}
	set, err := store.KeySet(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if err := checkKEK(set, kek); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if err := m.advance(ctx, set, true); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if err := m.Reload(ctx); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if err := m.Ready(); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	return m, nil
}

// Run follows the key set until ctx ends: every min(RotationPeriod/10, 5s) it
// reads the key set's version, reloads when another replica changed it, and
// applies the rotation schedule when a transition is due. Errors are logged
// and retried on the next round. It returns nil when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.tick(ctx); err != nil && ctx.Err() == nil {
				m.log.ErrorContext(ctx, "signing keys: check failed", "err", err)
			}
		}
	}
}

// tick is one round of Run.
func (m *Manager) tick(ctx context.Context) error {
	v, err := m.store.KeySetVersion(ctx)
	if err != nil {
		return err
	}
	if v != m.snap.Load().version {
		if err := m.Reload(ctx); err != nil {
			return err
		}
	}
	return m.advance(ctx, m.snap.Load().set, false)
}

// advance records this replica's JWKS max-age and margin in the key set
// (recordPublication; starting says whether it may lower them) and applies
// the schedule, including a rotation an operator asked for, when, judged on
// set, either is due; the transaction decides again on fresh data, so of
// several replicas due at once exactly one changes the set.
func (m *Manager) advance(ctx context.Context, set storage.KeySet, starting bool) error {
	decide := func(set storage.KeySet, now time.Time, newKey newKeyFunc) (storage.KeySet, bool, error) {
		set, recorded := recordPublication(set, now, m.p, starting)
		out, changed, err := advance(set, now, m.p, newKey)
		return out, recorded || changed, err
	}
	if _, due := dryRun(set, m.now(), decide); !due {
		return nil
	}
	before, _ := kidsOf(set.Keys)
	out, changed, err := m.rot.update(ctx, decide)
	if err != nil {
		return err
	}
	if changed {
		active, next := kidsOf(out.Keys)
		m.log.InfoContext(ctx, "signing keys advanced", "kid", active, "next_kid", next, "keys", len(out.Keys),
			"jwks_max_age", out.Publication.JWKSMaxAge, "publish_margin", out.Publication.PublishMargin)
		if m.onRotate != nil && before != "" && active != before {
			m.onRotate(ctx, Rotation{Retired: before, Activated: active, Next: next})
		}
	}
	if s := m.snap.Load(); changed || s == nil || out.Version != s.version {
		// Changed here, or another replica got there first.
		return m.Reload(ctx)
	}
	return nil
}

// Reload reads the key set and, if its version changed, swaps in a new
// snapshot. A key that fails to load is left out and logged; if it is the
// active key, Sign and Ready fail until a good one is loaded.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	set, err := m.store.KeySet(ctx)
	if err != nil {
		return err
	}
	prev := m.snap.Load()
	if prev != nil && prev.version == set.Version {
		return nil
	}
	s, problems := build(set, prev, m.kek, m.p.RSASigner)
	for _, err := range problems {
		m.log.ErrorContext(ctx, "signing keys: key not loaded", "err", err)
	}
	m.snap.Store(s)
	if prev != nil && prev.active != nil && prev.active != s.active {
		// The new snapshot is in place: Signs from now on cannot pick the
		// old key, and the last one still using it closes its signer.
		prev.active.release()
	}
	kid := ""
	if s.active != nil {
		kid = s.active.kid
	}
	m.log.InfoContext(ctx, "signing keys loaded", "kid", kid, "version", s.version, "keys", len(set.Keys))
	return nil
}

// Rotate rotates the stored key set now or schedules the rotation for the
// earliest safe moment (see Rotator.Rotate), and reloads; Run carries out a
// scheduled rotation.
func (m *Manager) Rotate(ctx context.Context, force bool) (Rotation, error) {
	r, err := m.rot.Rotate(ctx, force)
	if err != nil {
		return r, err
	}
	if r.Scheduled {
		m.log.InfoContext(ctx, "signing key rotation scheduled", "kid", r.Activated, "retired_kid", r.Retired, "at", r.At)
	} else {
		m.log.InfoContext(ctx, "signing key rotated", "kid", r.Activated, "retired_kid", r.Retired, "next_kid", r.Next, "forced", r.Forced)
	}
	return r, m.Reload(ctx)
}

// Revoke revokes kid (see Rotator.Revoke) and reloads, so this replica's
// JWKS drops it and it stops signing with it at once.
func (m *Manager) Revoke(ctx context.Context, kid string) (Revocation, error) {
	r, err := m.rot.Revoke(ctx, kid)
	if err != nil {
		return r, err
	}
	m.log.WarnContext(ctx, "signing key revoked", "kid", kid, "state", r.State, "activated_kid", r.Activated, "next_kid", r.Next)
	return r, m.Reload(ctx)
}

// Sign returns payload as a JWS compact serialization (RFC 7515 §7.1) signed
// with the active key using its algorithm (RS256, ES256 or EdDSA), with
// protected header {"alg":...,"kid":...,"typ":typ}: typ "at+jwt" for access
// tokens (RFC 9068 §2.1), "JWT" for ID tokens. A Sign that meets a key
// released by a concurrent reload retries on the new snapshot, so no
// signer is used after it was closed.
func (m *Manager) Sign(typ string, payload []byte) (string, error) {
	for {
		s := m.snap.Load()
		if s == nil || s.active == nil {
			return "", ErrNotReady
		}
		k := s.active
		if !k.acquire() {
			continue // released: a newer snapshot is already in place
		}
		tok, err := k.sign(typ, payload)
		k.done()
		return tok, err
	}
}

// JWKS returns the public JWK Set document (RFC 7517 §5) of the next, active
// and retired keys, with only the members kty, use, alg, kid, n and e, and
// its strong ETag (a quoted hash of the document). Both are built once per
// key-set change; callers must not modify doc.
func (m *Manager) JWKS() (doc []byte, etag string) {
	s := m.snap.Load()
	return s.jwks, s.etag
}

// PublicKeys returns the published keys for verifying tokens in process.
func (m *Manager) PublicKeys() jose.JSONWebKeySet {
	s := m.snap.Load()
	return jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), s.public.Keys...)}
}

// Ready returns nil once an active key is loaded, else why not.
func (m *Manager) Ready() error {
	s := m.snap.Load()
	if s == nil {
		return ErrNotReady
	}
	if s.active == nil {
		if s.err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, s.err)
		}
		return ErrNotReady
	}
	return nil
}

// Keys describes the loaded keys, oldest first, for metrics and the admin
// API (a key's age is now minus CreatedAt). It does no I/O.
func (m *Manager) Keys() []KeyInfo {
	return infos(m.snap.Load().set)
}
