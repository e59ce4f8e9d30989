// Package dbtest holds the test helpers that need a database, shared by the
// tests of several packages. It builds on storage/storagetest, which finds a
// PostgreSQL server and creates a fresh database per test; it is imported
// only by _test.go files, never by the tests of verify.
package dbtest

import (
	"testing"

	"github.com/keyward/keyward/storage/storagetest"
)

// ForEachBackend runs f in a subtest per database kind (SQLite, Postgres)
// with the address of a fresh, unmigrated database of that kind; f may open
// several handles on it (replicas).
func ForEachBackend(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Helper()
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) { f(t, b.DSN(t)) })
	}
}
