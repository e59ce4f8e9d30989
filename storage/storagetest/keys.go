package storagetest

import (
	"testing"

	"github.com/keyward/keyward/storage"
)

// runKeys runs the signing-key cases.
func runKeys(t *testing.T, open func(t *testing.T) *storage.DB) {}
