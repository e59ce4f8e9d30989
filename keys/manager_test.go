package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// clock is the injected time of these tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// managerPolicy rotates hourly; a next key waits 6m, a retired key stays
// 17m (15m tokens + 1m skew + 1m margin).
var managerPolicy = Policy{
	RotationPeriod: time.Hour, JWKSMaxAge: 5 * time.Minute, PublishMargin: time.Minute,
	TokenLifetime: 15 * time.Minute, ClockSkew: time.Minute,
}

// backends runs fn against a fresh database of each kind; dsn lets a test
// open more handles (replicas) on the same database.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.DSN(t)) })
	}
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
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", nil, err
	}
	kid := jws.Signatures[0].Header.KeyID
	found := set.Key(kid)
	if len(found) != 1 {
		return kid, nil, fmt.Errorf("kid %s not in the JWKS", kid)
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
	backends(t, func(t *testing.T, dsn string) {
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

// TestReplicasFirstStart starts four replicas, each with its own handle, on
// one empty database at once: they create one key set and all sign with it.
func TestReplicasFirstStart(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		const n = 4
		kek, c := NewKEK(), newClock()
		dbs := make([]*storage.DB, n)
		for i := range dbs {
			dbs[i] = storagetest.Open(t, dsn)
		}
		ms := make([]*Manager, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { ms[i], errs[i] = NewManager(t.Context(), dbs[i], kek, managerPolicy, nil, c.Now) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if v, _ := dbs[0].KeySetVersion(t.Context()); v != 1 {
			t.Fatalf("version %d, want 1: the set was created more than once", v)
		}
		for i, m := range ms {
			if activeKID(m) != activeKID(ms[0]) || len(m.Keys()) != 2 {
				t.Fatalf("replica %d sees %+v, replica 0 %+v", i, m.Keys(), ms[0].Keys())
			}
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
	c.Add(10 * time.Minute)
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

// TestStoredRowsHoldNoPrivateKey reads the raw signing_keys rows (and, for
// SQLite, the database files) and looks for any form of the private keys.
func TestStoredRowsHoldNoPrivateKey(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		kek, c := NewKEK(), newClock()
		m := newManager(t, db, kek, c)
		c.Add(10 * time.Minute)
		if _, err := m.Rotate(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		rows, err := db.SQL().QueryxContext(t.Context(), `SELECT * FROM signing_keys`)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		nrows := 0
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range cols {
				if b, ok := v.([]byte); ok {
					raw.Write(b)
				} else {
					fmt.Fprint(&raw, v)
				}
				raw.WriteByte(0)
			}
			nrows++
		}
		rows.Close()
		if nrows != 3 {
			t.Fatalf("%d rows, want 3", nrows)
		}
		haystacks := map[string][]byte{"rows": raw.Bytes()}
		if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
			for _, f := range []string{path, path + "-wal"} {
				if b, err := os.ReadFile(f); err == nil {
					haystacks[filepath.Base(f)] = b
				}
			}
		}
		doc, _ := m.JWKS()
		haystacks["JWKS"] = doc

		needles := map[string][]byte{"PEM": []byte("PRIVATE KEY"), `"d":`: []byte(`"d":`), `"p":`: []byte(`"p":`)}
		set, _ := db.KeySet(t.Context())
		for _, k := range set.Keys {
			pub, err := parsePublic(k)
			if err != nil {
				t.Fatal(err)
			}
			priv, err := decrypt(k, pub, kek)
			if err != nil {
				t.Fatal(err)
			}
			pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
			pkcs1 := x509.MarshalPKCS1PrivateKey(priv)
			d := priv.D.Bytes()
			needles[k.KID+" PKCS#8 prefix"] = pkcs8[4:26] // version, rsaEncryption OID, NULL, OCTET STRING
			needles[k.KID+" PKCS#1 prefix"] = pkcs1[4:12] // version, modulus INTEGER header
			needles[k.KID+" d"] = d[:16]
			needles[k.KID+" p"] = priv.Primes[0].Bytes()[:16]
			needles[k.KID+" d base64url"] = []byte(base64.RawURLEncoding.EncodeToString(d)[:24])
			needles[k.KID+" d base64"] = []byte(base64.StdEncoding.EncodeToString(d)[:24])
			needles[k.KID+" d hex"] = []byte(hex.EncodeToString(d)[:32])
		}
		for hn, hay := range haystacks {
			for nn, needle := range needles {
				if bytes.Contains(hay, needle) {
					t.Errorf("%s contains %s", hn, nn)
				}
			}
		}
	})
}

func TestWrongKEK(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		c := newClock()
		m := newManager(t, db, NewKEK(), c)
		before, _ := db.KeySet(t.Context())
		c.Add(3 * time.Hour) // a rotation is due: it must not happen under the wrong key
		_, err := NewManager(t.Context(), db, NewKEK(), managerPolicy, nil, c.Now)
		if !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), "key-encryption key does not decrypt the stored signing keys") {
			t.Fatalf("NewManager with another KEK: %v", err)
		}
		rot, _ := NewRotator(db, NewKEK(), managerPolicy, c.Now)
		if _, err := rot.Rotate(t.Context(), true); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Rotate with another KEK: %v", err)
		}
		if _, err := rot.Revoke(t.Context(), activeKID(m)); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Revoke with another KEK: %v", err)
		}
		after, _ := db.KeySet(t.Context())
		if after.Version != before.Version || !slices.Equal(kidsOfSet(after), kidsOfSet(before)) {
			t.Fatalf("the key set changed under a wrong KEK: %v -> %v", kidsOfSet(before), kidsOfSet(after))
		}
	})
}

func kidsOfSet(s storage.KeySet) []string {
	var out []string
	for _, k := range s.Keys {
		out = append(out, k.KID+":"+k.State)
	}
	slices.Sort(out)
	return out
}

// jwksAt is what a Manager published at one instant.
type jwksAt struct {
	at   time.Time
	kids []string
}

// TestRotationKeepsCachedJWKSValid drives a Manager through several
// rotations with an injected clock and acts as a resource server that caches
// the JWKS for max-age: whichever JWKS it fetched within the last max-age,
// the kid signing now is in it; and a token stays verifiable by the current
// JWKS until it expires (lifetime + skew). With an hourly period the period
// sets the pace; with a one-minute period the publish delay (6m) does.
func TestRotationKeepsCachedJWKSValid(t *testing.T) {
	fast := managerPolicy
	fast.RotationPeriod = time.Minute
	tests := []struct {
		name        string
		p           Policy
		run         time.Duration
		wantActives int
		wantVersion int64 // 0: not checked
		maxKeys     int
	}{
		// 1 creation + 4 rotations + 4 removals of retired keys.
		{"hourly period", managerPolicy, 4*time.Hour + 30*time.Minute, 5, 9, 3},
		// Rotations every 6m; a retired key stays 17m, so up to 3 of them.
		{"period shorter than the publish delay", fast, time.Hour, 10, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storagetest.OpenSQLite(t)
			c := newClock()
			m, err := NewManager(t.Context(), db, NewKEK(), tt.p, nil, c.Now)
			if err != nil {
				t.Fatal(err)
			}
			p := m.p
			type signed struct {
				at  time.Time
				kid string
				tok string
			}
			var (
				history []jwksAt
				tokens  []signed
				actives []string
			)
			const step = 30 * time.Second
			for end := t0.Add(tt.run); c.Now().Before(end); c.Add(step) {
				tick(t, m)
				now := c.Now()
				doc, _ := m.JWKS()
				history = append(history, jwksAt{now, jwksKIDs(doc)})
				kid := activeKID(m)
				tok := ""
				if len(actives) == 0 || actives[len(actives)-1] != kid {
					actives = append(actives, kid)
					if tok, err = m.Sign("at+jwt", []byte(accessToken)); err != nil {
						t.Fatal(err)
					}
				}
				tokens = append(tokens, signed{now, kid, tok})
				// Every JWKS a resource server may still hold from the
				// last max-age names the signing kid.
				for _, h := range history {
					if now.Sub(h.at) <= p.JWKSMaxAge && !slices.Contains(h.kids, kid) {
						t.Fatalf("at %v %s signs, but the JWKS of %v (%v) lacks it", now.Sub(t0), kid, h.at.Sub(t0), h.kids)
					}
				}
				// Every token still valid (exp + skew ahead) verifies with
				// the JWKS of now.
				for _, s := range tokens {
					if now.Sub(s.at) > p.TokenLifetime+p.ClockSkew {
						continue
					}
					if !slices.Contains(jwksKIDs(doc), s.kid) {
						t.Fatalf("at %v the JWKS %v lacks %s, which signed a token at %v still valid", now.Sub(t0), jwksKIDs(doc), s.kid, s.at.Sub(t0))
					}
					if s.tok != "" {
						if _, _, err := verifyToken(s.tok, doc); err != nil {
							t.Fatalf("at %v a token signed at %v fails: %v", now.Sub(t0), s.at.Sub(t0), err)
						}
					}
				}
				if len(jwksKIDs(doc)) > tt.maxKeys {
					t.Fatalf("at %v the JWKS holds %v: retired keys are not removed", now.Sub(t0), jwksKIDs(doc))
				}
			}
			if len(actives) != tt.wantActives {
				t.Fatalf("%d active keys in turn, want %d", len(actives), tt.wantActives)
			}
			if v := m.snap.Load().version; tt.wantVersion != 0 && v != tt.wantVersion {
				t.Errorf("version %d, want %d: one write per transition", v, tt.wantVersion)
			}
		})
	}
}

// TestReplicasRotateOnce runs two Managers on separate handles to one
// database, ticking concurrently through three rotation periods: one key set,
// one write per transition, and both sign with the same key once each has
// reloaded.
func TestReplicasRotateOnce(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		a := newManager(t, storagetest.Open(t, dsn), kek, c)
		b := newManager(t, storagetest.Open(t, dsn), kek, c)
		rotations := 0
		prev := activeKID(a)
		for end := t0.Add(3*time.Hour + 30*time.Minute); c.Now().Before(end); c.Add(time.Minute) {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, m := range []*Manager{a, b} {
				wg.Go(func() { errs[i] = m.tick(t.Context()) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			tick(t, a) // the replica that lost the race reloads on its next round
			tick(t, b)
			ta, err := a.Sign("at+jwt", []byte(accessToken))
			if err != nil {
				t.Fatal(err)
			}
			tb, _ := b.Sign("at+jwt", []byte(accessToken))
			docA, _ := a.JWKS()
			kidA, _, errA := verifyToken(ta, docA)
			kidB, _, errB := verifyToken(tb, docA)
			if errA != nil || errB != nil || kidA != kidB {
				t.Fatalf("at %v replicas sign with %s and %s (%v, %v)", c.Now().Sub(t0), kidA, kidB, errA, errB)
			}
			if kidA != prev {
				rotations++
				prev = kidA
			}
			if _, etagB := b.JWKS(); func() string { _, e := a.JWKS(); return e }() != etagB {
				t.Fatalf("at %v replicas publish different JWKS", c.Now().Sub(t0))
			}
		}
		if rotations != 3 {
			t.Fatalf("%d rotations in 3h30m with a 1h period, want 3", rotations)
		}
		// 1 (creation) + 3 rotations + 3 removals of retired keys; a
		// transition done twice would show as extra versions.
		if v, _ := storagetest.Open(t, dsn).KeySetVersion(t.Context()); v != 7 {
			t.Fatalf("version %d, want 7: some transition was written twice", v)
		}
	})
}

func TestRevokeReachesReplicas(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		a := newManager(t, storagetest.Open(t, dsn), kek, c)
		b := newManager(t, storagetest.Open(t, dsn), kek, c)
		old := activeKID(a)
		oldTok, _ := b.Sign("at+jwt", []byte(accessToken))
		rev, err := a.Revoke(t.Context(), old)
		if err != nil {
			t.Fatal(err)
		}
		if rev.KID != old || rev.State != storage.KeyActive || rev.Activated == "" || rev.Activated == old || rev.Next == "" {
			t.Fatalf("revocation %+v", rev)
		}
		doc, _ := a.JWKS()
		if slices.Contains(jwksKIDs(doc), old) {
			t.Fatal("the revoking replica still publishes the revoked key")
		}
		if _, _, err := verifyToken(oldTok, doc); err == nil {
			t.Fatal("a token of the revoked key still verifies")
		}
		if tok, _ := a.Sign("at+jwt", []byte(accessToken)); mustKID(t, tok) != rev.Activated {
			t.Fatal("the revoking replica does not sign with the activated key")
		}
		tick(t, b)
		docB, _ := b.JWKS()
		if slices.Contains(jwksKIDs(docB), old) {
			t.Fatal("the other replica still publishes the revoked key after reloading")
		}
		if tok, _ := b.Sign("at+jwt", []byte(accessToken)); mustKID(t, tok) != rev.Activated {
			t.Fatal("the other replica still signs with the revoked key after reloading")
		}
		if _, err := a.Revoke(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("revoking twice: %v", err)
		}
	})
}

func mustKID(t *testing.T, tok string) string {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func TestManualRotate(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	c := newClock()
	m := newManager(t, db, NewKEK(), c)
	first := activeKID(m)
	c.Add(5 * time.Minute)
	if _, err := m.Rotate(t.Context(), false); !errors.Is(err, ErrTooEarly) {
		t.Fatalf("rotate 5m after publishing: %v, want ErrTooEarly", err)
	}
	c.Add(time.Minute)
	r, err := m.Rotate(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Retired != first || r.Forced || activeKID(m) != r.Activated {
		t.Fatalf("rotation %+v, active %s", r, activeKID(m))
	}
	r2, err := m.Rotate(t.Context(), true)
	if err != nil || !r2.Forced || r2.Retired != r.Activated || activeKID(m) != r2.Activated {
		t.Fatalf("forced rotation %+v, %v", r2, err)
	}
	list, err := List(t.Context(), db)
	if err != nil || len(list) != 4 {
		t.Fatalf("List: %v, %+v", err, list)
	}
	for _, k := range list {
		if k.CreatedAt.IsZero() || k.ActivatesAt.IsZero() || k.RetiresAt.IsZero() || k.ExpiresAt.IsZero() || k.Alg != "RS256" {
			t.Fatalf("listed %+v", k)
		}
	}
}

func TestRewrap(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		oldKEK, newKEK, c := NewKEK(), NewKEK(), newClock()
		running := newManager(t, db, oldKEK, c)
		_, etag := running.JWKS()
		if _, err := Rewrap(t.Context(), db, NewKEK(), newKEK); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("rewrap from a wrong KEK: %v", err)
		}
		if v, _ := db.KeySetVersion(t.Context()); v != 1 {
			t.Fatal("a failed rewrap wrote")
		}
		n, err := Rewrap(t.Context(), db, oldKEK, newKEK)
		if err != nil || n != 2 {
			t.Fatalf("Rewrap = %d, %v", n, err)
		}
		if _, err := NewManager(t.Context(), db, oldKEK, managerPolicy, nil, c.Now); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("old KEK after rewrap: %v", err)
		}
		m := newManager(t, db, newKEK, c)
		if activeKID(m) != activeKID(running) {
			t.Fatal("rewrap changed the active key")
		}
		// The replica still on the old KEK reloads, keeps its key and the
		// same JWKS (the published keys did not change).
		tick(t, running)
		if _, e := running.JWKS(); e != etag || running.Ready() != nil {
			t.Fatalf("after rewrap: etag %s (was %s), ready %v", e, etag, running.Ready())
		}
		if _, err := running.Sign("at+jwt", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		// It cannot load a key made after the rewrap: it stops signing
		// rather than sign with a key that is no longer active.
		c.Add(10 * time.Minute)
		if _, err := m.Rotate(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		tick(t, running)
		if err := running.Ready(); !errors.Is(err, ErrNotReady) || !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("old-KEK replica after rotation: ready %v", err)
		}
		if _, err := running.Sign("at+jwt", []byte("{}")); !errors.Is(err, ErrNotReady) {
			t.Fatalf("old-KEK replica signs: %v", err)
		}
	})
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
	c.Add(10 * time.Minute)
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
	c.Add(18 * time.Minute)
	tick(t, m)
	if doc, etag := m.JWKS(); etag == etag2 || len(jwksKIDs(doc)) != 2 {
		t.Fatalf("after the retired key expired: %v, etag %s", jwksKIDs(doc), etag)
	}
}

// TestRunFollowsOtherReplica runs the real loop (with a short interval) and
// has another replica revoke the active key.
func TestRunFollowsOtherReplica(t *testing.T) {
	dsn := storagetest.SQLiteDSN(t)
	kek, c := NewKEK(), newClock()
	a := newManager(t, storagetest.Open(t, dsn), kek, c)
	b := newManager(t, storagetest.Open(t, dsn), kek, c)
	a.poll = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	rev, err := b.Revoke(t.Context(), activeKID(b))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for activeKID(a) != rev.Activated {
		if time.Now().After(deadline) {
			t.Fatal("Run did not pick up the other replica's revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
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
