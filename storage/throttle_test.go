package storage_test

import (
	"testing"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestThrottleReplicas records failures on one key through two handles on
// the same database, as two replicas would, and loses none.
func TestThrottleReplicas(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			a, c := storagetest.Open(t, dsn), storagetest.Open(t, dsn)
			storagetest.ConcurrentFailures(t, []*storage.DB{a, c}, 50)
		})
	}
}

// TestProtection runs the throttle and audit conformance cases alone on
// each backend (Run includes them too).
func TestProtection(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			storagetest.RunProtection(t, func(t *testing.T) *storage.DB { return storagetest.Open(t, b.DSN(t)) })
		})
	}
}
