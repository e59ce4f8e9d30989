package idp_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/testsupport"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

func jsonLogger(w *testsupport.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
			var logs testsupport.SyncBuffer
			s := newProtectServer(t, db, func(c *idp.Config) {
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
					s.Auditor().Record(ctx, audit.Event{Type: audit.LoginThrottled, Reason: d.Kind, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					return err
				}
				if !d.Allowed() { // answer as a wrong password, count nothing
					s.Metrics().LoginFailure("throttled")
					s.Auditor().Record(ctx, audit.Event{Type: audit.LoginFailed, Reason: d.Kind, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					return &web.Error{Code: web.ErrInvalidGrant, Status: http.StatusBadRequest}
				}
				if r.PostForm.Get("password") == password {
					s.Throttler().LoginSucceeded(ctx, user, web.ClientIP(ctx))
					s.Auditor().Record(ctx, audit.Event{Type: audit.LoginSucceeded, Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
					s.Auditor().Record(ctx, audit.Event{Type: audit.TokenIssued, Subject: user, ClientID: clientID})
					web.WriteJSON(w, http.StatusOK, map[string]string{"refresh_token": refreshToken})
					return nil
				}
				s.Throttler().LoginFailed(ctx, user, web.ClientIP(ctx))
				s.Metrics().LoginFailure("bad_password")
				s.Auditor().Record(ctx, audit.Event{Type: audit.LoginFailed, Reason: "bad_password", Subject: user, ClientID: clientID, UserAgent: r.UserAgent()})
				return &web.Error{Code: web.ErrInvalidGrant, Status: http.StatusBadRequest}
			}
			r := mux.NewRouter()
			s.Routes(r)
			r.Use(s.Metrics().Middleware)
			r.Handle("/test/login", web.Handle(idp.ServerLog(s), login)).Methods(http.MethodPost)
			h := idp.Middleware(s, r)

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
