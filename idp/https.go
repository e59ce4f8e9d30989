package idp

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/idp/web"
)

// probePaths answer over plain HTTP even under RequireForwardedHTTPS, so an
// orchestrator can probe the listener directly: liveness and readiness say
// nothing secret and take no credentials.
var probePaths = map[string]bool{"/healthz": true, "/readyz": true}

// errHTTPSRequired is the answer to a request that did not come over TLS:
// a 400 with an RFC 6749 §5.2 body, never a redirect (TE-01, RFC 6749 §3.2:
// the token endpoint requires TLS; a redirect would teach clients that
// sending credentials in clear first works).
func errHTTPSRequired(http.ResponseWriter, *http.Request) error {
	return web.BadRequest("HTTPS required")
}

// requireHTTPS wraps next, when Config.RequireForwardedHTTPS is set, so
// that every request except the probes must have reached Keyward over TLS
// (see notHTTPS). The check runs before routing, so no path (unknown ones,
// or ones the router would clean up with a 301) answers anything but 400.
// Refusals are counted under the endpoint label "https_required".
func (s *Server) requireHTTPS(next http.Handler) http.Handler {
	if !s.cfg.RequireForwardedHTTPS {
		return next
	}
	refuse := s.metrics.Endpoint("https_required", web.Handle(s.log, errHTTPSRequired))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := s.notHTTPS(r); why != "" && !probePaths[r.URL.Path] {
			s.log.WarnContext(r.Context(), "request refused: not https", "path", r.URL.Path, "reason", why)
			refuse.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// notHTTPS says why r did not come over TLS, or "" when it did: either
// Keyward terminated TLS itself (r.TLS), or the peer is one of
// Config.TrustedProxies and sent exactly one X-Forwarded-Proto, equal to
// https. Only the peer itself counts, never an address in X-Forwarded-For,
// which anyone can write. The reasons are for the log only.
func (s *Server) notHTTPS(r *http.Request) string {
	if r.TLS != nil {
		return ""
	}
	if peer, ok := peerAddr(r.RemoteAddr); !ok || !s.trusted(peer) {
		return "peer is not a trusted proxy"
	}
	switch protos := r.Header.Values("X-Forwarded-Proto"); {
	case len(protos) == 0:
		return "trusted proxy sent no X-Forwarded-Proto"
	case len(protos) > 1 || !strings.EqualFold(strings.TrimSpace(protos[0]), "https"):
		return "trusted proxy sent X-Forwarded-Proto other than https"
	}
	return ""
}

// peerAddr parses the address of the connection's peer, IPv4-mapped IPv6
// addresses unmapped.
func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// DefaultHSTSMaxAge is the Strict-Transport-Security max-age when
// Config.HSTSMaxAge is zero: one year, the least TH-02 (ASVS 3.4.1) accepts.
const DefaultHSTSMaxAge = 365 * 24 * time.Hour

// hstsHeader is the Strict-Transport-Security value (RFC 6797 §6.1) for an
// issuer host and a max-age: includeSubDomains always, preload never
// (preloading is the choice of whoever owns the registrable domain). It is
// "" (no header) for a negative maxAge, and for a loopback issuer host
// (localhost, *.localhost, 127.0.0.0/8, ::1): that is a developer's machine,
// where a year-long entry for localhost, which covers every port, would
// force https on every other local server the browser visits.
func hstsHeader(issuerHost string, maxAge time.Duration) string {
	if maxAge < 0 || loopbackHost(issuerHost) {
		return ""
	}
	return "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10) + "; includeSubDomains"
}

// loopbackHost reports whether host names only the local machine.
func loopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// hstsFor is the Strict-Transport-Security value for the answer to r (TH-02):
// the server's value when r reached Keyward over TLS, directly or through a
// trusted proxy that says so (notHTTPS), "" otherwise. Browsers ignore the
// header on a plain-HTTP answer (RFC 6797 §8.1), so it is not sent there.
func (s *Server) hstsFor(r *http.Request) string {
	if s.hsts == "" || s.notHTTPS(r) != "" {
		return ""
	}
	return s.hsts
}
