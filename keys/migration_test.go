package keys

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// jwksAlgs maps each kid of a JWKS document to its alg.
func jwksAlgs(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var set struct{ Keys []struct{ Kid, Alg string } }
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range set.Keys {
		out[k.Kid] = k.Alg
	}
	return out
}

// TestAlgorithmMigration restarts a Manager with another algorithm, again
// and again, and acts as a resource server with a cached JWKS: a key of the
// new algorithm is published as the next key and signs only once it has
// been published for max-age + margin; the old key signs until then (no
// gap); both stay published through the transition; every token verifies
// against the JWKS until it expires; the old algorithm's keys leave the
// JWKS once their tokens have expired.
func TestAlgorithmMigration(t *testing.T) {
	tests := []struct {
		name  string
		steps []string // the algorithm of each start
	}{
		{"RS256 to ES256", []string{AlgRS256, AlgES256}},
		{"ES256 to EdDSA and back", []string{AlgES256, AlgEdDSA, AlgES256}},
		{"EdDSA to RS256", []string{AlgEdDSA, AlgRS256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storagetest.OpenSQLite(t)
			kek, c := NewKEK(), newClock()
			type signed struct {
				at       time.Time
				kid, tok string
			}
			var (
				firstSeen = map[string]time.Time{}
				tokens    []signed
				first     = true
			)
			delay := managerPolicy.JWKSMaxAge + managerPolicy.PublishMargin
			validFor := managerPolicy.TokenLifetime + managerPolicy.ClockSkew
			for i, alg := range tt.steps {
				p := managerPolicy
				p.Algorithm = alg
				before := ""
				if !first {
					before = jwksAlgs(t, mustJWKS(t, db, kek))[activeKIDOf(t, db)]
				}
				m, err := NewManager(t.Context(), db, kek, p, nil, c.Now)
				if err != nil {
					t.Fatal(err)
				}
				if got := mustKeySet(t, db).Publication.Algorithm; (got != "" || alg != AlgRS256) && got != alg {
					t.Fatalf("start %d recorded algorithm %q, want %q", i, got, alg)
				}
				migrated := time.Time{}
				// Run for two hours: the migration, then a scheduled
				// rotation or two, and the old keys' removal.
				for end := c.Now().Add(2 * time.Hour); c.Now().Before(end); c.Advance(30 * time.Second) {
					tick(t, m)
					now := c.Now()
					doc, _ := m.JWKS()
					algs := jwksAlgs(t, doc)
					for kid := range algs {
						if _, ok := firstSeen[kid]; !ok {
							firstSeen[kid] = now
						}
					}
					tok, err := m.Sign("at+jwt", []byte(accessToken))
					if err != nil {
						t.Fatalf("at %v: no key signs: %v", now.Sub(t0), err)
					}
					kid := mustKID(t, tok)
					if first && len(tokens) == 0 {
						firstSeen[kid] = now.Add(-delay) // the very first key has no JWKS before it
					}
					if age := now.Sub(firstSeen[kid]); age < delay {
						t.Fatalf("at %v %s (%s) signs, published only %v ago", now.Sub(t0), kid, algs[kid], age)
					}
					tokens = append(tokens, signed{now, kid, tok})
					if algs[kid] == alg && migrated.IsZero() {
						migrated = now
					}
					if migrated.IsZero() && before != "" && before != alg && !slices.Contains(mapValues(algs), alg) {
						t.Fatalf("at %v, migrating %s to %s, the JWKS %v has no %s key", now.Sub(t0), before, alg, algs, alg)
					}
					for _, s := range tokens {
						if now.Sub(s.at) > validFor {
							continue
						}
						if _, _, err := verifyToken(s.tok, doc); err != nil {
							t.Fatalf("at %v a token signed at %v by %s fails: %v", now.Sub(t0), s.at.Sub(t0), s.kid, err)
						}
					}
				}
				if migrated.IsZero() {
					t.Fatalf("start %d: no %s key ever signed", i, alg)
				}
				if !first && before != alg {
					// The migration waits for the publication delay, and
					// not for the old key's rotation period (1h).
					if took := migrated.Sub(firstSeenOfAlg(t, mustJWKS(t, db, kek), firstSeen, alg)); took > delay+time.Minute {
						t.Errorf("start %d: %s signed %v after its key appeared, want about %v", i, alg, took, delay)
					}
				}
				// Two hours on, only keys of the new algorithm are left.
				doc, _ := m.JWKS()
				for kid, a := range jwksAlgs(t, doc) {
					if a != alg {
						t.Fatalf("start %d: %s key %s still published after its tokens expired", i, a, kid)
					}
				}
				first = false
			}
		})
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// firstSeenOfAlg is when the oldest published key of alg first appeared.
func firstSeenOfAlg(t *testing.T, doc []byte, seen map[string]time.Time, alg string) time.Time {
	t.Helper()
	var at time.Time
	for kid, a := range jwksAlgs(t, doc) {
		if a == alg && (at.IsZero() || seen[kid].Before(at)) {
			at = seen[kid]
		}
	}
	return at
}

func mustJWKS(t *testing.T, db *storage.DB, kek []byte) []byte {
	t.Helper()
	s, problems := build(mustKeySet(t, db), nil, kek, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return s.jwks
}

func activeKIDOf(t *testing.T, db *storage.DB) string {
	t.Helper()
	a, _ := kidsOf(mustKeySet(t, db).Keys)
	return a
}

// TestReplicasDisagreeOnAlgorithm: during a rolling deploy from RS256 to
// ES256 an old replica keeps running beside a new one. The new one's
// setting, recorded at its start, wins: the old replica makes no RS256 key
// back, both sign with the ES256 key once it is safe, and the key set
// settles (no write per round).
func TestReplicasDisagreeOnAlgorithm(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek, c := NewKEK(), newClock()
		old := newManager(t, storagetest.Open(t, dsn), kek, c) // RS256
		db := storagetest.Open(t, dsn)
		c.Advance(time.Minute)
		p := managerPolicy
		p.Algorithm = AlgES256
		cur, err := NewManager(t.Context(), storagetest.Open(t, dsn), kek, p, nil, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		set := mustKeySet(t, db)
		if set.Publication.Algorithm != AlgES256 {
			t.Fatalf("recorded %q, want ES256", set.Publication.Algorithm)
		}
		_, nextIdx, _ := find(set.Keys)
		esNext := set.Keys[nextIdx]
		if esNext.Alg != AlgES256 {
			t.Fatalf("next key %s is %s, want ES256", esNext.KID, esNext.Alg)
		}
		// The plan shows the migration: the ES256 key signs once it has
		// been published for max-age + margin, and the RS256 key retires
		// then, not at the end of its period.
		a0, _, _ := find(set.Keys)
		safe := esNext.CreatedAt.Add(managerPolicy.JWKSMaxAge + managerPolicy.PublishMargin)
		if !esNext.ActivatesAt.Equal(safe) || !set.Keys[a0].RetiresAt.Equal(safe) {
			t.Fatalf("plan: ES256 key activates %v, RS256 key retires %v; want both at %v",
				esNext.ActivatesAt.Time, set.Keys[a0].RetiresAt.Time, safe)
		}
		var versions []int64
		for range 40 { // 20 minutes, both replicas each round
			c.Advance(30 * time.Second)
			tick(t, old)
			tick(t, cur)
			versions = append(versions, mustKeySet(t, db).Version)
		}
		set = mustKeySet(t, db)
		a, _, _ := find(set.Keys)
		if set.Keys[a].KID != esNext.KID {
			t.Fatalf("active key %s, want the ES256 key %s published at the second start", set.Keys[a].KID, esNext.KID)
		}
		for _, k := range set.Keys {
			if k.State == storage.KeyNext && k.Alg != AlgES256 {
				t.Fatalf("the old replica published a %s next key", k.Alg)
			}
		}
		// One write for the promotion (the new next key with it): the
		// replicas do not undo each other.
		if first, last := versions[0], versions[len(versions)-1]; last-first > 1 {
			t.Fatalf("key set versions %v: the replicas keep rewriting it", versions)
		}
		for _, m := range []*Manager{old, cur} {
			tok, err := m.Sign("at+jwt", []byte(accessToken))
			if err != nil {
				t.Fatal(err)
			}
			if mustKID(t, tok) != esNext.KID {
				t.Fatalf("a replica signs with %s, want %s", mustKID(t, tok), esNext.KID)
			}
		}
	})
}

// TestRotatorFollowsRecordedAlgorithm: the CLI's Rotator makes keys of the
// algorithm the servers recorded, whatever its own policy says, so a
// `keys rotate` run with another --key-algorithm does not start a
// migration the servers would undo.
func TestRotatorFollowsRecordedAlgorithm(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	kek, c := NewKEK(), newClock()
	newManager(t, db, kek, c) // RS256, recorded at start
	if got := mustKeySet(t, db).Publication.Algorithm; got != AlgRS256 {
		t.Fatalf("a starting RS256 server recorded %q", got)
	}
	r, err := NewRotator(db, kek, Policy{Algorithm: AlgES256}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(t.Context(), activeKIDOf(t, db)); err != nil {
		t.Fatal(err)
	}
	for _, k := range mustKeySet(t, db).Keys {
		if k.Alg != AlgRS256 {
			t.Fatalf("the Rotator made a %s key (%s, %s)", k.Alg, k.KID, k.State)
		}
	}
}
