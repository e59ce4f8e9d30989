package storage

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// q rewrites a query written with ? placeholders for the dialect.
func (db *DB) q(query string) string {
	if db.dialect == Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// forUpdate locks selected rows on PostgreSQL; SQLite transactions begin
// IMMEDIATE and so already hold the write lock.
func (db *DB) forUpdate() string {
	if db.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// forUpdateOf locks, on PostgreSQL, the rows the selected rows of table
// (an alias in a join) come from, and only those; see forUpdate.
func (db *DB) forUpdateOf(table string) string {
	if db.dialect == Postgres {
		return " FOR UPDATE OF " + table
	}
	return ""
}

// forShare share-locks selected rows on PostgreSQL, so a concurrent UPDATE
// or DELETE of them waits for this transaction (and this one waits for an
// uncommitted one, then reads its result); SQLite transactions begin
// IMMEDIATE and so already exclude every other writer.
func (db *DB) forShare() string {
	if db.dialect == Postgres {
		return " FOR SHARE"
	}
	return ""
}

// classify maps a driver's unique-constraint error to ErrConflict.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pe.Constraint)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return ErrConflict
		}
	}
	return err
}

// Unavailable reports whether err means the database could not serve the
// request right now (unreachable, shutting down, gone, out of connections,
// or SQLite busy past its timeout) rather than that the request was wrong:
// a caller should answer "try again later", never a generic failure.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, errWriteBusy) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code.Class() {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return true
		}
		return pe.Code == "3D000" // the database does not exist (any more)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// Time is a time.Time stored as Unix milliseconds, the one time format both
// dialects compare the same way. The zero Time is stored as 0.
type Time struct{ time.Time }

// At wraps t as a Time at millisecond precision, in UTC.
func At(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{time.UnixMilli(t.UnixMilli()).UTC()}
}

// Value implements driver.Valuer.
func (t Time) Value() (driver.Value, error) {
	if t.IsZero() {
		return int64(0), nil
	}
	return t.UnixMilli(), nil
}

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	var ms int64
	switch v := v.(type) {
	case int64:
		ms = v
	case nil:
		ms = 0
	default:
		return fmt.Errorf("scan time: unexpected %T", v)
	}
	if ms == 0 {
		*t = Time{}
		return nil
	}
	*t = Time{time.UnixMilli(ms).UTC()}
	return nil
}

// List is a set of short strings (grant types, scopes, audiences) stored
// space-separated.
type List []string

// Value implements driver.Valuer.
func (l List) Value() (driver.Value, error) { return strings.Join(l, " "), nil }

// Scan implements sql.Scanner.
func (l *List) Scan(v any) error {
	switch v := v.(type) {
	case string:
		*l = strings.Fields(v)
	case []byte:
		*l = strings.Fields(string(v))
	case nil:
		*l = nil
	default:
		return fmt.Errorf("scan list: unexpected %T", v)
	}
	return nil
}

// Has reports whether s is in the list.
func (l List) Has(s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
