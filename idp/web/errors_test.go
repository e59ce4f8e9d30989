package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/password"
)

// TestWriteErrorStatuses checks how causes map to the wire: a request that
// ran out of time (a busy database) or a full hashing queue is 503 with
// Retry-After, anything unknown is a generic 500, and nothing internal
// reaches the body.
func TestWriteErrorStatuses(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantRetry  bool
	}{
		{"deadline", fmt.Errorf("get client \"x\": %w", context.DeadlineExceeded), 503, ErrTemporarilyUnavail, true},
		{"overload", &Error{Code: ErrTemporarilyUnavail, Status: 503, RetryAfter: 2 * time.Second, Err: password.ErrOverloaded}, 503, ErrTemporarilyUnavail, true},
		{"unknown", errors.New("pq: relation \"users\" does not exist"), 500, ErrServerError, false},
		{"oauth", BadRequest("bad"), 400, ErrInvalidRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(log, w, httptest.NewRequest(http.MethodPost, "/oauth2/token", nil), tt.err)
			var body map[string]string
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tt.wantStatus || body["error"] != tt.wantCode {
				t.Fatalf("%d %v, want %d %s", w.Code, body, tt.wantStatus, tt.wantCode)
			}
			if (w.Header().Get("Retry-After") != "") != tt.wantRetry {
				t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("error without no-store")
			}
			for _, leak := range []string{"pq:", "relation", "deadline", "get client"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Fatalf("body leaks %q: %s", leak, w.Body.String())
				}
			}
		})
	}
}
