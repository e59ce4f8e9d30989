// Package testsupport holds the test helpers that several packages' tests
// share, so each lives once: a log buffer safe for concurrent writers, a
// movable clock, HTTP request helpers, a check for table tests' expected
// errors, building the keyward binary (with build tags when asked),
// starting a real keyward process and reading its log, and a private
// PostgreSQL cluster a test may stop and restart.
//
// It is imported only by _test.go files. It imports nothing of this module,
// so the tests of verify, which stands alone, may use it too. Helpers that
// need a database live in the subpackage dbtest, which builds on
// storage/storagetest.
package testsupport
