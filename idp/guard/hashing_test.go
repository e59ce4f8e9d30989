package guard

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
)

// TestHashingError: a full hashing queue is 503 temporarily_unavailable
// with a Retry-After of at least a second, keeping the cause for the log; a
// too-long password is 400; any other hasher error passes through as a
// server error.
func TestHashingError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantRetry  time.Duration
	}{
		{"queue full", &password.OverloadError{RetryAfter: 3 * time.Second, QueueFull: true}, http.StatusServiceUnavailable, web.ErrTemporarilyUnavail, 3 * time.Second},
		{"no retry hint", password.ErrOverloaded, http.StatusServiceUnavailable, web.ErrTemporarilyUnavail, time.Second},
		{"wrapped", fmt.Errorf("verify: %w", &password.OverloadError{}), http.StatusServiceUnavailable, web.ErrTemporarilyUnavail, time.Second},
		{"too long", password.ErrTooLong, http.StatusBadRequest, web.ErrInvalidRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var we *web.Error
			if !errors.As(HashingError(tt.err), &we) {
				t.Fatalf("HashingError(%v) is not a *web.Error", tt.err)
			}
			if we.Code != tt.wantCode || we.RetryAfter != tt.wantRetry {
				t.Errorf("got code %q retry %v, want %q %v", we.Code, we.RetryAfter, tt.wantCode, tt.wantRetry)
			}
			if we.Status != tt.wantStatus {
				t.Errorf("status %d, want %d", we.Status, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusServiceUnavailable && !errors.Is(we.Err, password.ErrOverloaded) {
				t.Errorf("the cause %v is lost", we.Err)
			}
		})
	}
	other := errors.New("disk on fire")
	if got := HashingError(other); got != other {
		t.Errorf("HashingError(other) = %v, want it unchanged", got)
	}
}
