package keys

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

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
			for end := t0.Add(tt.run); c.Now().Before(end); c.Advance(step) {
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

// TestManualRotate: a rotation asked for before the next key was published
// long enough is scheduled, not refused, and the Manager's schedule carries
// it out at that moment; one asked for later happens at once; a forced one
// happens at once whatever the next key's age.
func TestManualRotate(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	c := newClock()
	m := newManager(t, db, NewKEK(), c)
	var heard []Rotation
	m.OnRotate(func(_ context.Context, r Rotation) { heard = append(heard, r) })
	first := activeKID(m)
	c.Advance(5 * time.Minute)
	r, err := m.Rotate(t.Context(), false)
	if err != nil {
		t.Fatalf("rotate 5m after publishing: %v", err)
	}
	if !r.Scheduled || r.Forced || r.Retired != first || !r.At.Equal(t0.Add(6*time.Minute)) || activeKID(m) != first {
		t.Fatalf("rotation %+v, active %s: want it scheduled for 6m after publishing", r, activeKID(m))
	}
	if again, err := m.Rotate(t.Context(), false); err != nil || again != r {
		t.Fatalf("asking again: %+v, %v; want %+v", again, err, r)
	}
	c.Advance(59 * time.Second)
	tick(t, m)
	if activeKID(m) != first || len(heard) != 0 {
		t.Fatalf("rotated 1s before the scheduled moment: active %s", activeKID(m))
	}
	c.Advance(time.Second)
	tick(t, m)
	if activeKID(m) != r.Activated || len(heard) != 1 || heard[0].Retired != first || heard[0].Activated != r.Activated {
		t.Fatalf("at the scheduled moment: active %s, heard %+v; want %s", activeKID(m), heard, r.Activated)
	}

	// The fresh next key is 0s old: forced, it signs now.
	r2, err := m.Rotate(t.Context(), true)
	if err != nil || !r2.Forced || r2.Scheduled || r2.Retired != r.Activated || activeKID(m) != r2.Activated {
		t.Fatalf("forced rotation %+v, %v", r2, err)
	}
	c.Advance(6 * time.Minute)
	r3, err := m.Rotate(t.Context(), false)
	if err != nil || r3.Scheduled || r3.Forced || r3.Retired != r2.Activated || activeKID(m) != r3.Activated || !r3.At.Equal(c.Now()) {
		t.Fatalf("rotation once the next key is published long enough: %+v, %v", r3, err)
	}
	list, err := List(t.Context(), db)
	if err != nil || len(list) != 5 {
		t.Fatalf("List: %v, %+v", err, list)
	}
	for _, k := range list {
		if k.CreatedAt.IsZero() || k.ActivatesAt.IsZero() || k.RetiresAt.IsZero() || k.ExpiresAt.IsZero() || k.Alg != "RS256" {
			t.Fatalf("listed %+v", k)
		}
	}
}

// TestRotatorFollowsRecordedPublication: a Rotator with the default policy
// (as the CLI has, 5m max-age) decides with the max-age and margin the
// server recorded (30s + 5s), not its own.
func TestRotatorFollowsRecordedPublication(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		kek, c := NewKEK(), newClock()
		p := managerPolicy
		p.JWKSMaxAge, p.PublishMargin = 30*time.Second, 5*time.Second
		m, err := NewManager(t.Context(), db, kek, p, nil, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		if pub := mustKeySet(t, db).Publication; pub.JWKSMaxAge != 30*time.Second || pub.PublishMargin != 5*time.Second {
			t.Fatalf("the server recorded %+v", pub)
		}
		cli, err := NewRotator(storagetest.Open(t, dsn), kek, Policy{}, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(20 * time.Second)
		r, err := cli.Rotate(t.Context(), false)
		if err != nil || !r.Scheduled || !r.At.Equal(t0.Add(35*time.Second)) {
			t.Fatalf("rotate 20s after start: %+v, %v; want it scheduled 35s after start", r, err)
		}
		c.Advance(15 * time.Second)
		tick(t, m)
		if activeKID(m) != r.Activated {
			t.Fatalf("the server did not carry out the scheduled rotation: active %s, want %s", activeKID(m), r.Activated)
		}
		c.Advance(35 * time.Second)
		r2, err := cli.Rotate(t.Context(), false)
		if err != nil || r2.Scheduled || r2.Forced || r2.Retired != r.Activated {
			t.Fatalf("rotate 35s after the next key appeared: %+v, %v; want it done now", r2, err)
		}
	})
}

func mustKeySet(t *testing.T, db *storage.DB) storage.KeySet {
	t.Helper()
	s, err := db.KeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
