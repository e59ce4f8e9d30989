package login

import (
	"context"
	"time"
)

// DefaultCleanupInterval is how often RunCleanup deletes.
const DefaultCleanupInterval = 10 * time.Minute

// Cleanup deletes the login sessions that expired or were revoked more
// than a day ago (kept that long for the admin's and the audit's sake).
func (h *Handler) Cleanup(ctx context.Context) (int64, error) {
	return h.cfg.Store.DeleteExpiredLoginSessions(ctx, h.now().Add(-24*time.Hour))
}

// RunCleanup calls Cleanup every interval (default
// DefaultCleanupInterval) until ctx ends; cmd/keyward runs it beside the
// token cleanup.
func (h *Handler) RunCleanup(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultCleanupInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := h.Cleanup(ctx); err != nil && ctx.Err() == nil {
			h.cfg.Log.ErrorContext(ctx, "delete expired login sessions", "err", err)
		} else if n > 0 {
			h.cfg.Log.DebugContext(ctx, "deleted expired login sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
