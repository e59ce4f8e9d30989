package idptest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/storage"
)

// TestKeys is a minimal idp.KeySource over one RSA-2048 key, kid = its
// thumbprint, without the optional PublicKeys method: it shows that access
// tokens are also checked against the parsed JWKS document. The harness
// otherwise uses a real keys.Manager.
type TestKeys struct {
	key     *rsa.PrivateKey
	kid     string
	set     jose.JSONWebKeySet
	doc     []byte
	mu      sync.Mutex
	signers map[string]jose.Signer
}

// SharedTestKeys is one TestKeys for the whole test binary.
var SharedTestKeys = sync.OnceValue(func() *TestKeys {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	pub := jose.JSONWebKey{Key: &k.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
	doc, _ := json.Marshal(set)
	return &TestKeys{key: k, kid: pub.KeyID, set: set, doc: doc, signers: map[string]jose.Signer{}}
})

// Sign signs payload as a JWS of type typ.
func (k *TestKeys) Sign(typ string, payload []byte) (string, error) {
	k.mu.Lock()
	s, ok := k.signers[typ]
	if !ok {
		var err error
		s, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			k.mu.Unlock()
			return "", err
		}
		k.signers[typ] = s
	}
	k.mu.Unlock()
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// JWKS is the key set document and its ETag.
func (k *TestKeys) JWKS() ([]byte, string) { return k.doc, `"test"` }

// Ready is always nil.
func (k *TestKeys) Ready() error { return nil }

// CountingStore counts user lookups by name, to show that some requests
// never reach one (TE-06).
type CountingStore struct {
	*storage.DB
	ByName atomic.Int64
}

// UserByUsername counts, then looks up.
func (c *CountingStore) UserByUsername(ctx context.Context, name string) (storage.User, error) {
	c.ByName.Add(1)
	return c.DB.UserByUsername(ctx, name)
}

// CountingHasher counts verifications, real and dummy (TE-21, AV-02).
type CountingHasher struct {
	oauth.PasswordHasher
	Verifies atomic.Int64
}

// Verify counts, then verifies.
func (h *CountingHasher) Verify(ctx context.Context, pw, enc string) (bool, bool, error) {
	h.Verifies.Add(1)
	return h.PasswordHasher.Verify(ctx, pw, enc)
}

// CheckStored checks a hash to be imported with the wrapped hasher
// (*password.Hasher), so the admin import route is served.
func (h *CountingHasher) CheckStored(enc string) error {
	hc, ok := h.PasswordHasher.(interface{ CheckStored(string) error })
	if !ok {
		return errors.New("the wrapped hasher cannot check stored hashes")
	}
	return hc.CheckStored(enc)
}

// VerifyDummy counts, then runs the dummy verification.
func (h *CountingHasher) VerifyDummy(ctx context.Context, pw string) error {
	h.Verifies.Add(1)
	return h.PasswordHasher.VerifyDummy(ctx, pw)
}

// TestParams keep argon2id cheap in tests; benchmarks use the defaults.
var TestParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestCeiling keeps the floor on failed checks (password.Ceiling) near a millisecond;
// TestLoginTiming uses the defaults.
var TestCeiling = password.Ceiling{Memory: 64, Time: 1, BcryptCost: 4}

// OffsetClock is an adjustable offset from the real time, so real clients
// (go-oidc checks exp against time.Now) and fake time agree.
type OffsetClock struct{ offset atomic.Int64 }

// Now is the real time plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Reset sets the clock back to the real time.
func (c *OffsetClock) Reset() { c.offset.Store(0) }

// Advance moves the clock by d.
func (c *OffsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// PrivateKey is the RSA key behind k, for benchmarks that sign with it directly.
func (k *TestKeys) PrivateKey() *rsa.PrivateKey { return k.key }
