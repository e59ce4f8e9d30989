package keys

import (
	"errors"
	"slices"
	"testing"
	"time"

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
