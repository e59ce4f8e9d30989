// Package storage persists Keyward's users, clients, signing keys, refresh-token
// families, account tokens (reset and verification links, only hashed),
// throttle counters and audit events in PostgreSQL (lib/pq) or SQLite
// (modernc.org/sqlite), both through sqlx, with embedded per-dialect migrations
// run by goose.
//
// Open returns the concrete *DB; consumers declare the small interfaces they
// need beside their own code. Read-modify-write operations take an update
// function so the store owns the transaction. storage imports nothing else of
// Keyward.
package storage
