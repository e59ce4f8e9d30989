package storage_test

import (
	"sync"
	"testing"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) *storage.DB { return storagetest.OpenSQLite(t) })
}

func TestPostgres(t *testing.T) {
	storagetest.PostgresServer(t) // skip (or fail when required) before any subtest
	storagetest.Run(t, func(t *testing.T) *storage.DB { return storagetest.OpenPostgres(t) })
}

func TestParseDSN(t *testing.T) {
	tests := []struct {
		name, dsn, wantDialect string
		wantErr                bool
	}{
		{"sqlite path", "sqlite:keyward.db", storage.SQLite, false},
		{"sqlite absolute", "sqlite:/var/lib/keyward.db", storage.SQLite, false},
		{"sqlite empty", "sqlite:", "", true},
		{"postgres", "postgres://u@127.0.0.1:5432/kw?sslmode=disable", storage.Postgres, false},
		{"postgresql", "postgresql://u@db/kw", storage.Postgres, false},
		{"postgres no host", "postgres:///kw", "", true},
		{"mysql", "mysql://u@h/db", "", true},
		{"bare path", "keyward.db", "", true},
		{"empty", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, err := storage.ParseDSN(tt.dsn)
			if (err != nil) != tt.wantErr || d != tt.wantDialect {
				t.Fatalf("ParseDSN(%q) = %q, %v", tt.dsn, d, err)
			}
		})
	}
}

// TestPostgresPoolKeepsConnections: connections released after a burst of
// concurrent queries stay open for the next ones. Closing them would cost
// the next burst a new PostgreSQL backend per query.
func TestPostgresPoolKeepsConnections(t *testing.T) {
	db := storagetest.OpenPostgres(t)
	x := db.SQL()
	burst := func() {
		var wg sync.WaitGroup
		for range x.Stats().MaxOpenConnections {
			wg.Go(func() {
				if _, err := x.ExecContext(t.Context(), "SELECT pg_sleep(0.05)"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	opened := x.Stats().OpenConnections
	burst()
	st := x.Stats()
	if st.MaxIdleClosed != 0 || st.OpenConnections < opened {
		t.Errorf("pool closed %d idle connections after a burst (open %d, then %d)", st.MaxIdleClosed, opened, st.OpenConnections)
	}
	if opened < 2 {
		t.Errorf("only %d connections for %d concurrent queries", opened, st.MaxOpenConnections)
	}
}
