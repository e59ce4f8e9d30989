package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// jsonLogger logs to w as JSON. The records these tests read are
// written before Record or Flush returns, so w needs no lock.
func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// requestCtx is the context the middleware gives a request.
func requestCtx(ctx context.Context, id, ip string) context.Context {
	return web.WithRequest(ctx, id, ip)
}

var auditNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAuditRecord(t *testing.T) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := storagetest.Open(t, b.DSN(t))
			var logs bytes.Buffer
			a := New(db, jsonLogger(&logs), func() time.Time { return auditNow }, 0)
			ctx := requestCtx(t.Context(), "req-1", "192.0.2.1")
			a.Record(ctx, Event{Type: LoginFailed, Reason: "bad_password", Actor: "u-alice", Subject: "u-alice", ClientID: "app", UserAgent: "curl/8.5"})
			a.Record(ctx, Event{Type: TokenIssued, Subject: "u-alice", ClientID: "app"})
			a.Record(requestCtx(t.Context(), "req-2", "192.0.2.2"), Event{Type: KeyRotated, Actor: "scheduler", Subject: "kid-2"})

			// The log: one JSON record per event, with the stable keys.
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d log records, want 3:\n%s", len(lines), logs.String())
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"level": "WARN", "msg": "login_failed", "event": "login_failed", "outcome": "failure",
				"reason": "bad_password", "actor": "u-alice", "subject": "u-alice", "client_id": "app",
				"user_agent": "curl/8.5", "request_id": "req-1", "client_ip": "192.0.2.1",
			}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("log %s = %v, want %v", k, rec[k], v)
				}
			}
			if !strings.Contains(lines[1], `"level":"INFO"`) || !strings.Contains(lines[1], `"outcome":"success"`) {
				t.Errorf("token_issued logged as %s", lines[1])
			}

			// The rows: the same facts, filtered through storage.
			es, err := db.AuditEvents(t.Context(), storage.AuditFilter{Subject: "u-alice"})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 2 || es[0].Type != "token_issued" || es[1].Type != "login_failed" {
				t.Fatalf("rows for u-alice: %+v", es)
			}
			got := es[1]
			if got.Outcome != "failure" || got.Reason != "bad_password" || got.IP != "192.0.2.1" || got.RequestID != "req-1" ||
				got.UserAgent != "curl/8.5" || got.ClientID != "app" || !got.At.Equal(auditNow) {
				t.Fatalf("row %+v", got)
			}
			if es, _ := db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(KeyRotated)}); len(es) != 1 || es[0].RequestID != "req-2" {
				t.Fatalf("key_rotated rows: %+v", es)
			}
		})
	}
}

// TestAuditLoggerNotDoubled: a logger already wrapped by LogHandler gets
// request_id and client_ip once, not twice.
func TestAuditLoggerNotDoubled(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(web.LogHandler(slog.NewJSONHandler(&logs, nil)))
	a := New(storagetest.OpenSQLite(t), log, nil, 0)
	a.Record(requestCtx(t.Context(), "req-9", "192.0.2.9"), Event{Type: UserCreated, Subject: "u1"})
	if n := strings.Count(logs.String(), `"request_id"`); n != 1 {
		t.Fatalf("request_id appears %d times: %s", n, logs.String())
	}
}

func TestAuditWriteFailureDoesNotFailRequest(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	var logs bytes.Buffer
	a := New(db, jsonLogger(&logs), nil, 0)
	db.Close()                                                        // a real fault: the database is gone
	a.Record(t.Context(), Event{Type: LoginSucceeded, Subject: "u1"}) // returns, does not panic
	if !strings.Contains(logs.String(), `"msg":"login_succeeded"`) || !strings.Contains(logs.String(), `"msg":"audit write failed"`) {
		t.Fatalf("log after a failed write:\n%s", logs.String())
	}
}

func TestAuditRetention(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	now := auditNow
	a := New(db, nil, func() time.Time { return now }, 0)
	for _, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		now = auditNow.Add(-age)
		a.Record(t.Context(), Event{Type: TokenIssued, Subject: age.String()})
	}
	now = auditNow
	n, err := a.Prune(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Prune deleted %d, %v; want the 2 rows older than 90 days", n, err)
	}
	short := New(db, nil, func() time.Time { return auditNow }, 2*time.Hour)
	if n, _ := short.Prune(t.Context()); n != 1 {
		t.Fatalf("a 2h retention deleted %d rows, want 1", n)
	}
}

// TestAuditEventHasNoSecretField: the Event type cannot carry a secret.
func TestAuditEventHasNoSecretField(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Event](), reflect.TypeFor[storage.AuditEvent]()} {
		for f := range typ.Fields() {
			name := strings.ToLower(f.Name)
			for _, bad := range []string{"password", "token", "secret", "code", "hash", "authorization"} {
				if strings.Contains(name, bad) {
					t.Errorf("%s has a field %s", typ, f.Name)
				}
			}
		}
	}
	seen := map[Type]bool{}
	for _, e := range Types {
		if seen[e] || e == "" || strings.ToLower(string(e)) != string(e) || strings.ContainsAny(string(e), " .-") {
			t.Errorf("event type %q is duplicate or not snake_case", e)
		}
		seen[e] = true
	}
	if len(Types) != 35 { // 20, issue 14's 7 for the mail flows, issue 15's 8 for browser sign-in
		t.Errorf("%d event types, want 35", len(Types))
	}
}

// TestAuditGathersAsyncRows: rows recorded a millisecond apart with
// RecordAsync share writes (auditGather) instead of each taking its own.
func TestAuditGathersAsyncRows(t *testing.T) {
	var c storage.StatementCounter
	db := storagetest.Open(t, storagetest.SQLiteDSN(t), storage.WithCounter(&c))
	a := New(db, nil, nil, 0)
	const rows = 20
	before := c.Counts()
	for range rows {
		a.RecordAsync(t.Context(), Event{Type: TokenIssued, Actor: "gather", ClientID: "c"})
		time.Sleep(time.Millisecond)
	}
	a.Flush()
	writes := c.Counts().Sub(before).Statements
	t.Logf("%d rows recorded 1 ms apart: %d writes", rows, writes)
	if writes >= rows {
		t.Errorf("%d rows took %d writes: async rows do not gather", rows, writes)
	}
}

// TestAuditSlowWriteLands: a row whose write waits several seconds on a
// busy PostgreSQL (here, a lock on audit_events held for 3 s) is stored,
// not given up: the write's timeout (auditWriteTimeout) is the request's,
// not a fraction of it.
func TestAuditSlowWriteLands(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	db := storagetest.Open(t, dsn)
	var logs bytes.Buffer
	a := New(db, jsonLogger(&logs), nil, 0)
	lock, err := db.SQL().BeginTxx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(t.Context(), `LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(3*time.Second, func() { lock.Commit() })
	defer release.Stop()
	a.RecordAsync(t.Context(), Event{Type: TokenIssued, Actor: "slow-async"})
	a.Record(t.Context(), Event{Type: LoginFailed, Actor: "slow-durable"})
	a.Flush()
	if strings.Contains(logs.String(), "audit write failed") {
		t.Fatalf("a write slowed by 3 s gave up:\n%s", logs.String())
	}
	got, err := db.AuditEvents(t.Context(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("stored %d rows, want the 2 slowed ones", len(got))
	}
}
