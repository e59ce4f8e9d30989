package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Store is the part of storage the audit trail needs.
type Store interface {
	AppendAudit(ctx context.Context, e *storage.AuditEvent) error
	// AppendAudits stores es; durable false allows a commit that does not
	// wait for the disk (no caller waits for these rows).
	AppendAudits(ctx context.Context, es []*storage.AuditEvent, durable bool) error
	AuditEvents(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error)
	DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error)
}

// Type names a security event; it is the log message, the event
// attribute and the audit row's type.
type Type string

// Event types (LG-01, LG-03).
const (
	LoginSucceeded       Type = "login_succeeded"
	LoginFailed          Type = "login_failed"
	LoginThrottled       Type = "login_throttled"
	TokenIssued          Type = "token_issued"
	TokenRefreshed       Type = "token_refreshed"
	TokenRevoked         Type = "token_revoked"
	RefreshReuseDetected Type = "refresh_reuse_detected"
	UserCreated          Type = "user_created"
	UserUpdated          Type = "user_updated"
	UserLocked           Type = "user_locked"
	UserUnlocked         Type = "user_unlocked"
	UserDeleted          Type = "user_deleted"
	PasswordChanged      Type = "password_changed"
	PasswordReset        Type = "password_reset"
	ClientCreated        Type = "client_created"
	ClientUpdated        Type = "client_updated"
	ClientDeleted        Type = "client_deleted"
	KeyRotated           Type = "key_rotated"
	KeyRotationScheduled Type = "key_rotation_scheduled"
	KeyRevoked           Type = "key_revoked"

	// The account lifecycle over mail (issue 14). None carries a token or
	// a link: Subject is the user id, Reason says why a step failed.
	PasswordResetRequested  Type = "password_reset_requested"  // POST /account/password/forgot, answered 202 whatever the outcome
	PasswordResetSent       Type = "password_reset_sent"       // a reset link was queued for the user's verified address
	PasswordResetUsed       Type = "password_reset_used"       // a reset link set a new password
	PasswordResetFailed     Type = "password_reset_failed"     // a reset link was refused: expired, used, unknown, superseded, revoked
	EmailVerificationSent   Type = "email_verification_sent"   // a verification link was queued for an address
	EmailVerified           Type = "email_verified"            // a verification link confirmed an address
	EmailVerificationFailed Type = "email_verification_failed" // a verification link was refused
	// Browser login (issue 15, idp/login).
	SessionStarted   Type = "session_started"    // a login session began (Subject: the user)
	SessionEnded     Type = "session_ended"      // logout, or an admin ended the user's sessions
	MFAFailed        Type = "mfa_failed"         // a wrong, replayed or throttled TOTP or recovery code
	MFAEnrolled      Type = "mfa_enrolled"       // TOTP enrolment confirmed
	MFAReset         Type = "mfa_reset"          // an admin removed the user's TOTP
	RecoveryCodeUsed Type = "recovery_code_used" // a recovery code was spent
	ConsentGranted   Type = "consent_granted"    // Reason: "approved" or "denied"
	ConsentRevoked   Type = "consent_revoked"
)

// Types lists every event type, for the admin API's filter checks.
var Types = []Type{
	LoginSucceeded, LoginFailed, LoginThrottled, TokenIssued, TokenRefreshed,
	TokenRevoked, RefreshReuseDetected, UserCreated, UserUpdated, UserLocked,
	UserUnlocked, UserDeleted, PasswordChanged, PasswordReset, ClientCreated,
	ClientUpdated, ClientDeleted, KeyRotated, KeyRotationScheduled, KeyRevoked,
	PasswordResetRequested, PasswordResetSent, PasswordResetUsed, PasswordResetFailed,
	EmailVerificationSent, EmailVerified, EmailVerificationFailed,
	SessionStarted, SessionEnded, MFAFailed, MFAEnrolled, MFAReset, RecoveryCodeUsed,
	ConsentGranted, ConsentRevoked,
}

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Event is a security event as the code that saw it reports it. It has no
// field for a password, token, secret or code, so none can reach the log or
// the audit table; identify a token by its jti or family id in Subject.
// The request id and client IP come from the request's context.
type Event struct {
	Type      Type
	Outcome   string // OutcomeSuccess or OutcomeFailure; default by Type
	Reason    string // a short snake_case code: bad_password, unknown_user, locked, ...
	Actor     string // who acted: the user id, client id or admin subject
	Subject   string // whom it concerns: a user id, client id, kid or token jti
	ClientID  string
	UserAgent string // r.UserAgent(); cut to 256 bytes
}

// warnEvents are logged at Warn: an attack or a lockout may be under way.
var warnEvents = map[Type]bool{
	LoginFailed: true, LoginThrottled: true, RefreshReuseDetected: true,
	UserLocked: true, KeyRevoked: true, PasswordResetFailed: true, MFAFailed: true,
}

// failureEvents default to OutcomeFailure.
var failureEvents = map[Type]bool{
	LoginFailed: true, LoginThrottled: true, RefreshReuseDetected: true, MFAFailed: true,
	PasswordResetFailed: true, EmailVerificationFailed: true,
}

// Auditor writes each security event both as a structured log record and
// as an audit row. Writing the row never fails the request: an error is
// logged and the request goes on.
type Auditor struct {
	store     Store
	log       *slog.Logger
	now       func() time.Time
	retention time.Duration

	// Group commit: one writer goroutine at a time takes every row queued
	// so far and writes it in one statement; rows recorded meanwhile wait
	// for the next write. queued and written count rows, for Flush.
	mu      sync.Mutex
	cond    sync.Cond // broadcast after each write
	queue   []auditEntry
	writing bool
	queued  uint64
	written uint64
	waiting int           // queued rows whose caller waits for the write (Record)
	wake    chan struct{} // ends the writer's gathering pause early
}

// auditEntry is one queued row; done, when not nil, hears how its write
// went.
type auditEntry struct {
	row  storage.AuditEvent
	done chan error
}

// maxAuditBatch caps the rows of one write (10 parameters each).
const maxAuditBatch = 256

// auditGather is how long the writer lets rows of RecordAsync gather
// before a write, unless a caller waits for its row or a full batch is
// queued: a write (statement, commit, WAL append on SQLite) costs far more
// than a row in it, and under load the writes of one or two rows each took
// a third of the server's CPU (client_credentials with ES256 keys on one
// core: 6,100 tokens/s with a write per gap, 10,200/s gathering).
const auditGather = 5 * time.Millisecond

// maxAuditQueue bounds the rows RecordAsync leaves behind: past it,
// RecordAsync waits for room (the next write's batch leaving the queue), so
// a slow database slows the requests instead of filling memory (a queued
// row is about 300 bytes: 20 MiB at most). It holds seconds of traffic
// because single audit writes do take seconds: on PostgreSQL sharing one
// saturated core with the server, the writer's INSERTs took 1.5-3.8 s now
// and then (client_credentials at 1,000/s), and a queue of 4,096 rows
// filled and held the requests behind them.
const maxAuditQueue = 1 << 16

// DefaultRetention is how long audit rows are kept by default.
const DefaultRetention = 90 * 24 * time.Hour

// New returns an Auditor keeping rows for retention (default
// DefaultRetention). now and log may be nil. Records carry the
// request_id and client_ip of their context whether or not log was built
// with LogHandler.
func New(store Store, log *slog.Logger, now func() time.Time, retention time.Duration) *Auditor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = slog.New(web.LogHandler(log.Handler()))
	if now == nil {
		now = time.Now
	}
	if retention <= 0 {
		retention = DefaultRetention
	}
	a := &Auditor{store: store, log: log, now: now, retention: retention, wake: make(chan struct{}, 1)}
	a.cond.L = &a.mu
	return a
}

// auditWriteTimeout bounds the row write; it outlives a client that hung
// up. It is a request's own bound (idp's requestTimeout): with 2 s, rows
// were given up while PostgreSQL, sharing a saturated core, took 2-4 s for
// one write, and each write given up also closed its connection (lib/pq
// cancels by discarding it), whose replacement then started on that core.
const auditWriteTimeout = 10 * time.Second

// Record logs e and stores it as an audit row, returning once the row is
// written (or its write failed, which is logged).
func (a *Auditor) Record(ctx context.Context, e Event) {
	a.queueRow(ctx, a.logEvent(ctx, e), true)
}

// RecordAsync logs e like Record and queues its row without waiting for
// the write: the request answers while the row is written with the rows
// of other requests. The log record is written before it returns, so the
// event is on record either way; the row follows within one write, and
// Flush waits for it. A crash may lose rows still queued (at most
// maxAuditQueue); past that many, RecordAsync waits for room in the queue.
func (a *Auditor) RecordAsync(ctx context.Context, e Event) {
	a.queueRow(ctx, a.logEvent(ctx, e), false)
}

// Flush returns once every row queued before the call is written (or its
// write failed). The server calls it on shutdown and before listing rows.
func (a *Auditor) Flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for target := a.queued; a.written < target; {
		a.cond.Wait()
	}
}

// logEvent fills in e's defaults, writes its log record and returns its row.
func (a *Auditor) logEvent(ctx context.Context, e Event) storage.AuditEvent {
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
		if failureEvents[e.Type] {
			e.Outcome = OutcomeFailure
		}
	}
	row := storage.AuditEvent{
		At:        storage.At(a.now()),
		Type:      web.Truncate(string(e.Type), 64),
		Actor:     web.Truncate(e.Actor, 256),
		Subject:   web.Truncate(e.Subject, 256),
		ClientID:  web.Truncate(e.ClientID, 128),
		IP:        web.ClientIP(ctx),
		UserAgent: web.Truncate(e.UserAgent, 256),
		RequestID: web.RequestID(ctx),
		Outcome:   web.Truncate(e.Outcome, 32),
		Reason:    web.Truncate(e.Reason, 64),
	}
	level := slog.LevelInfo
	if warnEvents[e.Type] {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("event", row.Type), slog.String("outcome", row.Outcome)}
	for _, kv := range []struct{ k, v string }{
		{"reason", row.Reason}, {"actor", row.Actor}, {"subject", row.Subject},
		{"client_id", row.ClientID}, {"user_agent", row.UserAgent},
	} {
		if kv.v != "" {
			attrs = append(attrs, slog.String(kv.k, kv.v))
		}
	}
	a.log.LogAttrs(ctx, level, row.Type, attrs...)
	return row
}

// queueRow queues row, starts the writer if none runs, and, when wait is
// set, waits for the row's write and logs its failure. A row that need not
// wait first waits, while the queue is full, for room in it: the writer
// makes room as it takes each batch, so that wait is at most one write.
// (Waiting for the row's own write, as it once did, waited for the whole
// queue ahead of it, 16 writes, and made each such row a durable write:
// client_credentials at 3,900/s on PostgreSQL sharing one core, max 1.4 s
// when autovacuum slowed the audit INSERTs.)
func (a *Auditor) queueRow(ctx context.Context, row storage.AuditEvent, wait bool) {
	a.mu.Lock()
	for !wait && len(a.queue) >= maxAuditQueue {
		a.cond.Wait() // a writer runs: the queue is not empty
	}
	var done chan error
	if wait {
		done = make(chan error, 1)
	}
	a.queue = append(a.queue, auditEntry{row: row, done: done})
	a.queued++
	if done != nil {
		a.waiting++
		select { // a writer gathering rows writes now
		case a.wake <- struct{}{}:
		default:
		}
	}
	start := !a.writing
	a.writing = true
	a.mu.Unlock()
	if start {
		go a.write()
	}
	if done == nil {
		return
	}
	if err := <-done; err != nil {
		a.log.ErrorContext(ctx, "audit write failed", "event", row.Type, "err", err)
	}
}

// write writes queued rows, up to maxAuditBatch per statement, until the
// queue is empty. Concurrent requests so share one write (on SQLite, one
// turn of the write lock), and no row waits on more than the write before
// its own.
func (a *Auditor) write() {
	gather := time.NewTimer(auditGather)
	defer gather.Stop()
	for {
		a.mu.Lock()
		if a.waiting == 0 && len(a.queue) < maxAuditBatch {
			a.mu.Unlock()
			gather.Reset(auditGather)
			select {
			case <-gather.C:
			case <-a.wake:
			}
			a.mu.Lock()
		}
		if len(a.queue) == 0 {
			a.writing = false
			a.mu.Unlock()
			return
		}
		n := min(len(a.queue), maxAuditBatch)
		batch := a.queue[:n:n]
		a.queue = a.queue[n:]
		for _, b := range batch {
			if b.done != nil {
				a.waiting--
			}
		}
		if len(a.queue) == 0 {
			a.queue = nil // let the backing array go
		}
		a.cond.Broadcast() // room for rows waiting on a full queue
		a.mu.Unlock()

		rows := make([]*storage.AuditEvent, len(batch))
		durable := false // a row of Record: its caller waits for it to be on disk
		for i := range batch {
			rows[i] = &batch[i].row
			durable = durable || batch[i].done != nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
		err := a.store.AppendAudits(ctx, rows, durable)
		cancel()
		async, reqID := 0, ""
		for _, b := range batch {
			if b.done != nil {
				b.done <- err
			} else if async++; reqID == "" {
				reqID = b.row.RequestID
			}
		}
		if err != nil && async > 0 {
			a.log.Error("audit write failed", "rows", async, "request_id", reqID, "err", err)
		}

		a.mu.Lock()
		a.written += uint64(n)
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

// Run deletes audit rows older than the retention period, now and then
// hourly, until ctx ends.
func (a *Auditor) Run(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if _, err := a.Prune(ctx); err != nil && ctx.Err() == nil {
			a.log.ErrorContext(ctx, "delete old audit events", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Prune deletes audit rows older than the retention period once and
// returns how many it deleted.
func (a *Auditor) Prune(ctx context.Context) (int64, error) {
	return a.store.DeleteAuditBefore(ctx, a.now().Add(-a.retention))
}
