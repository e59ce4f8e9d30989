package storagetest

import (
	"context"
	"database/sql"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// DefaultPostgres is tried when KEYWARD_TEST_POSTGRES is not set.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// SQLiteDSN returns the address of a new, empty SQLite database in a
// temporary directory removed after the test.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "keyward.db")
}

// OpenSQLite opens and migrates a fresh SQLite database.
func OpenSQLite(t testing.TB) *storage.DB {
	t.Helper()
	return openMigrated(t, SQLiteDSN(t))
}

var (
	pgOnce sync.Once
	pgDSN  string
)

// PostgresServer returns the address of the PostgreSQL server tests may use:
// KEYWARD_TEST_POSTGRES, else DefaultPostgres when 127.0.0.1:5432 answers.
// Without one the test is skipped, or fails when KEYWARD_TEST_POSTGRES_REQUIRED=1.
func PostgresServer(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if dsn := os.Getenv("KEYWARD_TEST_POSTGRES"); dsn != "" {
			pgDSN = dsn
			return
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second)
		if err == nil {
			c.Close()
			pgDSN = DefaultPostgres
		}
	})
	if pgDSN == "" {
		if os.Getenv("KEYWARD_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal("PostgreSQL is required (KEYWARD_TEST_POSTGRES_REQUIRED=1) but none answers on 127.0.0.1:5432 and KEYWARD_TEST_POSTGRES is unset")
		}
		t.Skip("no PostgreSQL: set KEYWARD_TEST_POSTGRES or run one on 127.0.0.1:5432")
	}
	return pgDSN
}

// PostgresDSN creates a fresh, empty PostgreSQL database, dropped when the
// test ends, and returns its address.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	server := PostgresServer(t)
	admin, err := sql.Open("postgres", server)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	name := "keyward_test_" + storage.NewID()[:16]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse postgres address: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// OpenPostgres opens and migrates a fresh PostgreSQL database.
func OpenPostgres(t testing.TB) *storage.DB {
	t.Helper()
	return openMigrated(t, PostgresDSN(t))
}

// Backend names a database kind and how to get a fresh one of it.
type Backend struct {
	Name string
	DSN  func(t testing.TB) string // a fresh, unmigrated database
}

// Backends are SQLite and PostgreSQL, in that order.
var Backends = []Backend{
	{Name: "SQLite", DSN: SQLiteDSN},
	{Name: "Postgres", DSN: PostgresDSN},
}

// Open opens (with opts) and migrates the database at dsn, closed when the
// test ends.
func Open(t testing.TB, dsn string, opts ...storage.Option) *storage.DB {
	t.Helper()
	return openMigrated(t, dsn, opts...)
}

func openMigrated(t testing.TB, dsn string, opts ...storage.Option) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
