// Package timingtest compares the times of kinds of request measured round by
// round (TE-21's login-timing tests in idp and cmd/keyward). It is imported
// only by tests.
package timingtest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Kinds holds what Compare reads: the name of each kind and, per kind, one
// time per round, every kind measured once in each round (ds[k][i] is kind
// k in round i). Kind 0 is the reference.
type Kinds struct {
	Names []string
	Times [][]time.Duration
}

// Compare returns, for every kind but the reference, the median over rounds
// of its time divided by the reference's time in the same round, less one,
// and the largest of those in absolute value. Pairing within a round cancels
// the machine's drift (other load, a floor that follows it), which moves the
// plain medians of kinds apart even when no kind differs systematically;
// the report also gives the plain medians and their spread, for the log.
func Compare(k Kinds) (report string, worst float64) {
	rounds := len(k.Times[0])
	var paired, plain []string
	medians := make([]time.Duration, len(k.Times))
	for j, ds := range k.Times {
		sorted := slices.Clone(ds)
		slices.Sort(sorted)
		medians[j] = sorted[len(sorted)/2]
		plain = append(plain, fmt.Sprintf("%s %v", k.Names[j], medians[j].Round(10*time.Microsecond)))
		if j == 0 {
			continue
		}
		rs := make([]float64, rounds)
		for i := range rounds {
			rs[i] = float64(ds[i]) / float64(k.Times[0][i])
		}
		slices.Sort(rs)
		d := rs[rounds/2] - 1
		if math.IsNaN(d) || math.Abs(d) > math.Abs(worst) {
			worst = d
		}
		paired = append(paired, fmt.Sprintf("%s %+.1f %%", k.Names[j], 100*d))
	}
	lo, hi := slices.Min(medians), slices.Max(medians)
	report = fmt.Sprintf("over %d rounds, paired against %s: %s; plain medians %s (spread %.1f %%)",
		rounds, k.Names[0], strings.Join(paired, ", "), strings.Join(plain, ", "), 100*float64(hi-lo)/float64(lo))
	return report, worst
}
