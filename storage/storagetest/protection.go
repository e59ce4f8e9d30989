package storagetest

import (
	"testing"

	"github.com/keyward/keyward/storage"
)

// runProtection runs the throttle and audit cases.
func runProtection(t *testing.T, open func(t *testing.T) *storage.DB) {}
