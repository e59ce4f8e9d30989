package keys

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy says when keys rotate and how long they stay published. Zero fields
// take the defaults documented on each.
type Policy struct {
	// RotationPeriod is how long a key signs before the next one takes over:
	// default 24h, at least 1m. A rotation waits, with the active key still
	// signing, until the next key has been published long enough.
	RotationPeriod time.Duration
	// JWKSMaxAge is the Cache-Control max-age the JWKS is served with:
	// default 5m. It must equal what the HTTP handler sends. A Manager
	// records it (and PublishMargin) in the key set, and every decision
	// uses what is recorded, falling back to these only where nothing is
	// (see recordPublication): a Rotator in the CLI follows the servers.
	JWKSMaxAge time.Duration
	// PublishMargin is added to JWKSMaxAge before a next key may sign, and to
	// a retired key's publication after its tokens expire. It covers replicas
	// that have not reloaded yet and clocks that disagree: default 1m, at
	// least the reload interval (5s).
	PublishMargin time.Duration
	// TokenLifetime is the longest lifetime of any token signed with these
	// keys (access and ID tokens): default 1h.
	TokenLifetime time.Duration
	// ClockSkew is the leeway resource servers allow on exp: default 1m.
	ClockSkew time.Duration
	// KeySize is the RSA modulus size in bits: 2048 (default), 3072 or 4096.
	KeySize int
	// Algorithm is the JWS algorithm new keys are made for: AlgRS256
	// (default), AlgES256 (P-256) or AlgEdDSA (Ed25519). A Manager records
	// it in the key set when it starts, and every decision uses what is
	// recorded (see recordPublication), so the newest setting wins and
	// replicas with different settings never replace each other's keys.
	// Changing it migrates like a rotation: a key of the new algorithm is
	// published as the next key and signs once it is safe.
	Algorithm string
	// RSASigner, when set, makes the signer of each loaded RSA key (the
	// OpenSSL binding); nil means crypto/rsa. If the signer it returns is also an
	// io.Closer, the Manager closes it once the key no longer signs (a new
	// snapshot without it as active key is in place and no Sign still uses it).
	RSASigner func(priv *rsa.PrivateKey) (crypto.Signer, error)
}

// Policy defaults and limits.
const (
	DefaultRotationPeriod = 24 * time.Hour
	DefaultJWKSMaxAge     = 5 * time.Minute
	DefaultPublishMargin  = time.Minute
	DefaultTokenLifetime  = time.Hour
	DefaultClockSkew      = time.Minute
	DefaultKeySize        = 2048

	MinRotationPeriod = time.Minute

	// reloadInterval is the longest a Manager goes without checking the key
	// set's version; a change made by another replica reaches it this late.
	reloadInterval = 5 * time.Second
)

// WithDefaults fills zero fields with their defaults and checks the result.
func (p Policy) WithDefaults() (Policy, error) {
	def := func(d *time.Duration, v time.Duration, name string) error {
		switch {
		case *d < 0:
			return fmt.Errorf("key policy: %s must not be negative, got %v", name, *d)
		case *d == 0:
			*d = v
		}
		return nil
	}
	if err := errors.Join(
		def(&p.RotationPeriod, DefaultRotationPeriod, "rotation period"),
		def(&p.JWKSMaxAge, DefaultJWKSMaxAge, "JWKS max-age"),
		def(&p.PublishMargin, DefaultPublishMargin, "publish margin"),
		def(&p.TokenLifetime, DefaultTokenLifetime, "token lifetime"),
		def(&p.ClockSkew, DefaultClockSkew, "clock skew"),
	); err != nil {
		return Policy{}, err
	}
	if p.RotationPeriod < MinRotationPeriod {
		return Policy{}, fmt.Errorf("key policy: rotation period must be at least %v, got %v", MinRotationPeriod, p.RotationPeriod)
	}
	if p.PublishMargin < reloadInterval {
		return Policy{}, fmt.Errorf("key policy: publish margin must be at least the reload interval %v, got %v", reloadInterval, p.PublishMargin)
	}
	switch {
	case p.Algorithm == "":
		p.Algorithm = AlgRS256
	case !slices.Contains(Algorithms, p.Algorithm):
		return Policy{}, fmt.Errorf("key policy: algorithm must be one of %v, got %q", Algorithms, p.Algorithm)
	}
	switch p.KeySize {
	case 0:
		p.KeySize = DefaultKeySize
	case 2048, 3072, 4096:
	default:
		return Policy{}, fmt.Errorf("key policy: RSA key size must be 2048, 3072 or 4096 bits, got %d", p.KeySize)
	}
	return p, nil
}

// retention is how long a retired key stays published after it stopped
// signing: its last token's lifetime, the resource servers' leeway, and the
// margin for replicas that kept signing with it until they reloaded.
func (p Policy) retention() time.Duration { return p.TokenLifetime + p.ClockSkew + p.PublishMargin }

// pollInterval is how often a Manager checks for changes and due rotations.
func (p Policy) pollInterval() time.Duration { return min(p.RotationPeriod/10, reloadInterval) }
