// Package storagetest is the conformance suite every storage backend passes,
// and the helpers tests across Keyward use to open a fresh SQLite or
// PostgreSQL database. Run is called from package storage_test for each
// backend; Dex's storage/conformance is the model.
package storagetest
