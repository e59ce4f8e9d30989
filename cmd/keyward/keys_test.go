package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

func TestKeysCLI(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek := keys.NewKEK()
		kekArg := "--key-encryption-key-file=" + writeKEKFile(t, kek)
		db := storagetest.Open(t, dsn)
		if _, err := keys.NewManager(t.Context(), db, kek, keys.Policy{}, nil, time.Now); err != nil {
			t.Fatal(err)
		}
		list := func() map[string]string {
			byState := map[string]string{}
			for _, k := range decode[[]map[string]any](t, mustRun(t, dsn, "", "keys", "list", "--output", "json")) {
				byState[k["state"].(string)] = k["kid"].(string)
				// The admin API's shape (keys.KeyInfo): a time that is not
				// planned yet is left out.
				for _, field := range []string{"created_at", "activates_at"} {
					if _, ok := k[field]; !ok {
						t.Fatalf("keys list lacks %s: %v", field, k)
					}
				}
				for field := range k {
					if !slices.Contains([]string{"kid", "state", "alg", "created_at", "activates_at", "retires_at", "expires_at"}, field) {
						t.Fatalf("keys list has an unknown field %s: %v", field, k)
					}
				}
			}
			return byState
		}
		before := list()
		if before["active"] == "" || before["next"] == "" || len(before) != 2 {
			t.Fatalf("fresh key set %v", before)
		}

		// The next key is younger than max-age + margin: the rotation is
		// scheduled for the servers, and the keys stay as they are until then.
		sched := decode[map[string]any](t, mustRun(t, dsn, "", "keys", "rotate", kekArg, "--output", "json"))
		if sched["scheduled"] != true || sched["active"] != before["next"] || sched["retired"] != before["active"] || sched["forced"] != false {
			t.Fatalf("rotate before the next key was published long enough: %v (before %v)", sched, before)
		}
		if now := list(); now["active"] != before["active"] || now["next"] != before["next"] {
			t.Fatalf("after scheduling %v, before %v", now, before)
		}
		rot := decode[map[string]any](t, mustRun(t, dsn, "", "keys", "rotate", "--force", kekArg, "--output", "json"))
		if rot["active"] != before["next"] || rot["retired"] != before["active"] || rot["forced"] != true || rot["scheduled"] != false {
			t.Fatalf("rotate: %v (before %v)", rot, before)
		}
		after := list()
		if after["retired"] != before["active"] || after["active"] != before["next"] || after["next"] == "" {
			t.Fatalf("after rotate %v", after)
		}

		// --kid= takes any kid, including one that begins with '-', as
		// base64url thumbprints sometimes do (1 in 64).
		rev := decode[map[string]any](t, mustRun(t, dsn, "", "keys", "revoke", "--kid="+after["active"], kekArg, "--output", "json"))
		if rev["revoked"] != after["active"] {
			t.Fatalf("revoke: %v", rev)
		}
		final := list()
		for _, kid := range final {
			if kid == after["active"] {
				t.Fatalf("revoked key %s still listed: %v", kid, final)
			}
		}
		if final["active"] == "" || final["next"] == "" {
			t.Fatalf("after revoke %v", final)
		}
		for _, args := range [][]string{{"no-such-kid"}, {"--kid=-no-such-kid"}, {"--", "-no-such-kid"}} {
			_, err := run(t, dsn, "", append([]string{"keys", "revoke", kekArg}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "no-such-kid") {
				t.Fatalf("revoking an unknown kid %v: %v", args, err)
			}
		}
		if _, err := run(t, dsn, "", "keys", "revoke", kekArg); err == nil || !strings.Contains(err.Error(), "--kid") {
			t.Fatalf("revoke without a kid: %v", err)
		}

		evs := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--output", "json"))
		if len(evs) < 3 || evs[0]["type"] != "key_revoked" || evs[1]["type"] != "key_rotated" || evs[2]["type"] != "key_rotation_scheduled" ||
			evs[0]["subject"] != after["active"] || evs[2]["subject"] != before["next"] {
			t.Fatalf("key audit events %v", evs)
		}

		newKEK := keys.NewKEK()
		file := filepath.Join(t.TempDir(), "new.kek")
		if err := os.WriteFile(file, []byte(keys.EncodeKEK(newKEK)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, dsn, "", "keys", "rewrap", "--key-encryption-key="+keys.EncodeKEK(keys.NewKEK()), "--new-key-encryption-key-file", file); err == nil {
			t.Fatal("rewrap with a wrong current key-encryption key succeeded")
		}
		mustRun(t, dsn, "", "keys", "rewrap", kekArg, "--new-key-encryption-key-file", file)
		if _, err := keys.NewManager(t.Context(), db, kek, keys.Policy{}, nil, time.Now); !errors.Is(err, keys.ErrWrongKEK) {
			t.Fatalf("old key-encryption key after rewrap: %v", err)
		}
		if _, err := keys.NewManager(t.Context(), db, newKEK, keys.Policy{}, nil, time.Now); err != nil {
			t.Fatalf("new key-encryption key after rewrap: %v", err)
		}
	})
}

func TestPostgresNeedsKeyEncryptionKey(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	_, err := run(t, dsn, "", "serve", "--addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "--key-encryption-key") {
		t.Fatalf("serve on PostgreSQL without a key-encryption key: %v", err)
	}
}

// writeKEK writes a fresh key-encryption key into dir and returns its path.
func writeKEK(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "keyward.kek")
	if err := os.WriteFile(file, []byte(keys.EncodeKEK(keys.NewKEK())), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
