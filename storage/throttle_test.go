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
