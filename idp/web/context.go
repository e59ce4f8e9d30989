package web

import (
	"context"
	"log/slog"
	"unicode/utf8"
)

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxClientIP
	ctxUserAgent
)

// WithRequest returns ctx carrying the request's id and client address; the
// server's middleware calls it once per request.
func WithRequest(ctx context.Context, requestID, clientIP string) context.Context {
	ctx = context.WithValue(ctx, ctxRequestID, requestID)
	return context.WithValue(ctx, ctxClientIP, clientIP)
}

// WithClientIP returns ctx carrying clientIP alone, for code that acts for
// a client outside a request (tests, tools).
func WithClientIP(ctx context.Context, clientIP string) context.Context {
	return context.WithValue(ctx, ctxClientIP, clientIP)
}

// WithUserAgent returns ctx carrying the request's User-Agent, cut to 256
// bytes, for audit events recorded below the handlers; the server's
// middleware calls it once per request.
func WithUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, ctxUserAgent, Truncate(ua, 256))
}

// UserAgent returns the User-Agent WithUserAgent stored, or "".
func UserAgent(ctx context.Context) string {
	ua, _ := ctx.Value(ctxUserAgent).(string)
	return ua
}

// RequestID returns the id the middleware gave the request, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxRequestID).(string)
	return id
}

// ClientIP returns the client address the middleware settled on, or "".
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(ctxClientIP).(string)
	return ip
}

// LogHandler wraps h so records logged with a request's context carry its
// request_id and client_ip. A handler it already wrapped is returned as is.
func LogHandler(h slog.Handler) slog.Handler {
	if c, ok := h.(ctxHandler); ok {
		return c
	}
	return ctxHandler{h}
}

type ctxHandler struct{ slog.Handler }

func (c ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if ip := ClientIP(ctx); ip != "" {
		r.AddAttrs(slog.String("client_ip", ip))
	}
	return c.Handler.Handle(ctx, r)
}

func (c ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{c.Handler.WithAttrs(as)}
}

func (c ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{c.Handler.WithGroup(name)}
}

// Truncate cuts s to at most n bytes at a rune boundary, for values bound
// for a log attribute, an audit row or a metric label.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
