package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"time"
)

// Counts are what a StatementCounter has seen go through the driver: statements
// executed (Exec and Query calls, prepared or not, inside a transaction or
// out), statements prepared, and transactions begun, committed and rolled
// back. The performance budget tests read them per request: a statement
// count cannot be fooled by a busy machine the way a timing can.
type Counts struct {
	Statements int64
	Prepares   int64
	Begins     int64
	Commits    int64
	Rollbacks  int64
}

// Sub returns c minus before, the counts of what ran in between.
func (c Counts) Sub(before Counts) Counts {
	return Counts{
		Statements: c.Statements - before.Statements,
		Prepares:   c.Prepares - before.Prepares,
		Begins:     c.Begins - before.Begins,
		Commits:    c.Commits - before.Commits,
		Rollbacks:  c.Rollbacks - before.Rollbacks,
	}
}

// String is the counts in one line, for test failures.
func (c Counts) String() string {
	return fmt.Sprintf("%d statements, %d prepares, %d begins, %d commits, %d rollbacks",
		c.Statements, c.Prepares, c.Begins, c.Commits, c.Rollbacks)
}

// StatementCounter counts what the database driver is asked to do. Pass it to Open
// with WithCounter: the driver is then wrapped, every connection and
// statement reporting here before it calls the real driver, which does all
// the work. Its zero value is ready; it is safe for concurrent use.
type StatementCounter struct {
	statements, prepares, begins, commits, rollbacks atomic.Int64
}

// Counts returns the counts so far.
func (c *StatementCounter) Counts() Counts {
	return Counts{
		Statements: c.statements.Load(),
		Prepares:   c.prepares.Load(),
		Begins:     c.begins.Load(),
		Commits:    c.commits.Load(),
		Rollbacks:  c.rollbacks.Load(),
	}
}

// Option changes how Open opens a database.
type Option func(*openOptions)

type openOptions struct {
	counter   *StatementCounter
	clientTTL time.Duration
	pool      int // WithPool; 0: DefaultPool, opened on demand
}

// WithCounter makes Open count every statement and transaction the driver
// runs into c. It wraps the real driver (lib/pq or modernc.org/sqlite);
// nothing is faked. Production opens without it and pays nothing.
func WithCounter(c *StatementCounter) Option {
	return func(o *openOptions) { o.counter = c }
}

// dsnConnector opens connections of a driver that has no Connector of its
// own by calling Open with the data source, as sql.Open would.
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// countingConnector wraps each connection its inner connector opens.
type countingConnector struct {
	inner driver.Connector
	n     *StatementCounter
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: c.n}, nil
}

func (c countingConnector) Driver() driver.Driver { return c.inner.Driver() }

// countingConn counts, then hands each call to the real connection. It
// implements every optional interface database/sql looks for and answers
// driver.ErrSkip where the real connection lacks one, so database/sql
// takes the same path it would take without the wrapper.
type countingConn struct {
	driver.Conn
	n *StatementCounter
}

var (
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.NamedValueChecker  = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
)

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.n.prepares.Add(1)
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, n: c.n}, nil
}

func (c *countingConn) Begin() (driver.Tx, error) { //nolint:staticcheck // driver.Conn requires it
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.n.begins.Add(1)
	var tx driver.Tx
	var err error
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin() //nolint:staticcheck // the fallback database/sql uses too
	}
	if err != nil {
		return nil, err
	}
	return countingTx{Tx: tx, n: c.n}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares, executes and closes instead
	}
	c.n.statements.Add(1)
	return e.ExecContext(ctx, query, args)
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	c.n.statements.Add(1)
	return q.QueryContext(ctx, query, args)
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip // the default conversion
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// countingTx counts how a transaction ends.
type countingTx struct {
	driver.Tx
	n *StatementCounter
}

func (t countingTx) Commit() error {
	t.n.commits.Add(1)
	return t.Tx.Commit()
}

func (t countingTx) Rollback() error {
	t.n.rollbacks.Add(1)
	return t.Tx.Rollback()
}

// countingStmt counts each execution of a prepared statement. It has no
// CheckNamedValue of its own (neither driver's statements have one), so
// database/sql asks the connection's, as it would without the wrapper.
type countingStmt struct {
	driver.Stmt
	n *StatementCounter
}

var (
	_ driver.StmtExecContext  = (*countingStmt)(nil)
	_ driver.StmtQueryContext = (*countingStmt)(nil)
)

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.statements.Add(1)
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.Stmt.Exec(vals) //nolint:staticcheck // the fallback database/sql uses too
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.statements.Add(1)
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.Stmt.Query(vals) //nolint:staticcheck // the fallback database/sql uses too
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, fmt.Errorf("driver does not support named parameter %q", a.Name)
		}
		vals[i] = a.Value
	}
	return vals, nil
}
