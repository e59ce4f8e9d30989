package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"
)

// AuditEvent is one stored security event: who did what to whom, from where,
// and how it ended. It has no field for a password, token, secret or code.
type AuditEvent struct {
	ID        int64  `db:"id"`
	At        Time   `db:"at"`
	Type      string `db:"type"`    // login_failed, token_issued, ...
	Actor     string `db:"actor"`   // who acted: a user id, a client id, an admin
	Subject   string `db:"subject"` // whom it concerns: a user id, a client id, a kid
	ClientID  string `db:"client_id"`
	IP        string `db:"ip"`
	UserAgent string `db:"user_agent"`
	RequestID string `db:"request_id"`
	Outcome   string `db:"outcome"` // success, failure, ...
	Reason    string `db:"reason"`  // a short code, as bad_password
}

// maxAuditField caps each text field of an audit row, in bytes.
const maxAuditField = 1024

// cleanText makes s storable in both dialects: valid UTF-8 without NUL
// (PostgreSQL text refuses both) and at most max bytes, cut at a rune.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// AppendAudits stores several events with one statement, filling in At
// when zero (not ID): the Auditor's group commit, so concurrent requests
// share one write.
func (db *DB) AppendAudits(ctx context.Context, es []*AuditEvent, durable bool) error {
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if e.At.IsZero() {
			e.At = At(time.Now())
		}
		for _, f := range []*string{&e.Type, &e.Actor, &e.Subject, &e.ClientID, &e.IP, &e.UserAgent, &e.RequestID, &e.Outcome, &e.Reason} {
			*f = cleanText(*f, maxAuditField)
		}
	}
	if db.dialect == Postgres {
		query, args := pgAuditInsert(es)
		var err error
		if durable {
			_, err = db.exec(ctx, query, args...)
		} else {
			err = db.appendLazily(ctx, query, args)
		}
		if err != nil {
			return fmt.Errorf("append %d audit events: %w", len(es), err)
		}
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO audit_events
		(at, type, actor, subject, client_id, ip, user_agent, request_id, outcome, reason) VALUES `)
	args := make([]any, 0, 10*len(es))
	for i, e := range es {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.At, e.Type, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.RequestID, e.Outcome, e.Reason)
	}
	wc, done, err := db.writeTurn(ctx) // a writer like any transaction (SQLite)
	if err != nil {
		return fmt.Errorf("append %d audit events: %w", len(es), err)
	}
	if wc != nil {
		_, err = wc.ExecContext(ctx, db.q(q.String()), args...)
	} else {
		_, err = db.exec(ctx, q.String(), args...)
	}
	done(err)
	if err != nil {
		return fmt.Errorf("append %d audit events: %w", len(es), err)
	}
	return nil
}

// pgAuditInsertQuery inserts a batch of audit rows on PostgreSQL from one
// array per column, in the arrays' order: the same short statement for
// every batch, where a VALUES list of up to 256 rows (2,560 parameters)
// was a new statement for PostgreSQL to parse and plan each time
// (docs/performance.md measures the difference).
const pgAuditInsertQuery = `INSERT INTO audit_events
	(at, type, actor, subject, client_id, ip, user_agent, request_id, outcome, reason)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
		$6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`

// pgAuditInsert returns pgAuditInsertQuery and its ten arrays for es.
func pgAuditInsert(es []*AuditEvent) (string, []any) {
	n := len(es)
	at := make(pq.Int64Array, n)
	text := make([]string, 9*n) // the nine text columns, one after another
	for i, e := range es {
		at[i] = e.At.UnixMilli()
		for c, v := range [9]string{e.Type, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.RequestID, e.Outcome, e.Reason} {
			text[c*n+i] = v
		}
	}
	var cols [9]pq.StringArray
	args := make([]any, 10)
	args[0] = &at
	for c := range cols {
		cols[c] = text[c*n : (c+1)*n]
		args[c+1] = &cols[c]
	}
	return pgAuditInsertQuery, args
}

// appendLazily runs an audit INSERT on PostgreSQL on the connection kept
// for rows nobody waits for, whose session has synchronous_commit off: the
// commit returns before its WAL record is flushed, which PostgreSQL's WAL
// writer does within three wal_writer_delay (600 ms by default). A
// PostgreSQL crash may so lose the last such rows, as a Keyward crash loses
// the rows still queued in memory; nothing is ever half written, and every
// other write keeps its durable commit. A durable commit here waited for
// the flush, and on a busy disk one took long enough (0.5-3 s) for the
// queue of rows behind it to fill and stall the token requests queuing
// more (client_credentials with ES256 keys at 8,000/s: max latency 0.5-1 s,
// against 10-70 ms lazily).
func (db *DB) appendLazily(ctx context.Context, query string, args []any) error {
	ctx, cancel := statementContext(ctx) // a hang-up would close the connection
	defer cancel()
	db.lazyMu.Lock()
	defer db.lazyMu.Unlock()
	if err := db.openLazyAudit(ctx); err != nil {
		return err
	}
	_, err := db.lazyAudit.ExecContext(ctx, db.q(query), args...)
	if err != nil { // the connection may be gone: the next write opens another
		db.dropLazyAudit()
	}
	return err
}

// openLazyAudit opens the lazy audit connection unless it is open; the
// caller holds lazyMu.
func (db *DB) openLazyAudit(ctx context.Context) error {
	if db.lazyAudit != nil {
		return nil
	}
	c, err := db.x.Connx(ctx)
	if err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, `SET synchronous_commit = off`); err != nil {
		c.Close()
		return err
	}
	db.lazyAudit = c
	return nil
}

// dropLazyAudit closes the lazy audit connection for good. Given back to
// the pool it would carry synchronous_commit off into the writes that must
// be durable.
func (db *DB) dropLazyAudit() {
	db.lazyAudit.Raw(func(any) error { return driver.ErrBadConn }) // database/sql closes a connection reported bad
	db.lazyAudit.Close()
	db.lazyAudit = nil
}

// AppendAudit stores e, filling in ID and, when zero, At.
func (db *DB) AppendAudit(ctx context.Context, e *AuditEvent) error {
	if e.At.IsZero() {
		e.At = At(time.Now())
	}
	for _, f := range []*string{&e.Type, &e.Actor, &e.Subject, &e.ClientID, &e.IP, &e.UserAgent, &e.RequestID, &e.Outcome, &e.Reason} {
		*f = cleanText(*f, maxAuditField)
	}
	err := db.getOnce(ctx, &e.ID, `INSERT INTO audit_events
		(at, type, actor, subject, client_id, ip, user_agent, request_id, outcome, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.At, e.Type, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.RequestID, e.Outcome, e.Reason)
	if err != nil {
		return fmt.Errorf("append audit event %q: %w", e.Type, err)
	}
	return nil
}

// AuditFilter selects audit events. Zero fields select everything.
type AuditFilter struct {
	Subject  string
	Type     string
	ClientID string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	BeforeID int64     // only events older than this id: the next page
	Limit    int       // default 100, at most 1000
}

// Audit page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditEvents returns the events f selects, newest first (by id, so pages
// follow with BeforeID set to the last id returned).
func (db *DB) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
	}
	if !f.Since.IsZero() {
		add("at >= ?", At(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", At(f.Until))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	query := `SELECT id, at, type, actor, subject, client_id, ip, user_agent, request_id, outcome, reason FROM audit_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	es := []AuditEvent{}
	if err := db.selOnce(ctx, &es, query, args...); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return es, nil
}

// DeleteAuditBefore deletes events older than t (retention), in batches so
// neither dialect holds its write lock long, and returns how many it deleted.
func (db *DB) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	const batch = 5000
	var total int64
	for {
		res, err := db.exec(ctx, `DELETE FROM audit_events WHERE id IN
			(SELECT id FROM audit_events WHERE at < ? ORDER BY id LIMIT ?)`, At(t), batch)
		if err != nil {
			return total, fmt.Errorf("delete audit events before %s: %w", t.UTC().Format(time.RFC3339), err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < batch {
			return total, nil
		}
	}
}
