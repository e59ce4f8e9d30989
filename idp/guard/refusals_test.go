package guard

import (
	"fmt"
	"testing"
	"time"
)

// TestRefusalsBounded: the memory that keeps refusals to one report per
// window stays bounded however many windows an attacker opens, and
// reports a window again only once it has been forgotten.
func TestRefusalsBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var r refusals
	d := Decision{Verdict: Throttle, Kind: KindIP, key: "i:x", until: now.Add(time.Minute)}
	if !r.first(d, now) || r.first(d, now) {
		t.Fatal("a window is reported once")
	}
	if next := (Decision{Verdict: Throttle, Kind: KindIP, key: "i:x", until: now.Add(2 * time.Minute)}); !r.first(next, now) {
		t.Fatal("the next window of the same limit is reported")
	}
	for i := range 10 * maxRefusals {
		r.first(Decision{Verdict: Throttle, Kind: KindClient, key: fmt.Sprintf("c:%d", i), until: now.Add(time.Minute)}, now)
		if len(r.seen) > maxRefusals {
			t.Fatalf("%d windows remembered, want at most %d", len(r.seen), maxRefusals)
		}
	}
}
