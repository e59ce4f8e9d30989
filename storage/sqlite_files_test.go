package storage_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/keyward/keyward/storage"
)

// TestSQLiteFilesArePrivate: a SQLite database Open creates, and the -wal
// and -shm files SQLite makes beside it, are mode 0600 under the usual
// umask 022, not SQLite's 0644 (issue 12 finding 10); an existing file
// keeps its mode.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	t.Run("created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keyward.db")
		db, err := storage.Open(t.Context(), "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(t.Context()); err != nil { // writes: WAL and shared memory appear
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %04o, want 0600", filepath.Base(f), fi.Mode().Perm())
			}
		}
	})

	t.Run("existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keyward.db")
		if err := os.WriteFile(path, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		db, err := storage.Open(t.Context(), "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("an existing database file changed mode: %v %v", fi.Mode(), err)
		}
	})

	t.Run("missing directory", func(t *testing.T) {
		_, err := storage.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "no", "such", "keyward.db"))
		if err == nil {
			t.Fatal("opened a database in a directory that does not exist")
		}
	})
}

func TestSQLitePath(t *testing.T) {
	tests := []struct {
		name, dsn, want string
		wantOK          bool
	}{
		{"relative", "sqlite:keyward.db", "keyward.db", true},
		{"absolute", "sqlite:///var/lib/keyward/keyward.db", "/var/lib/keyward/keyward.db", true},
		{"query", "sqlite:keyward.db?cache=shared", "keyward.db", true},
		{"postgres", "postgres://u@db/kw", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := storage.SQLitePath(tt.dsn)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("SQLitePath(%q) = %q, %v; want %q, %v", tt.dsn, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
