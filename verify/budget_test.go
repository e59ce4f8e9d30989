package verify_test

import (
	"testing"
)

// verifyAllocBudget is the allocation budget of one Verify of a valid
// RS256 access token with its key cached: a few above the 34 measured
// (BenchmarkVerify, docs/performance.md), so a change that allocates more
// per token fails here, in every go test run, whatever the machine's load.
// Lower it when a change allocates less.
const verifyAllocBudget = 36

// TestVerifyAllocations is the performance budget of the resource
// server's hot path counted in allocations, which a noisy machine cannot
// move as it moves timings. Under -race the detector allocates on its own
// account, so the count is logged, not asserted.
func TestVerifyAllocations(t *testing.T) {
	is := newIssuer(t)
	v := newVerifier(t, is, is.config(newClock()))
	tok := valid(t, is)
	ctx := t.Context()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("Verify: %v allocations per call (budget %d)", allocs, verifyAllocBudget)
	if allocs > verifyAllocBudget && !raceEnabled {
		t.Errorf("Verify allocates %v times per call, over its budget of %d", allocs, verifyAllocBudget)
	}
}
