package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// syncBuffer is a log sink safe for the handlers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func jsonLogger(w *syncBuffer) *slog.Logger {
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
			var logs syncBuffer
			a := NewAuditor(db, jsonLogger(&logs), func() time.Time { return auditNow }, 0)
			ctx := requestCtx(t.Context(), "req-1", "192.0.2.1")
			a.Record(ctx, Event{Type: EventLoginFailed, Reason: "bad_password", Actor: "u-alice", Subject: "u-alice", ClientID: "app", UserAgent: "curl/8.5"})
			a.Record(ctx, Event{Type: EventTokenIssued, Subject: "u-alice", ClientID: "app"})
			a.Record(requestCtx(t.Context(), "req-2", "192.0.2.2"), Event{Type: EventKeyRotated, Actor: "scheduler", Subject: "kid-2"})

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
			if es, _ := db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(EventKeyRotated)}); len(es) != 1 || es[0].RequestID != "req-2" {
				t.Fatalf("key_rotated rows: %+v", es)
			}
		})
	}
}

// TestAuditLoggerNotDoubled: a logger already wrapped by LogHandler gets
// request_id and client_ip once, not twice.
func TestAuditLoggerNotDoubled(t *testing.T) {
	var logs syncBuffer
	log := slog.New(web.LogHandler(slog.NewJSONHandler(&logs, nil)))
	a := NewAuditor(storagetest.OpenSQLite(t), log, nil, 0)
	a.Record(requestCtx(t.Context(), "req-9", "192.0.2.9"), Event{Type: EventUserCreated, Subject: "u1"})
	if n := strings.Count(logs.String(), `"request_id"`); n != 1 {
		t.Fatalf("request_id appears %d times: %s", n, logs.String())
	}
}

func TestAuditWriteFailureDoesNotFailRequest(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	var logs syncBuffer
	a := NewAuditor(db, jsonLogger(&logs), nil, 0)
	db.Close()                                                             // a real fault: the database is gone
	a.Record(t.Context(), Event{Type: EventLoginSucceeded, Subject: "u1"}) // returns, does not panic
	if !strings.Contains(logs.String(), `"msg":"login_succeeded"`) || !strings.Contains(logs.String(), `"msg":"audit write failed"`) {
		t.Fatalf("log after a failed write:\n%s", logs.String())
	}
}

func TestAuditRetention(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	now := auditNow
	a := NewAuditor(db, nil, func() time.Time { return now }, 0)
	for _, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		now = auditNow.Add(-age)
		a.Record(t.Context(), Event{Type: EventTokenIssued, Subject: age.String()})
	}
	now = auditNow
	n, err := a.Prune(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Prune deleted %d, %v; want the 2 rows older than 90 days", n, err)
	}
	short := NewAuditor(db, nil, func() time.Time { return auditNow }, 2*time.Hour)
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
	seen := map[EventType]bool{}
	for _, e := range EventTypes {
		if seen[e] || e == "" || strings.ToLower(string(e)) != string(e) || strings.ContainsAny(string(e), " .-") {
			t.Errorf("event type %q is duplicate or not snake_case", e)
		}
		seen[e] = true
	}
	if len(EventTypes) != 20 {
		t.Errorf("%d event types, want 20", len(EventTypes))
	}
}

// TestAuditSecretScan drives a login through the server's middleware, the
// throttle, the audit trail and the metrics, with a known password, refresh
// token and client secret in the body, headers and query, and then searches
// every place those write to: none may hold a secret (LG-04).
func TestAuditSecretScan(t *testing.T) {
	const (
		password     = "correct-horse-Battery-staple-7731"
		refreshToken = "kwrt_Zm9vYmFyYmF6cXV4c2VjcmV0dG9rZW4"
		clientSecret = "kwcs_c2VjcmV0LWNsaWVudC1zZWNyZXQtOTk"
	)
	secrets := []string{password, refreshToken, clientSecret, url.QueryEscape(password)}
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := storagetest.Open(t, b.DSN(t))
			var logs syncBuffer
			s := newProtectServer(t, db, func(c *Config) {
				c.Log = jsonLogger(&logs)
				c.Throttle.IPFailures = 9 // reach the 429 path quickly
			})
			// A stand-in for the password grant, doing what it will do with
			// the throttle, the audit trail and the metrics.
			login := func(w http.ResponseWriter, r *http.Request) error {
				ctx := r.Context()
				if err := r.ParseForm(); err != nil {
					return web.BadRequest("bad form")
				}
				user, clientID := r.PostForm.Get("username"), r.PostForm.Get("client_id")
				d, err := s.Throttler().CheckLogin(ctx, user, web.ClientIP(ctx))
				if err != nil {
					return err
				}
				if err := d.Err(); err != nil {
					s.Auditor().Record(ctx, Event{Type: EventLoginThrottled, Reason: d.Kind, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					return err
				}
				if !d.Allowed() { // answer as a wrong password, count nothing
					s.Metrics().LoginFailure("throttled")
					s.Auditor().Record(ctx, Event{Type: EventLoginFailed, Reason: d.Kind, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					return &web.Error{Code: web.ErrInvalidGrant, Status: http.StatusBadRequest}
				}
				if r.PostForm.Get("password") == password {
					s.Throttler().LoginSucceeded(ctx, user, web.ClientIP(ctx))
					s.Auditor().Record(ctx, Event{Type: EventLoginSucceeded, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					s.Auditor().Record(ctx, Event{Type: EventTokenIssued, Subject: user, ClientID: clientID})
					web.WriteJSON(w, http.StatusOK, map[string]string{"refresh_token": refreshToken})
					return nil
				}
				s.Throttler().LoginFailed(ctx, user, web.ClientIP(ctx))
				s.Metrics().LoginFailure("bad_password")
				s.Auditor().Record(ctx, Event{Type: EventLoginFailed, Reason: "bad_password", Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
				return &web.Error{Code: web.ErrInvalidGrant, Status: http.StatusBadRequest}
			}
			r := mux.NewRouter()
			s.Routes(r)
			r.Use(s.metrics.Middleware)
			r.Handle("/test/login", web.Handle(s.log, login)).Methods(http.MethodPost)
			h := s.middleware(r)

			send := func(pw string) int {
				form := url.Values{"username": {"alice"}, "password": {pw}, "client_id": {"app"}, "client_secret": {clientSecret}}
				req := httptest.NewRequest(http.MethodPost, "/test/login?password="+url.QueryEscape(password)+"&refresh_token="+refreshToken, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer "+refreshToken)
				req.Header.Set("Cookie", "session="+clientSecret)
				req.Header.Set("User-Agent", "scanner-test/1.0")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w.Code
			}
			codes := map[int]int{}
			for range 3 {
				codes[send(password+"-wrong")]++
			}
			codes[send(password)]++
			for range 10 {
				codes[send(password+"-wrong")]++
			}
			if codes[http.StatusOK] != 1 || codes[http.StatusBadRequest] == 0 || codes[http.StatusTooManyRequests] == 0 {
				t.Fatalf("answers %v, want a success, failures and 429s", codes)
			}

			tables := map[string]string{}
			for _, table := range []string{"audit_events", "throttle_counters"} {
				rs, err := db.SQL().QueryxContext(t.Context(), `SELECT * FROM `+table)
				if err != nil {
					t.Fatal(err)
				}
				var all strings.Builder
				for rs.Next() {
					row := map[string]any{}
					if err := rs.MapScan(row); err != nil {
						t.Fatal(err)
					}
					for _, v := range row {
						if b, ok := v.([]byte); ok {
							v = string(b)
						}
						all.WriteString(strings.TrimSpace(strings.ReplaceAll(strings.ToValidUTF8(toString(v), ""), "\n", " ")) + "\n")
					}
				}
				rs.Close()
				tables[table] = all.String()
			}
			places := map[string]string{
				"log":     logs.String(),
				"metrics": get(t, h, http.MethodGet, "/metrics").Body.String(),
			}
			for k, v := range tables {
				places[k] = v
			}
			for where, text := range places {
				for _, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("%s contains a secret %.8s…", where, secret)
					}
				}
			}
			// And the scan did look at something.
			if !strings.Contains(tables["audit_events"], "token_issued") || !strings.Contains(tables["audit_events"], "login_throttled") || !strings.Contains(logs.String(), `"event":"login_failed"`) ||
				!strings.Contains(tables["audit_events"], "scanner-test/1.0") {
				t.Fatalf("nothing was recorded to scan:\nlog: %s\naudit: %s", logs.String(), tables["audit_events"])
			}
			if strings.Contains(tables["throttle_counters"], "alice") {
				t.Error("a throttle key holds the username in clear")
			}
		})
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
