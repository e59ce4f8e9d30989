package storagetest

import (
	"testing"

	"github.com/keyward/keyward/storage"
)

// Run runs the conformance suite against the backend open returns a fresh,
// migrated database of.
func Run(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, open(t)) })
	t.Run("UserCRUD", func(t *testing.T) { testUserCRUD(t, open(t)) })
	t.Run("UsernameUniqueAcrossCaseAndWidth", func(t *testing.T) { testUsernameUnique(t, open(t)) })
	t.Run("UserRenameConflict", func(t *testing.T) { testUserRenameConflict(t, open(t)) })
	t.Run("UsernameLookalike", func(t *testing.T) { testUsernameLookalike(t, open(t)) })
	t.Run("SkeletonBackfill", func(t *testing.T) { testSkeletonBackfill(t, open(t)) })
	t.Run("UserUpdateErrorWritesNothing", func(t *testing.T) { testUserUpdateErrorWritesNothing(t, open(t)) })
	t.Run("ConcurrentCreateSameUsername", func(t *testing.T) { testConcurrentCreateSameUsername(t, open(t)) })
	t.Run("ClientCRUD", func(t *testing.T) { testClientCRUD(t, open(t)) })
	t.Run("ClientIDConflict", func(t *testing.T) { testClientIDConflict(t, open(t)) })
	runClients(t, open)
	runKeys(t, open)
	runTokens(t, open)
	runProtection(t, open)
	runAccountTokens(t, open)
	runAuthz(t, open)
}
