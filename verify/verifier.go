package verify

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// Verifier checks access tokens of one issuer for one audience. It is safe for
// concurrent use.
type Verifier struct {
	cfg    Config
	keys   *keyCache
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// KeySource supplies public keys to a Verifier built by NewWithKeys, for a process that
// holds the key set itself (the Keyward server validating its own tokens) and needs no
// HTTP. KeySet is called once by NewWithKeys, again when the copy is older than
// MinCacheAge, on an unknown kid (at most once per RefetchCooldown) and on Refresh.
// Private keys in the set are reduced to their public halves; keys that cannot be used
// are skipped as in a fetched JWKS.
type KeySource interface {
	KeySet(ctx context.Context) (jose.JSONWebKeySet, error)
}

// KeySourceFunc adapts a function to KeySource.
type KeySourceFunc func(ctx context.Context) (jose.JSONWebKeySet, error)

// KeySet calls f.
func (f KeySourceFunc) KeySet(ctx context.Context) (jose.JSONWebKeySet, error) { return f(ctx) }

// StaticKeys is a KeySource that always answers set.
func StaticKeys(set jose.JSONWebKeySet) KeySource {
	return KeySourceFunc(func(context.Context) (jose.JSONWebKeySet, error) { return set, nil })
}

// New returns a Verifier that takes keys from the issuer's JWKS: cfg.JWKSURL, or the
// jwks_uri discovered from cfg.Issuer. It fetches the JWKS once before returning and
// fails if discovery or that fetch fails. A background goroutine then refreshes the keys
// until ctx is cancelled or Close is called, so ctx should live as long as the Verifier
// (not a request or start-up timeout).
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	jwksURL := cfg.JWKSURL
	if jwksURL == "" {
		if jwksURL, err = discover(ctx, cfg.HTTPClient, cfg.Issuer); err != nil {
			return nil, err
		}
	}
	src := &remoteFetcher{client: cfg.HTTPClient, url: jwksURL, allowed: cfg.Algorithms}
	return start(ctx, cfg, src, true)
}

// NewWithKeys returns a Verifier that takes keys from src instead of HTTP. It loads the
// keys once before returning and fails if that fails. No goroutine is started; ctx
// bounds the later reloads, which happen on the Verify path.
func NewWithKeys(ctx context.Context, cfg Config, src KeySource) (*Verifier, error) {
	if src == nil {
		return nil, fmt.Errorf("verify config: key source is nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return start(ctx, cfg, &localFetcher{src: src, allowed: cfg.Algorithms}, false)
}

func start(ctx context.Context, cfg Config, src fetcher, background bool) (*Verifier, error) {
	lifetime, cancel := context.WithCancel(ctx)
	v := &Verifier{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	v.keys = newKeyCache(lifetime, &v.cfg, src)
	if err := v.keys.forceRefresh(ctx); err != nil {
		cancel()
		return nil, err
	}
	if !background {
		close(v.done)
		return v, nil
	}
	go func() {
		defer close(v.done)
		v.keys.run(lifetime)
	}()
	return v, nil
}

// Close stops the background refresh and waits for it. Verify keeps working with the
// keys cached so far, without refreshing them.
func (v *Verifier) Close() error {
	v.once.Do(v.cancel)
	<-v.done
	return nil
}

// Err returns the error of the last key refresh, or nil if it succeeded. While the
// issuer is unreachable Verify keeps using the cached keys, and Err says why they are
// not being renewed.
func (v *Verifier) Err() error { return v.keys.err() }

// Refresh fetches the key set now, ignoring the cooldown, and returns the fetch error.
// The Keyward server calls it after revoking a key it validates with locally.
func (v *Verifier) Refresh(ctx context.Context) error { return v.keys.forceRefresh(ctx) }

// Verify checks token and returns its claims. Checks run cheapest first and fail closed
// (RS-09): size and shape, strict base64url, strict header JSON (alg on the allowlist,
// typ at+jwt, no crit, no JWE parameters), the key for kid from the issuer's JWKS and its
// algorithm, the signature, and only then the claims (RFC 9068 §4). The error wraps one
// of the Err* sentinels and never contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := splitCompact(token, v.cfg.MaxTokenSize)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(c.header, v.cfg.Algorithms)
	if err != nil {
		return nil, err
	}
	payload, err := decodeSegment(c.payload, "payload")
	if err != nil {
		return nil, err
	}
	sig, err := decodeSegment(c.signature, "signature")
	if err != nil {
		return nil, err
	}
	k, err := v.keys.lookup(ctx, h.kid)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(k, h.alg, c.signingInput, sig); err != nil {
		return nil, err
	}
	return checkClaims(payload, &v.cfg, v.cfg.Now())
}

// localFetcher reads keys from a KeySource.
type localFetcher struct {
	src     KeySource
	allowed []string
}

func (f *localFetcher) fetch(ctx context.Context, _ bool) (fetched, error) {
	set, err := f.src.KeySet(ctx)
	if err != nil {
		return fetched{}, fmt.Errorf("load key set: %w", err)
	}
	return fetched{keys: keysFrom(set, f.allowed), maxAge: 0}, nil // reload after MinCacheAge
}
