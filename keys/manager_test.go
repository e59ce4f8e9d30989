package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// clock is the injected time of these tests, starting at t0.
type clock = testsupport.Clock

func newClock() *clock { return testsupport.NewClock(t0) }

// managerPolicy rotates hourly; a next key waits 6m, a retired key stays
// 17m (15m tokens + 1m skew + 1m margin).
var managerPolicy = Policy{
	RotationPeriod: time.Hour, JWKSMaxAge: 5 * time.Minute, PublishMargin: time.Minute,
	TokenLifetime: 15 * time.Minute, ClockSkew: time.Minute,
}

func newManager(t *testing.T, db *storage.DB, kek []byte, c *clock) *Manager {
	t.Helper()
	m, err := NewManager(t.Context(), db, kek, managerPolicy, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tick(t *testing.T, m *Manager) {
	t.Helper()
	if err := m.tick(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// verifyToken checks tok against a JWKS document the way a resource server
// would, and returns its kid and payload.
func verifyToken(tok string, jwks []byte) (string, []byte, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return "", nil, err
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return "", nil, err
	}
	kid := jws.Signatures[0].Header.KeyID
	found := set.Key(kid)
	if len(found) != 1 {
		return kid, nil, fmt.Errorf("kid %s not in the JWKS", kid)
	}
	if alg := jws.Signatures[0].Header.Algorithm; alg != found[0].Algorithm {
		return kid, nil, fmt.Errorf("token alg %s, key %s is bound to %s", alg, kid, found[0].Algorithm)
	}
	payload, err := jws.Verify(found[0])
	return kid, payload, err
}

func jwksKIDs(doc []byte) []string {
	var set struct {
		Keys []struct{ Kid string }
	}
	json.Unmarshal(doc, &set)
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func activeKID(m *Manager) string {
	for _, k := range m.Keys() {
		if k.State == storage.KeyActive {
			return k.KID
		}
	}
	return ""
}

// accessToken is a typical RFC 9068 access-token payload, about 300 bytes.
const accessToken = `{"iss":"https://id.example.com","sub":"8d3f0c1e6a2b4c9d8e7f6a5b4c3d2e1f","aud":"https://api.example.com","exp":1772369100,"iat":1772368200,"jti":"0f8e7d6c5b4a39281706f5e4d3c2b1a0","client_id":"my-app","scope":"openid profile api:read api:write","auth_time":1772368190,"sid":"2b7c9e41a0d35f68"}`

func TestManagerFirstStart(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		m := newManager(t, db, NewKEK(), newClock())
		if err := m.Ready(); err != nil {
			t.Fatal(err)
		}
		states := map[string]int{}
		for _, k := range m.Keys() {
			states[k.State]++
		}
		if len(m.Keys()) != 2 || states[storage.KeyActive] != 1 || states[storage.KeyNext] != 1 {
			t.Fatalf("keys %+v, want one active and one next", m.Keys())
		}
		doc, _ := m.JWKS()
		if kids := jwksKIDs(doc); len(kids) != 2 || kids[0] != activeKID(m) {
			t.Fatalf("JWKS kids %v, want the active key first, then the next", kids)
		}
		if v, _ := db.KeySetVersion(t.Context()); v != 1 {
			t.Fatalf("version %d after first start, want 1", v)
		}
	})
}

func TestSign(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	m := newManager(t, db, NewKEK(), newClock())
	kid := activeKID(m)
	doc, _ := m.JWKS()
	for _, typ := range []string{"at+jwt", "JWT"} {
		t.Run(typ, func(t *testing.T) {
			tok, err := m.Sign(typ, []byte(accessToken))
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("not a compact JWS: %q", tok)
			}
			header, _ := base64.RawURLEncoding.DecodeString(parts[0])
			if want := `{"alg":"RS256","kid":"` + kid + `","typ":"` + typ + `"}`; string(header) != want {
				t.Fatalf("header %s, want %s", header, want)
			}
			gotKID, payload, err := verifyToken(tok, doc)
			if err != nil || gotKID != kid || string(payload) != accessToken {
				t.Fatalf("verify: kid %s, %v, payload %s", gotKID, err, payload)
			}
			// The in-process key set verifies it too.
			jws, _ := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
			pub := m.PublicKeys()
			if _, err := jws.Verify(pub.Key(kid)[0]); err != nil {
				t.Fatalf("verify with PublicKeys: %v", err)
			}
		})
	}
	if _, err := m.Sign("", []byte("{}")); err == nil {
		t.Fatal("signed without a typ")
	}
	for _, k := range m.PublicKeys().Keys {
		if !k.IsPublic() || k.Algorithm != "RS256" || k.Use != "sig" {
			t.Fatalf("PublicKeys entry %+v", k)
		}
	}
}

// TestJWKSPublicOnly checks the document's members (OIDC Discovery §3: no
// private or symmetric values; RFC 7518 §3.3: at least 2048 bits).
func TestJWKSPublicOnly(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	c := newClock()
	m := newManager(t, db, NewKEK(), c)
	c.Advance(10 * time.Minute)
	if _, err := m.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	doc, etag := m.JWKS()
	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 {
		t.Fatalf("%d keys, want active, next and retired", len(set.Keys))
	}
	for _, k := range set.Keys {
		if got := slices.Sorted(maps.Keys(k)); !slices.Equal(got, []string{"alg", "e", "kid", "kty", "n", "use"}) {
			t.Fatalf("members %v", got)
		}
		n, _ := base64.RawURLEncoding.DecodeString(k["n"])
		if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || len(n)*8 < 2048 {
			t.Fatalf("key %v", k)
		}
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 20 || strings.HasPrefix(etag, "W/") {
		t.Fatalf("etag %s is not a strong quoted tag", etag)
	}
}

func mustKID(t *testing.T, tok string) string {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func TestJWKSETag(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	kek, c := NewKEK(), newClock()
	m := newManager(t, db, kek, c)
	doc1, etag1 := m.JWKS()
	tick(t, m)
	if doc, etag := m.JWKS(); etag != etag1 || !bytes.Equal(doc, doc1) {
		t.Fatal("JWKS changed without a key-set change")
	}
	c.Advance(10 * time.Minute)
	if _, err := m.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	doc2, etag2 := m.JWKS()
	if etag2 == etag1 || bytes.Equal(doc2, doc1) {
		t.Fatal("rotation kept the ETag")
	}
	// A rewrap changes the stored set but not the published keys.
	kek2 := NewKEK()
	if _, err := Rewrap(t.Context(), db, kek, kek2); err != nil {
		t.Fatal(err)
	}
	tick(t, m)
	if _, etag := m.JWKS(); etag != etag2 {
		t.Fatal("a rewrap changed the ETag")
	}
	m = newManager(t, db, kek2, c)
	if _, etag := m.JWKS(); etag != etag2 {
		t.Fatal("another replica built another ETag for the same keys")
	}
	// The retired key leaves after 17m: the ETag changes again.
	c.Advance(18 * time.Minute)
	tick(t, m)
	if doc, etag := m.JWKS(); etag == etag2 || len(jwksKIDs(doc)) != 2 {
		t.Fatalf("after the retired key expired: %v, etag %s", jwksKIDs(doc), etag)
	}
}

// TestSignDuringRotation signs from several goroutines while keys rotate;
// run with -race.
func TestSignDuringRotation(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	c := newClock()
	m := newManager(t, db, NewKEK(), c)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				tok, err := m.Sign("at+jwt", []byte(accessToken))
				if err != nil {
					t.Error(err)
					return
				}
				doc, _ := m.JWKS()
				if !slices.Contains(jwksKIDs(doc), mustKID(t, tok)) {
					t.Error("signed with a key the JWKS of that moment lacks")
					return
				}
				_ = m.PublicKeys()
				_ = m.Ready()
			}
		})
	}
	for range 3 {
		if _, err := m.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}
