package main

import (
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
)

// TestUsersCreateLookalike is issue 12's finding 9 for `keyward users
// create`: a name mixing scripts and a name that looks like an existing one
// are refused with a message saying which, and create nothing.
func TestUsersCreateLookalike(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", "alice", "--password-stdin")
		tests := []struct {
			name, username, wantErr string
		}{
			{"Cyrillic a", "\u0430lice", "mixes letters of different scripts"},
			{"precomposed e with dot", "alic\u0117", "looks like an existing username"},
			{"combining dot", "alice\u0307", "looks like an existing username"},
			{"digit one for l", "a1ice", "looks like an existing username"},
			{"the same name", "ALICE", "is taken"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := run(t, dsn, alicePassword+"\n", "users", "create", "--username", tt.username, "--password-stdin")
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("users create %q: %v, want %q", tt.username, err, tt.wantErr)
				}
			})
		}
		out := mustRun(t, dsn, "", "users", "list")
		if n := strings.Count(out, "\n"); !strings.Contains(out, "alice") || strings.Contains(out, "alic\u0117") || n > 2 {
			t.Errorf("users list after refusals:\n%s", out)
		}
	})
}
