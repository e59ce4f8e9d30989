// Package admin serves the admin API, /admin/v1: an operator's tool
// manages users, clients, sessions and signing keys, and reads the audit
// trail. docs/admin.md and docs/openapi-admin.yaml describe it for callers.
//
// It owns the authorization of every admin request (a bearer token for
// Keyward itself, from client_credentials, with keyward:admin, of a client
// still registered for it: AD-01, AD-04, AD-11), the strict JSON and query
// decoding of its requests (IN-06, AC-A1), its one 404 (AC-A2), and the
// views of sessions, keys and audit rows. Users and clients are changed
// only through manage.Ops, the operations the CLI performs too, which
// record their audit events; the admin API records the rest (key rotation
// and revocation, a sign-out with nothing live) with the acting client.
//
// It gets what it needs of the server through small interfaces declared
// here and filled in by idp.New: Store (reads), TokenValidator (access
// token validation, which idp/oauth owns), KeyRotator (*keys.Manager),
// Auditor (*audit.Auditor). Its handlers are bound in idp.Server.Routes,
// the one place routes are listed, each wrapped in API.Authorize; errors
// reach the wire through web.WriteError only.
//
// It must not import idp (the assembly) nor another handler package
// (idp/oauth, idp/account), must not write to the database except through
// manage.Ops, must never set or show a password or a stored secret, and
// must not bind routes itself.
package admin
