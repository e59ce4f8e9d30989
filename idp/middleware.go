package idp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/web"
)

// requestTimeout bounds the work of one request (database waits included),
// well inside the HTTP server's 15 s write timeout, so a request stuck
// behind a busy database is answered 503 instead of dropped.
const requestTimeout = 10 * time.Second

// Request body caps (IN-01). Every Keyward request is a small form or JSON
// document: the OAuth endpoints take a few short parameters, the admin and
// account APIs somewhat larger JSON. A body past its cap is refused 413
// (parseForm, web.ReadJSONBody) after reading at most the cap plus one byte,
// and the connection is closed rather than drained.
const (
	maxBody       = 64 << 10 // admin, account and every other route
	maxOAuthBody  = 16 << 10 // /oauth2/*: token, revocation, introspection
	maxImportBody = 1 << 20  // /admin/v1/users/import: up to admin.MaxImportLines users
)

// bodyCap is the body cap of a request to path.
func bodyCap(path string) int64 {
	if strings.HasPrefix(path, "/oauth2/") {
		return maxOAuthBody
	}
	if path == "/admin/v1/users/import" {
		return maxImportBody
	}
	return maxBody
}

// middleware gives each request an id and a client IP in its context, caps
// the body, sets the security headers (securityHeaders), and turns a panic
// into a logged 500.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		ctx = web.WithRequest(ctx, id, s.clientIP(r))
		ctx = web.WithUserAgent(ctx, r.UserAgent())
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", id)
		s.securityHeaders(w.Header(), r)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, bodyCap(r.URL.Path))
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(ctx, "panic serving request", "path", r.URL.Path, "err", fmt.Sprint(v), "stack", string(debug.Stack()))
				web.WriteError(s.log, w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// apiCSP is the Content-Security-Policy of every response (TH-04, OWASP
// REST Security Cheat Sheet): Keyward serves JSON and text, never a page, so
// nothing may load from a response and no site may frame one.
const apiCSP = "default-src 'none'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries, before any
// handler runs, so error answers and routes added later get them too:
//
//   - X-Content-Type-Options: nosniff, Content-Security-Policy (apiCSP),
//     X-Frame-Options: DENY for older browsers, Referrer-Policy: no-referrer
//     (TH-04, ASVS 3.4.3-3.4.6);
//   - Cache-Control: no-store by default (TH-03); the public documents (the
//     JWKS and the metadata) replace it with their max-age, and the answers
//     that carry tokens, credentials or personal data add Pragma: no-cache
//     (web.NoStore);
//   - Strict-Transport-Security when the request reached Keyward over TLS
//     (TH-02, see hstsFor).
//
// No CORS header is set here: only the JWKS and the metadata allow any
// origin, without credentials (TH-05). Go sends no Server header and
// Keyward adds none, nor X-Powered-By (TH-07).
func (s *Server) securityHeaders(h http.Header, r *http.Request) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", apiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if v := s.hstsFor(r); v != "" {
		h.Set("Strict-Transport-Security", v)
	}
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientIP is the peer address, unless the peer is a trusted proxy: then the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	hops := strings.Split(strings.Join(xff, ","), ",")
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-32; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
