// Package audit is Keyward's security audit trail: the event types (LG-01,
// LG-03), the Auditor that writes each event both as a structured log
// record and as an audit row (group-committed, never failing the request),
// and the retention that prunes old rows.
//
// It reaches the database only through Store and takes the request id and
// client IP from the request context (package web). It never imports idp
// or a handler package, and an Event has no field that could carry a
// password, token or secret.
package audit
