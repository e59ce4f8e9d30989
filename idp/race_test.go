//go:build race

package idp_test

// raceEnabled is true under -race, whose detector allocates on its own
// account: allocation budgets are logged there, not asserted.
const raceEnabled = true
