package idp

import (
	"log/slog"
	"net/http"
)

// What the assembly's external tests (package idp_test) need of its
// private parts: the body caps and the loopback rule.
const (
	MaxBody      = maxBody
	MaxOAuthBody = maxOAuthBody
)

var (
	BodyCap      = bodyCap
	LoopbackHost = loopbackHost
)

// ServerLog is s's logger, for a test route bound beside the real ones.
func ServerLog(s *Server) *slog.Logger { return s.log }

// Middleware wraps next in s's shared middleware, as Handler does.
func Middleware(s *Server, next http.Handler) http.Handler { return s.middleware(next) }
