package keys

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage/storagetest"
)

// fakeRSASigner stands in for the OpenSSL binding behind Policy.RSASigner:
// it signs with crypto/rsa and records its Close and any use after it.
type fakeRSASigner struct {
	priv      *rsa.PrivateKey
	closed    atomic.Bool
	closes    atomic.Int32
	signs     atomic.Int64
	lateSigns atomic.Int64 // Signs that began after Close
}

func (s *fakeRSASigner) Public() crypto.PublicKey { return s.priv.Public() }

func (s *fakeRSASigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.closed.Load() {
		s.lateSigns.Add(1)
		return nil, errors.New("signer used after Close")
	}
	s.signs.Add(1)
	sig, err := s.priv.Sign(r, digest, opts)
	if s.closed.Load() {
		s.lateSigns.Add(1) // closed while this Sign ran
	}
	return sig, err
}

func (s *fakeRSASigner) Close() error {
	s.closes.Add(1)
	s.closed.Store(true)
	return nil
}

// fakeSigners makes and remembers fakeRSASigners.
type fakeSigners struct {
	mu   sync.Mutex
	made []*fakeRSASigner
}

func (f *fakeSigners) make(priv *rsa.PrivateKey) (crypto.Signer, error) {
	s := &fakeRSASigner{priv: priv}
	f.mu.Lock()
	f.made = append(f.made, s)
	f.mu.Unlock()
	return s, nil
}

func (f *fakeSigners) all() []*fakeRSASigner {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeRSASigner(nil), f.made...)
}

// checkClosed asserts that every signer but the last was closed exactly
// once, the last (the active key's) not at all, and none signed after Close.
func (f *fakeSigners) checkClosed(t *testing.T) {
	t.Helper()
	made := f.all()
	for i, s := range made {
		want := int32(1)
		if i == len(made)-1 {
			want = 0
		}
		if got := s.closes.Load(); got != want {
			t.Errorf("signer %d of %d closed %d times, want %d", i+1, len(made), got, want)
		}
		if n := s.lateSigns.Load(); n != 0 {
			t.Errorf("signer %d used %d times after Close", i+1, n)
		}
	}
}

// TestRSASignerReleased: the signer Policy.RSASigner makes signs the
// tokens, and is closed exactly once when its key stops signing (a
// rotation, a revocation), never while it still signs.
func TestRSASignerReleased(t *testing.T) {
	var f fakeSigners
	p := managerPolicy
	p.RSASigner = f.make
	c := newClock()
	m, err := NewManager(t.Context(), storagetest.OpenSQLite(t), NewKEK(), p, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.all()) != 1 {
		t.Fatalf("%d signers made at start, want 1 (the active key's)", len(f.all()))
	}
	tok, err := m.Sign("at+jwt", []byte(accessToken))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := m.JWKS()
	if _, _, err := verifyToken(tok, doc); err != nil || f.all()[0].signs.Load() != 1 {
		t.Fatalf("token by the plugged signer: %v, %d signs", err, f.all()[0].signs.Load())
	}
	// A reload of the same version keeps the signer.
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := m.Revoke(t.Context(), activeKID(m)); err != nil {
		t.Fatal(err)
	}
	if len(f.all()) != 3 {
		t.Fatalf("%d signers made, want 3", len(f.all()))
	}
	f.checkClosed(t)
}

// TestRSASignerRace rotates while many goroutines sign: every token
// verifies, every replaced signer is closed exactly once, and none is used
// after its Close (a Sign that loses the race retries on the new
// snapshot). Run with -race.
func TestRSASignerRace(t *testing.T) {
	var f fakeSigners
	p := managerPolicy
	p.RSASigner = f.make
	m, err := NewManager(t.Context(), storagetest.OpenSQLite(t), NewKEK(), p, nil, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens []string
	)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				tok, err := m.Sign("at+jwt", []byte(accessToken))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
			}
		})
	}
	const rotations = 10
	for range rotations {
		time.Sleep(5 * time.Millisecond)
		if _, err := m.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if got := len(f.all()); got != rotations+1 {
		t.Fatalf("%d signers made, want %d", got, rotations+1)
	}
	f.checkClosed(t)
	// The clock stands still: every retired key is still published.
	set := m.PublicKeys()
	kids := map[string]bool{}
	for _, tok := range tokens {
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		kid := jws.Signatures[0].Header.KeyID
		found := set.Key(kid)
		if len(found) != 1 {
			t.Fatalf("kid %s not published", kid)
		}
		if _, err := jws.Verify(found[0]); err != nil {
			t.Fatalf("token by %s: %v", kid, err)
		}
		kids[kid] = true
	}
	t.Logf("%d tokens by %d keys", len(tokens), len(kids))
}
