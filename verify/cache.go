package verify

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// fetched is what one key-set fetch produced.
type fetched struct {
	keys        keySet        // nil when notModified
	notModified bool          // 304: keep the cached keys
	maxAge      time.Duration // announced lifetime; negative when none was announced
}

// fetcher loads the issuer's key set: over HTTP (remoteFetcher) or from a KeySource.
type fetcher interface {
	fetch(ctx context.Context, noCache bool) (fetched, error)
}

// snapshot is the cached key set and when it must be refreshed, by Config.Now.
// A snapshot is never modified; the cache swaps in a new one.
type snapshot struct {
	keys    keySet
	expires time.Time
}

// keyCache holds the current snapshot and decides when to fetch. The warm path is an
// atomic load and a map lookup; fetches go through one singleflight call, so
// concurrent callers wait for the same fetch, and are spaced by RefetchCooldown.
type keyCache struct {
	cfg      *Config
	src      fetcher
	lifetime context.Context // fetches outlive the request that triggered them
	snap     atomic.Pointer[snapshot]
	group    singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time
	lastErr     error
}

func newKeyCache(lifetime context.Context, cfg *Config, src fetcher) *keyCache {
	c := &keyCache{cfg: cfg, src: src, lifetime: lifetime}
	c.snap.Store(&snapshot{})
	return c
}

// lookup returns the key for kid. A snapshot past its lifetime is refreshed first, so a
// key the issuer removed is gone at the latest after MaxCacheAge; an unknown kid
// triggers one refetch with Cache-Control: no-cache (OIDC Core §10.1.1). Both are
// subject to the cooldown, and a failed refresh leaves the cached keys in service.
func (c *keyCache) lookup(ctx context.Context, kid string) (*key, error) {
	s := c.snap.Load()
	if c.cfg.Now().After(s.expires) {
		c.refresh(ctx, false)
		s = c.snap.Load()
	}
	if k := s.keys[kid]; k != nil {
		return k, nil
	}
	c.refresh(ctx, true)
	if k := c.snap.Load().keys[kid]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("verify token: %w", ErrUnknownKey)
}

// refresh fetches the key set unless a fetch was attempted within the cooldown. Callers
// arriving during a fetch wait for it (or for ctx); the fetch itself runs under the
// cache's lifetime context so one caller giving up does not fail the others.
func (c *keyCache) refresh(ctx context.Context, noCache bool) {
	if !c.due(false) {
		return
	}
	ch := c.group.DoChan("jwks", func() (any, error) {
		if !c.due(true) { // a fetch finished between due and DoChan
			return nil, nil
		}
		return nil, c.load(c.lifetime, noCache)
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// forceRefresh fetches now, ignoring the cooldown, and returns the fetch error.
func (c *keyCache) forceRefresh(ctx context.Context) error {
	ch := c.group.DoChan("jwks", func() (any, error) {
		c.due(true)
		return nil, c.load(c.lifetime, true)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// due reports whether the cooldown since the last attempt has passed; with claim it also
// records a new attempt.
func (c *keyCache) due(claim bool) bool {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.cfg.RefetchCooldown {
		return false
	}
	if claim {
		c.lastAttempt = now
	}
	return true
}

// load runs one fetch and installs its result. A failure keeps the old snapshot and is
// recorded for Err and OnError.
func (c *keyCache) load(ctx context.Context, noCache bool) error {
	f, err := c.src.fetch(ctx, noCache)
	now := c.cfg.Now()
	if err != nil {
		err = fmt.Errorf("refresh keys: %w", err)
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		if c.cfg.OnError != nil {
			c.cfg.OnError(err)
		}
		return err
	}
	keys := f.keys
	if f.notModified {
		keys = c.snap.Load().keys
	}
	age := f.maxAge
	if age < 0 {
		age = defaultCacheAge
	}
	c.snap.Store(&snapshot{keys: keys, expires: now.Add(c.cfg.clampAge(age))})
	c.mu.Lock()
	c.lastErr = nil
	c.mu.Unlock()
	return nil
}

// err returns the error of the last fetch, nil when it succeeded.
func (c *keyCache) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// run refreshes in the background when the snapshot's lifetime ends, or a cooldown after
// a failed fetch, until ctx is done. Timers run on real time; lookup covers an injected
// clock that jumps ahead.
func (c *keyCache) run(ctx context.Context) {
	for {
		d := c.snap.Load().expires.Sub(c.cfg.Now())
		if d <= 0 || c.err() != nil {
			d = c.cfg.RefetchCooldown
		}
		t := time.NewTimer(max(d, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.refresh(ctx, false)
	}
}
