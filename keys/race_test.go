//go:build race

package keys

// raceEnabled is true under -race, which adds allocations of its own, so
// allocation counts are not asserted there.
const raceEnabled = true
