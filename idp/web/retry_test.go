package web

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestBusy: a deadline and an unreachable database are "try again later",
// with WriteError's waits; any other error is not.
func TestBusy(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry time.Duration
		ok    bool
	}{
		{"deadline", fmt.Errorf("look up token: %w", context.DeadlineExceeded), time.Second, true},
		{"database gone", fmt.Errorf("look up token: %w", driver.ErrBadConn), 5 * time.Second, true},
		{"fault", errors.New("the token table is on fire"), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		retry, ok := Busy(tt.err)
		if retry != tt.retry || ok != tt.ok {
			t.Errorf("%s: Busy = %v, %v; want %v, %v", tt.name, retry, ok, tt.retry, tt.ok)
		}
	}
}
