package idp

import (
	"context"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/web"
)

// Drain marks the server as shutting down: from then on /readyz answers 503
// with the check "shutdown": "draining", so load balancers stop sending new
// requests, while every other route keeps serving until the HTTP server
// itself is shut down. It cannot be undone.
func (s *Server) Drain() { s.draining.Store(true) }

// healthz answers while the process serves HTTP (liveness).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 only when the database answers, an active signing key
// is loaded and the server is not draining (readiness).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "keys": "ok"}
	status := http.StatusOK
	if s.draining.Load() {
		checks["shutdown"], status = "draining", http.StatusServiceUnavailable
	}
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness: database", "err", err)
		checks["database"], status = "unavailable", http.StatusServiceUnavailable
	}
	if err := s.cfg.Keys.Ready(); err != nil {
		checks["keys"], status = "unavailable", http.StatusServiceUnavailable
	}
	web.NoStore(w)
	web.WriteJSON(w, status, map[string]any{"status": map[bool]string{true: "ready", false: "unavailable"}[status == http.StatusOK], "checks": checks})
	return nil
}
