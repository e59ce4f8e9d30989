package web

import (
	"context"
	"errors"
	"time"

	"github.com/keyward/keyward/storage"
)

// Busy reports whether err means "try again later" rather than a fault:
// the request outlived its deadline, or the database is unreachable. It
// returns the Retry-After WriteError sends for it (1 s, 5 s). The HTML
// pages (idp/ui), which cannot answer through WriteError, use it to show
// their "busy" page with the same status and wait.
func Busy(err error) (retryAfter time.Duration, ok bool) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return time.Second, true
	case storage.Unavailable(err):
		return 5 * time.Second, true
	}
	return 0, false
}
