package idp

import (
	"context"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/web"
)

// healthz answers while the process serves HTTP (liveness).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 only when the database answers and an active signing
// key is loaded (readiness).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "keys": "ok"}
	status := http.StatusOK
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
