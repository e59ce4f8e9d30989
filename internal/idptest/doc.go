// Package idptest is the shared harness of the HTTP-level tests of idp and
// its handler packages (idp/oauth, idp/admin, idp/account): it starts a real
// server on a loopback port over a fresh SQLite or PostgreSQL database
// (New), seeds the standard clients and users, and sends requests, gets
// tokens and checks RFC 6749 errors.
//
// It is imported only by _test.go files, of external test packages
// (package oauth_test, admin_test, ...): it imports idp, so idp's own
// in-package tests cannot use it. Helpers that need neither idp nor a
// database live in internal/testsupport.
package idptest
