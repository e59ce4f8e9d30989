// Package faults holds Keyward's fault tests under load (issue 17). It has
// no code of its own: its tests build the real keyward binary, run it as
// processes on loopback against PostgreSQL, drive a small mixed load
// (client_credentials, password, refresh-token rotation, self-service
// registration) and break something underneath, then check from the
// clients' side that nothing acknowledged was lost:
//
//   - TestPostgresRestartUnderLoad: the test's own PostgreSQL cluster
//     (initdb in a temporary directory, on a free port) is stopped with
//     pg_ctl stop -m fast and started again a few seconds later. While it
//     is down every answer is 503 with Retry-After and the RFC 6749 error
//     temporarily_unavailable; every kind of request succeeds again within
//     seconds, without restarting keyward; every rotation and registration
//     answered before is still there and usable.
//   - TestReplicasKilledDuringRotation: three replicas on one PostgreSQL,
//     keys rotating every minute with a 10 s JWKS max-age, one replica
//     SIGKILLed and restarted midway (about two and a half minutes; skipped
//     with -short). Every access token verifies against the JWKS a
//     resource server fetched up to max-age earlier; no refresh family
//     forks or is lost.
//   - TestSIGTERMUnderLoad: SIGTERM (graceful shutdown) under load. Every
//     request either gets a full answer or was never accepted, and those
//     without an answer had no effect.
//   - TestBackendsTerminatedDuringRotation: pg_terminate_backend of every
//     connection keyward holds to its database, in a loop, while refresh
//     tokens rotate. Each client sees success or a retryable error, never
//     a half-rotated family.
//
// The checker (workload_test.go) keeps, per refresh chain, every token
// answered 200: the last must rotate at the end and the one before it must
// then be refused; a retry of a just-rotated token must give the same
// successor (the reuse window), never a second one; an account whose
// registration was answered must sign in. Each test logs what it counted.
//
// Each test checks its own power with a negative control: the same
// scenario, shorter, against a keyward built with the faultinject tag and
// run with KEYWARD_FAULT_ACK_BEFORE_COMMIT=1, whose transactions report
// success before they commit (storage/faultinject.go). The control passes
// only if the checker finds lost writes. A normal build has no such path.
//
// PostgreSQL is required as storage's tests require it: without a server
// (or, for a private cluster, initdb and pg_ctl) the tests skip, unless
// KEYWARD_TEST_POSTGRES_REQUIRED=1. The tests reach the server only over
// HTTP and its command line; of the module they import only test helpers,
// bench/load's answer checks and keys' encoding of a key-encryption key.
package faults
