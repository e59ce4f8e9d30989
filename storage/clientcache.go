package storage

import (
	"sync"
	"time"
)

// DefaultClientCacheTTL is how long `keyward serve` lets Client serve a
// client it read from the database without reading it again
// (WithClientCacheTTL). It bounds how long a change made elsewhere (another
// replica, the keyward CLI, SQL by hand) takes to reach the server: a
// disabled or deleted client, a new secret, changed grants or scopes. A
// change made through the same DB (the server's admin API) takes effect
// at once.
const DefaultClientCacheTTL = time.Second

// WithClientCacheTTL makes Client keep each client it reads for d. Without
// it (and with d <= 0) Client reads the database every time, as the CLI
// and other tools want: only the server opens with a cache.
func WithClientCacheTTL(d time.Duration) Option {
	return func(o *openOptions) { o.clientTTL = d }
}

// clientCache holds clients recently read by id. Only clients that exist
// are kept, so its size is bounded by the clients registered, not by the
// ids requests send.
type clientCache struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.RWMutex
	m   map[string]cachedClient
	gen uint64 // bumped by every local change: a read that started before one stores nothing
}

type cachedClient struct {
	c       Client
	expires time.Time
}

func newClientCache(ttl time.Duration) *clientCache {
	return &clientCache{ttl: ttl, now: time.Now, m: map[string]cachedClient{}}
}

// get returns the cached client id and true while it is fresh.
func (cc *clientCache) get(id string) (Client, bool) {
	if cc.ttl <= 0 {
		return Client{}, false
	}
	cc.mu.RLock()
	e, ok := cc.m[id]
	cc.mu.RUnlock()
	if !ok || !cc.now().Before(e.expires) {
		return Client{}, false
	}
	return e.c, true
}

// generation is taken before a read, for put.
func (cc *clientCache) generation() uint64 {
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return cc.gen
}

// put keeps c, read when the generation was gen, unless a local change
// happened since: that read may predate the change.
func (cc *clientCache) put(c Client, gen uint64) {
	if cc.ttl <= 0 {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.gen != gen {
		return
	}
	cc.m[c.ID] = cachedClient{c: c, expires: cc.now().Add(cc.ttl)}
}

// forget drops id after a local change, and keeps any read already under
// way from storing what it read.
func (cc *clientCache) forget(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.gen++
	delete(cc.m, id)
}
