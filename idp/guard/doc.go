// Package guard is Keyward's brute-force protection: the login and
// client-authentication throttle (Throttler, Policy, Decision), whose
// counters live in the database so every replica sees the same ones, the
// per-IP registration limit, and the per-caller rate limits of
// introspection and revocation (Callers), which live in the process. It
// also gives the one answer to a password hasher that is full or refuses a
// password (HashingError), for every endpoint that hashes one.
//
// It decides and counts; it never writes a response. A refusal is an
// *web.Error the handler returns, and a reported refusal goes to the audit
// trail through Recorder. It reaches the database only through Store and
// never imports idp or a handler package.
package guard
