package storage

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // PostgreSQL driver
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite" // SQLite driver
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a record would break a uniqueness rule
// (a username or client id that is taken).
var ErrConflict = errors.New("already exists")

// Dialects Open understands.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

//go:embed migrations
var migrations embed.FS

// DB is Keyward's database. It is safe for concurrent use.
type DB struct {
	x       *sqlx.DB
	dialect string
	stmts   sync.Map // query → *sqlx.Stmt, the hot reads prepared once (see get, sel)
	clients *clientCache
	// writer, on SQLite, holds the one connection writes use, and so
	// admits one write at a time (see writeTurn); nil on PostgreSQL.
	writer chan *sqlx.Conn
	// counterWriters, on PostgreSQL, bounds the throttle's write
	// transactions (counterTurn); nil on SQLite.
	counterWriters chan struct{}
	// turns, on PostgreSQL, holds a token for each use of a pooled
	// connection, so uses wait for one first come, first served (see
	// turn); nil on SQLite.
	turns chan struct{}
	// lazyAudit, on PostgreSQL, holds the connection of the audit rows
	// nobody waits for (AppendAudits with durable false), whose session
	// commits without waiting for the WAL flush; nil until first used.
	lazyMu    sync.Mutex
	lazyAudit *sqlx.Conn
}

// ParseDSN splits a Keyward database address into the dialect and the driver's
// data source: "sqlite:PATH" or "postgres://..." (also "postgresql://...").
func ParseDSN(dsn string) (dialect, source string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", errors.New("sqlite database needs a path, as in sqlite:keyward.db")
		}
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		return SQLite, "file:" + path + "?" + q.Encode(), nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil || u.Host == "" {
			return "", "", errors.New("postgres database address must look like postgres://user@host:5432/dbname")
		}
		return Postgres, dsn, nil
	default:
		return "", "", errors.New("database must be sqlite:PATH or postgres://user@host:5432/dbname")
	}
}

// SQLitePath returns the file a sqlite:PATH address names (PATH up to any
// "?"), and false for any other address.
func SQLitePath(dsn string) (string, bool) {
	if !strings.HasPrefix(dsn, "sqlite:") {
		return "", false
	}
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	path, _, _ = strings.Cut(path, "?")
	return path, true
}

// createPrivate creates the SQLite database file empty, with mode 0600,
// unless something is there already, before SQLite opens it. SQLite would
// create it 0644 (less the umask), so every local user could read the
// password hashes, and it gives the -wal and -shm files the database
// file's mode. An existing file keeps its mode: the operator chose it
// (keyward serve warns when others can read it).
func createPrivate(path string) error {
	if path == "" || path == ":memory:" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("create sqlite database: %w", err)
	}
	return f.Close()
}

// Open connects to the database named by dsn (see ParseDSN) and checks that it
// answers. A SQLite database file it creates has mode 0600. It does not
// migrate; call Migrate.
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	dialect, source, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if o.pool != 0 && o.pool < MinPool {
		return nil, fmt.Errorf("a pool of %d PostgreSQL connections is too small: it needs %d or more", o.pool, MinPool)
	}
	pool := cmp.Or(o.pool, DefaultPool)
	if path, ok := SQLitePath(dsn); ok {
		if err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	var x *sqlx.DB
	if o.counter == nil {
		if x, err = sqlx.Open(driverName(dialect), source); err != nil {
			return nil, fmt.Errorf("open %s database: %w", dialect, err)
		}
	} else {
		conn, err := connector(dialect, source)
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", dialect, err)
		}
		x = sqlx.NewDb(sql.OpenDB(countingConnector{inner: conn, n: o.counter}), driverName(dialect))
	}
	if dialect == SQLite {
		// One writer at a time is all SQLite has (writeTurn queues them);
		// a few connections serve concurrent readers in WAL mode. More
		// made it worse: 32 connections under 32 concurrent refreshes
		// measured p95 3.6 s against 0.2 s with 8, readers then
		// contending for WAL read marks in the busy handler.
		x.SetMaxOpenConns(8)
		x.SetMaxIdleConns(8)
	} else {
		// As many idle as open: a connection closed on release under load
		// is a new server process forked for the next query.
		x.SetMaxOpenConns(pool)
		x.SetMaxIdleConns(pool)
		if o.pool == 0 {
			x.SetConnMaxIdleTime(5 * time.Minute)
		}
	}
	db := &DB{x: x, dialect: dialect, clients: newClientCache(o.clientTTL)}
	if dialect == SQLite {
		db.writer = make(chan *sqlx.Conn, 1)
		db.writer <- nil // opened by the first writeTurn
	} else {
		turns := pool - 2
		db.turns = make(chan struct{}, turns)
		// At most half the turns wait on a counter's row lock (counterTurn).
		db.counterWriters = make(chan struct{}, min(maxCounterWriters, max(1, turns/2)))
	}
	if err := db.Ping(ctx); err != nil {
		x.Close()
		return nil, err
	}
	if o.pool > 0 && dialect == Postgres {
		if err := db.openPool(ctx, pool); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// DefaultPool is the most connections one process opens to PostgreSQL
// without WithPool, and the size keyward serve gives WithPool by default
// (--database-pool). Small, as PostgreSQL's own sizing advice has it
// (about twice its cores): the statements past what its cores run at once
// only queue inside it. Measured with PostgreSQL sharing the server's one
// core (docs/performance.md, the kernel's autogroup scheduling on), 8
// served every scenario as fast as 32 or faster, and where 32 let
// requests stall for 1-6 s, 8 kept them mostly under 0.2 s.
const DefaultPool = 8

// MinPool is the smallest pool WithPool takes: the turns (see turn) get
// all but the lazy audit writer's connection and a spare.
const MinPool = 3

// WithPool gives a PostgreSQL database a fixed pool of n connections
// (MinPool or more): Open opens them all, and none is closed for being
// idle. Without it the pool opens up to DefaultPool connections on demand
// and closes those idle for five minutes, which suits a command that runs
// a few statements. A server wants its connections open before the load
// comes: opened on demand, under load, they come when PostgreSQL is
// busiest, and where it shares the server's cores each took seconds to
// start (docs/performance.md). SQLite ignores it.
func WithPool(n int) Option {
	return func(o *openOptions) { o.pool = n }
}

// openPool opens the lazy audit writer's connection and n-1 pooled ones,
// all held at once so that each is a new one, and gives them back.
func (db *DB) openPool(ctx context.Context, n int) error {
	db.lazyMu.Lock()
	err := db.openLazyAudit(ctx)
	db.lazyMu.Unlock()
	if err != nil {
		return fmt.Errorf("open the connection pool: %w", err)
	}
	conns := make([]*sqlx.Conn, 0, n-1)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n - 1 {
		c, err := db.x.Connx(ctx)
		if err != nil {
			return fmt.Errorf("open the connection pool (%d of %d open): %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	return nil
}

// connector is the driver's connector for source, as sql.Open would use.
func connector(dialect, source string) (driver.Connector, error) {
	if dialect == SQLite {
		return dsnConnector{dsn: source, drv: &sqlite.Driver{}}, nil
	}
	return pq.NewConnector(source)
}

func driverName(dialect string) string {
	if dialect == SQLite {
		return "sqlite"
	}
	return "postgres"
}

// Close closes the database.
func (db *DB) Close() error {
	db.lazyMu.Lock()
	if db.lazyAudit != nil {
		db.dropLazyAudit()
	}
	db.lazyMu.Unlock()
	db.stmts.Range(func(_, v any) bool {
		v.(*sqlx.Stmt).Close()
		return true
	})
	if db.writer != nil {
		select {
		case c := <-db.writer:
			if c != nil {
				c.Close()
			}
			db.writer <- nil // a write after Close fails at once: the pool is closed
		case <-time.After(sqliteBusyTimeout): // a write still running: sql.DB closes its connection when it ends
		}
	}
	return db.x.Close()
}

// prepared returns the statement for query (written with ?), preparing it
// on first use. The hot reads of every token request go through it: a
// prepared statement skips SQLite's compile and PostgreSQL's parse and a
// round trip. database/sql prepares it again on each new connection.
func (db *DB) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := db.x.PreparexContext(ctx, db.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// inTxPrepared returns the statement for query (written with ?) prepared
// on tx's connection: the one prepared already there when the pool has
// used that connection before, so a hot transaction's statements skip
// PostgreSQL's parse round trip and SQLite's compile as the hot reads do.
func (db *DB) inTxPrepared(ctx context.Context, tx *sqlx.Tx, query string) (*sqlx.Stmt, error) {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtxContext(ctx, st), nil
}

// turn waits, on PostgreSQL, until fewer than the pool's size less two
// uses of a pooled connection run (the two: the connection the lazy audit
// writer keeps, appendLazily, and one for what takes a connection outside
// the turns: preparing a statement, Ping, migrations), first come, first
// served, and takes a turn. It returns
// the context the turn's statements run under (statementContext) and end,
// which gives the turn back. Every statement and transaction of DB takes
// one, and takes no second one before ending it. database/sql hands a
// freed connection to a random waiter, so with more requests than
// connections one may lose the draw again and again while later ones go
// first. A turn's waiters queue on a channel, in the order they came, and
// a turn always finds a connection free in the pool (bench/run logs the
// pool's waits: 0 in every scenario). On SQLite it does nothing: writes
// wait in writeTurn and reads are calls into the process.
func (db *DB) turn(ctx context.Context) (context.Context, func(), error) {
	if db.turns == nil {
		return ctx, func() {}, nil
	}
	select {
	case db.turns <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	sctx, cancel := statementContext(ctx)
	return sctx, func() {
		cancel()
		<-db.turns
	}, nil
}

// statementContext returns the context a PostgreSQL statement or
// transaction runs under once it has its turn: ctx's values and deadline
// without its cancellation. A request whose client hangs up so still
// waits for its turn no longer, but a statement it has begun runs on to
// its end (milliseconds) or to the request's deadline. lib/pq answers a
// cancelled context by discarding the connection and dialling PostgreSQL
// to send a cancel request: each hang-up cost two new server processes,
// and a load generator stopping 32 requests at once left 32 connections
// to open again, under load, where PostgreSQL shares a saturated core
// (their startup took up to 5 s, and the requests waiting on them as
// long: docs/performance.md). Without a deadline ctx is returned as is:
// the background work (pruning, rotation) stops with its context.
func statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), dl)
}

// get runs a prepared single-row read into dest, in a turn.
func (db *DB) get(ctx context.Context, dest any, query string, args ...any) error {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return err
	}
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return err
	}
	defer end()
	return st.GetContext(ctx, dest, args...)
}

// sel runs a prepared many-row read into dest, in a turn.
func (db *DB) sel(ctx context.Context, dest any, query string, args ...any) error {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return err
	}
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return err
	}
	defer end()
	return st.SelectContext(ctx, dest, args...)
}

// exec runs a statement that is not prepared (query written with ?; q
// rewrites it), in a turn.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	return db.x.ExecContext(ctx, db.q(query), args...)
}

// getOnce runs a single-row read that is not prepared, in a turn.
func (db *DB) getOnce(ctx context.Context, dest any, query string, args ...any) error {
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return err
	}
	defer end()
	return db.x.GetContext(ctx, dest, db.q(query), args...)
}

// selOnce runs a many-row read that is not prepared, in a turn.
func (db *DB) selOnce(ctx context.Context, dest any, query string, args ...any) error {
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return err
	}
	defer end()
	return db.x.SelectContext(ctx, dest, db.q(query), args...)
}

// Dialect is Postgres or SQLite.
func (db *DB) Dialect() string { return db.dialect }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.x.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", db.dialect, err)
	}
	return nil
}

// SQL exposes the underlying handle for tests and tools that inspect rows.
func (db *DB) SQL() *sqlx.DB { return db.x }

func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+db.dialect)
	if err != nil {
		return nil, err
	}
	d := goose.DialectPostgres
	if db.dialect == SQLite {
		d = goose.DialectSQLite3
	}
	return goose.NewProvider(d, db.x.DB, sub)
}

// Migrate applies every migration not yet applied.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if db.dialect == Postgres {
		// Replicas starting together must not race each other's migrations.
		conn, err := db.x.Connx(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("migrate: take lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockMigrate)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return db.fillSkeletons(ctx)
}

// MigrationVersion reports the newest applied migration and the newest known.
func (db *DB) MigrationVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := db.provider()
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read migration version: %w", err)
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	return current, latest, nil
}

// Advisory lock ids used on PostgreSQL.
const (
	lockMigrate int64 = 0x6b657977_0001
	lockKeySet  int64 = 0x6b657977_0002
)

// sqliteBusyTimeout is the busy_timeout ParseDSN sets, and the longest
// writeTurn waits.
const sqliteBusyTimeout = 10 * time.Second

// errWriteBusy is writeTurn's answer after sqliteBusyTimeout; Unavailable
// reports it, as it reports SQLite's own SQLITE_BUSY.
var errWriteBusy = errors.New("database is busy: no write turn within the busy timeout")

// writeTurn waits, on SQLite, until no other write of this process runs,
// and returns the connection all writes there share (see Open) and the
// function that ends the turn. SQLite admits one writer at a time; without
// the turn, writers that find the lock taken poll it from SQLite's busy
// handler, sleeping up to 100 ms between tries and winning in no order,
// and first wait for a pooled connection, which database/sql hands to a
// random waiter: under 32 concurrent refreshes a few requests waited
// seconds while most waited milliseconds (p99 2.7 s, max 4.5 s). Waiting
// here is first come, first served (a channel's waiting receivers), and
// the write connection is nobody else's. Writes from other processes, and
// the few writes outside inTx and AppendAudits, still meet the busy
// handler. On PostgreSQL it returns a nil connection and does nothing: row
// locks queue there, and every connection may write.
func (db *DB) writeTurn(ctx context.Context) (*sqlx.Conn, func(error), error) {
	if db.writer == nil {
		return nil, func(error) {}, nil
	}
	var c *sqlx.Conn
	select {
	case c = <-db.writer:
	default:
		t := time.NewTimer(sqliteBusyTimeout)
		defer t.Stop()
		select {
		case c = <-db.writer:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-t.C:
			return nil, nil, errWriteBusy
		}
	}
	if c == nil {
		var err error
		if c, err = db.x.Connx(context.WithoutCancel(ctx)); err != nil {
			db.writer <- nil
			return nil, nil, err
		}
	}
	end := func(err error) {
		if errors.Is(err, driver.ErrBadConn) {
			c.Close()
			c = nil // the next turn opens another
		}
		db.writer <- c
	}
	return c, end, nil
}

// faultTx, when set, runs in place of inTx's own transaction. Only a
// build with the faultinject tag sets it (storage/faultinject.go), for the
// negative controls of internal/faults; in every other build it is nil.
var faultTx func(ctx context.Context, db *DB, fn func(ctx context.Context, tx *sqlx.Tx) error) error

// inTx runs fn in a transaction, committing when it returns nil. fn's
// statements run under the context it is given (see statementContext).
func (db *DB) inTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx) error) error {
	if faultTx != nil {
		return faultTx(ctx, db, fn)
	}
	return db.commitTx(ctx, fn)
}

// commitTx is inTx's own transaction. On SQLite it first waits for its
// write turn (writeTurn): every transaction there begins IMMEDIATE, as a
// writer.
func (db *DB) commitTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx) error) (err error) {
	wc, done, err := db.writeTurn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { done(err) }()
	var tx *sqlx.Tx
	if wc != nil {
		tx, err = wc.BeginTxx(ctx, nil)
	} else {
		var end func()
		if ctx, end, err = db.turn(ctx); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer end()
		tx, err = db.x.BeginTxx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
