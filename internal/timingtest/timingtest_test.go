package timingtest

import (
	"math"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		times [][]time.Duration
		want  float64
	}{
		// The machine drifts from 100 to 200 ms; no kind differs in a round.
		{"drift alike", [][]time.Duration{{100 * ms, 200 * ms, 100 * ms, 200 * ms, 200 * ms}, {100 * ms, 200 * ms, 200 * ms, 100 * ms, 100 * ms}}, 0},
		{"slower by a fifth", [][]time.Duration{{100 * ms, 100 * ms, 200 * ms}, {120 * ms, 120 * ms, 240 * ms}}, 0.2},
		{"faster by a tenth, the worst of two", [][]time.Duration{{100 * ms, 100 * ms, 100 * ms}, {101 * ms, 101 * ms, 101 * ms}, {90 * ms, 90 * ms, 90 * ms}}, -0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := []string{"ref", "a", "b"}[:len(tt.times)]
			report, worst := Compare(Kinds{Names: names, Times: tt.times})
			if math.Abs(worst-tt.want) > 1e-9 {
				t.Fatalf("worst %v, want %v (%s)", worst, tt.want, report)
			}
		})
	}
}
