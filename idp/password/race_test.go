//go:build race

package password

// raceEnabled: the race detector slows the Go code of PBKDF2 and scrypt far more than
// argon2id's assembly, so their cost relative to the ceiling is not what it is in a
// normal build.
const raceEnabled = true
