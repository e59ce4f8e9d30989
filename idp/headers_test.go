package idp_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// wantHSTS is TH-02's header at the default max-age (one year).
const wantHSTS = "max-age=31536000; includeSubDomains"

// evilOrigin is the Origin every snapshot request sends (TH-05).
const evilOrigin = "https://evil.test"

// snapshotHeaders are the headers the snapshot compares exactly: present
// with the one wanted value, or absent.
var snapshotHeaders = []string{
	"X-Content-Type-Options", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy",
	"Strict-Transport-Security", "Cache-Control", "Pragma", "Content-Type",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers", "Access-Control-Expose-Headers",
	"Server", "X-Powered-By", "X-AspNet-Version", "Via",
}

// versions finds a version banner in a body or header (TH-07): a Go
// release, Go's HTTP client or server name, or a library of ours by name.
var versions = regexp.MustCompile(`(?i)\bgo ?1\.\d|go-http|golang|gorilla|prometheus|go-jose|go-oidc|sqlx|lib/pq|modernc|keyward/v?\d|\bv\d+\.\d+\.\d+`)

// boomStore fails the lookup of client "BOOM" with an error that is neither
// "not found" nor "unavailable": the fault behind a 500.
type boomStore struct{ idp.Store }

func (s boomStore) Client(ctx context.Context, id string) (storage.Client, error) {
	if id == "BOOM" {
		return storage.Client{}, errors.New("boom: the client table is on fire")
	}
	return s.Store.Client(ctx, id)
}

// overloadedOn is a hasher whose queue is full for one password only, so
// one request gets 503 while every other login works.
type overloadedOn struct {
	oauth.PasswordHasher
	pw string
}

func (h overloadedOn) Verify(ctx context.Context, pw, enc string) (bool, bool, error) {
	if pw == h.pw {
		return false, false, &password.OverloadError{RetryAfter: 3 * time.Second, QueueFull: true}
	}
	return h.PasswordHasher.Verify(ctx, pw, enc)
}

const overloadPassword = "this password finds the hashing queue full"

// transport is how the snapshot's requests reach the server.
type transport struct {
	name  string
	https bool // reached Keyward over TLS: HSTS expected
}

var (
	plainLoopback = transport{"plain HTTP, loopback issuer", false}
	forwardedTLS  = transport{"trusted proxy, X-Forwarded-Proto https", true}
	directTLS     = transport{"direct TLS", true}
)

// snapshotEnv is the admin env every snapshot case runs on, reached as tr
// says: registration on, client "BOOM" failing with 500, alice's
// overloadPassword answered 503, and two client-authentication failures
// enough for a 429.
func snapshotEnv(t *testing.T, b storagetest.Backend, tr transport) *idptest.Admin {
	t.Helper()
	change := func(c *idp.Config) {
		c.Registration = true
		c.Store = boomStore{c.Store}
		c.Passwords = overloadedOn{c.Passwords, overloadPassword}
		c.Throttle.ClientFailures = 2
		if tr.https {
			c.Issuer = "https://id.keyward.test"
		}
		if tr == forwardedTLS {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
			c.RequireForwardedHTTPS = true // as serve sets it for an https issuer without a certificate
		}
	}
	e := idptest.NewAdmin(t, b, change)
	if tr == directTLS {
		ts := httptest.NewTLSServer(e.Srv.Handler())
		t.Cleanup(ts.Close)
		e.URL, e.Client = ts.URL, ts.Client()
	}
	return e
}

// metricsContentType stands for promhttp's text/plain; version=…; charset=utf-8.
const metricsContentType = "text/plain; version=…; charset=utf-8"

// cacheKind is what a response says about caching (TH-03).
type cacheKind int

const (
	private     cacheKind = iota // Cache-Control: no-store and Pragma: no-cache (web.NoStore)
	noStoreOnly                  // Cache-Control: no-store, the middleware's default
	public                       // the JWKS and metadata: public, max-age=300
)

// TestSecurityHeaders is the header snapshot (TH-02, TH-03, TH-04, TH-05,
// TH-07) over every route family, 2xx and errors, reached over plain HTTP
// on loopback, through a trusted TLS-terminating proxy, and over TLS
// Keyward terminates itself. Every request carries Origin: evilOrigin. Each
// answer has exactly the wanted value, once, of each of snapshotHeaders:
// nosniff, the API CSP, X-Frame-Options DENY and Referrer-Policy
// no-referrer everywhere; HSTS on exactly the TLS answers; no-store (with
// Pragma on the token, error and personal-data answers) except on the
// public JWKS and metadata; the JSON content types with charset=utf-8;
// Access-Control-Allow-Origin: * on the JWKS and metadata only, never with
// credentials, never the Origin reflected; no Server, X-Powered-By or Via;
// and no version string in any body but /metrics (whose go_info names the
// Go release, see TestMetricsNamesGoVersion).
func TestSecurityHeaders(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tr := range []transport{plainLoopback, forwardedTLS, directTLS} {
			t.Run(tr.name, func(t *testing.T) { testSecurityHeaders(t, b, tr) })
		}
	})
}

func testSecurityHeaders(t *testing.T, b storagetest.Backend, tr transport) {
	e := snapshotEnv(t, b, tr)
	send := func(r idptest.Request) idptest.Response {
		t.Helper()
		if r.Header == nil {
			r.Header = http.Header{}
		}
		r.Header.Set("Origin", evilOrigin)
		if tr == forwardedTLS {
			r.Header.Set("X-Forwarded-Proto", "https")
		}
		return e.Do(r)
	}
	tokenOf := func(client string, form url.Values) string {
		t.Helper()
		r := send(idptest.Request{Body: form.Encode(), Auth: e.Basic(client)})
		if r.Status != http.StatusOK {
			t.Fatalf("token for %s: %d %s", client, r.Status, r.Body)
		}
		return r.Str("access_token")
	}
	userAT := tokenOf("C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "openid profile read"))
	opsAT := tokenOf("OPS", idptest.CCForm())
	jwks := send(idptest.Request{Method: http.MethodGet, Path: "/.well-known/jwks.json"})
	etag := jwks.Header.Get("ETag")
	if jwks.Status != http.StatusOK || etag == "" {
		t.Fatalf("JWKS: %d, ETag %q", jwks.Status, etag)
	}
	// Two failed authentications of C2 from this address: its third is 429.
	for range 2 {
		if r := send(idptest.Request{Body: idptest.CCForm().Encode(), Auth: idptest.BasicHeader("C2", "wrong")}); r.Status != http.StatusUnauthorized {
			t.Fatalf("priming the client throttle: %d %s", r.Status, r.Body)
		}
	}
	preflight := http.Header{"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization, content-type"}}
	bearer := func(tok string) string { return "Bearer " + tok }

	tests := []struct {
		name        string
		req         idptest.Request
		wantStatus  int
		contentType string // "" means no Content-Type (no body)
		cache       cacheKind
		cors        bool // Access-Control-Allow-Origin: *
	}{
		// Token endpoint (TE, RFC 6749 §5).
		{"token 200", idptest.Request{Body: idptest.CCForm().Encode(), Auth: e.Basic("CC")}, 200, web.ContentTypeJSON, private, false},
		{"token 400 unsupported grant", idptest.Request{Body: "grant_type=magic", Auth: e.Basic("CC")}, 400, web.ContentTypeJSON, private, false},
		{"token 401 wrong secret", idptest.Request{Body: idptest.CCForm().Encode(), Auth: idptest.BasicHeader("CC", "wrong")}, 401, web.ContentTypeJSON, private, false},
		{"token 405 GET", idptest.Request{Method: http.MethodGet, ContentType: "-"}, 405, web.ContentTypeJSON, private, false},
		{"token 405 preflight", idptest.Request{Method: http.MethodOptions, ContentType: "-", Header: preflight.Clone()}, 405, web.ContentTypeJSON, private, false},
		{"token 413", idptest.Request{Body: padForm(t, idptest.CCForm().Encode(), idp.MaxOAuthBody+1), Auth: e.Basic("CC")}, 413, web.ContentTypeJSON, private, false},
		{"token 429 throttled client", idptest.Request{Body: idptest.CCForm().Encode(), Auth: idptest.BasicHeader("C2", "wrong")}, 429, web.ContentTypeJSON, private, false},
		{"token 500 store fault", idptest.Request{Body: idptest.CCForm().Encode(), Auth: idptest.BasicHeader("BOOM", "x")}, 500, web.ContentTypeJSON, private, false},
		{"token 503 hashing overload", idptest.Request{Body: idptest.PasswordForm("alice", overloadPassword).Encode(), Auth: e.Basic("C1")}, 503, web.ContentTypeJSON, private, false},
		// Revocation (RFC 7009) and introspection (RFC 7662).
		{"revoke 200", idptest.Request{Path: "/oauth2/revoke", Body: "token=garbage", Auth: e.Basic("CC")}, 200, "", private, false},
		{"revoke 401", idptest.Request{Path: "/oauth2/revoke", Body: "token=garbage"}, 401, web.ContentTypeJSON, private, false},
		{"introspect 200", idptest.Request{Path: "/oauth2/introspect", Body: "token=" + userAT, Auth: e.Basic("C1")}, 200, web.ContentTypeJSON, private, false},
		{"introspect 401", idptest.Request{Path: "/oauth2/introspect", Body: "token=" + userAT}, 401, web.ContentTypeJSON, private, false},
		// Userinfo (OIDC Core §5.3).
		{"userinfo 200", idptest.Request{Method: http.MethodGet, Path: "/userinfo", ContentType: "-", Auth: bearer(userAT)}, 200, web.ContentTypeJSON, private, false},
		{"userinfo 401", idptest.Request{Method: http.MethodGet, Path: "/userinfo", ContentType: "-"}, 401, web.ContentTypeJSON, private, false},
		{"userinfo 400 token in query", idptest.Request{Method: http.MethodGet, Path: "/userinfo", Query: "access_token=" + userAT, ContentType: "-"}, 400, web.ContentTypeJSON, private, false},
		// Public documents: the JWKS (RFC 7517) and the metadata (RFC 8414, OIDC Discovery).
		{"JWKS 200", idptest.Request{Method: http.MethodGet, Path: "/.well-known/jwks.json", ContentType: "-"}, 200, web.ContentTypeJWKSet, public, true},
		{"JWKS HEAD", idptest.Request{Method: http.MethodHead, Path: "/.well-known/jwks.json", ContentType: "-"}, 200, web.ContentTypeJWKSet, public, true},
		{"JWKS 304", idptest.Request{Method: http.MethodGet, Path: "/.well-known/jwks.json", ContentType: "-", Header: http.Header{"If-None-Match": {etag}}}, 304, "", public, true},
		{"JWKS 405 preflight", idptest.Request{Method: http.MethodOptions, Path: "/.well-known/jwks.json", ContentType: "-", Header: preflight.Clone()}, 405, web.ContentTypeJSON, private, false},
		{"openid-configuration", idptest.Request{Method: http.MethodGet, Path: "/.well-known/openid-configuration", ContentType: "-"}, 200, web.ContentTypeJSON, public, true},
		{"openid-configuration HEAD", idptest.Request{Method: http.MethodHead, Path: "/.well-known/openid-configuration", ContentType: "-"}, 200, web.ContentTypeJSON, public, true},
		{"oauth-authorization-server", idptest.Request{Method: http.MethodGet, Path: "/.well-known/oauth-authorization-server", ContentType: "-"}, 200, web.ContentTypeJSON, public, true},
		// Admin API: no CORS at all (TH-05).
		{"admin 200", idptest.Request{Method: http.MethodGet, Path: "/admin/v1/users", ContentType: "-", Auth: bearer(opsAT)}, 200, web.ContentTypeJSON, private, false},
		{"admin 201", idptest.Request{Method: http.MethodPost, Path: "/admin/v1/clients", ContentType: "application/json", Auth: bearer(opsAT),
			Body: `{"client_id":"snapshot","grant_types":["client_credentials"]}`}, 201, web.ContentTypeJSON, private, false},
		{"admin 400 bad JSON", idptest.Request{Method: http.MethodPost, Path: "/admin/v1/clients", ContentType: "application/json", Auth: bearer(opsAT), Body: `{`}, 400, web.ContentTypeJSON, private, false},
		{"admin 401 no token", idptest.Request{Method: http.MethodGet, Path: "/admin/v1/users", ContentType: "-"}, 401, web.ContentTypeJSON, private, false},
		{"admin 403 user token", idptest.Request{Method: http.MethodGet, Path: "/admin/v1/users", ContentType: "-", Auth: bearer(userAT)}, 403, web.ContentTypeJSON, private, false},
		{"admin 404", idptest.Request{Method: http.MethodGet, Path: "/admin/v1/users/nobody", ContentType: "-", Auth: bearer(opsAT)}, 404, web.ContentTypeJSON, private, false},
		{"admin 405 preflight", idptest.Request{Method: http.MethodOptions, Path: "/admin/v1/users", ContentType: "-", Header: preflight.Clone()}, 405, web.ContentTypeJSON, private, false},
		// Account API: no CORS either.
		{"account 400 bad JSON", idptest.Request{Path: "/account/password", ContentType: "application/json", Auth: bearer(userAT), Body: `[]`}, 400, web.ContentTypeJSON, private, false},
		{"account 401 no token", idptest.Request{Path: "/account/password", ContentType: "application/json", Body: `{}`}, 401, web.ContentTypeJSON, private, false},
		{"account 405 preflight", idptest.Request{Method: http.MethodOptions, Path: "/account/password", ContentType: "-", Header: preflight.Clone()}, 405, web.ContentTypeJSON, private, false},
		{"register 202", idptest.Request{Path: "/account/register", ContentType: "application/json",
			Body: idptest.JSONObject("username", "snapshot", "password", idptest.NewAlicePassword, "email", "snapshot@example.com")}, 202, web.ContentTypeJSON, private, false},
		// Operations.
		{"healthz", idptest.Request{Method: http.MethodGet, Path: "/healthz", ContentType: "-"}, 200, web.ContentTypeJSON, private, false},
		{"readyz", idptest.Request{Method: http.MethodGet, Path: "/readyz", ContentType: "-"}, 200, web.ContentTypeJSON, private, false},
		{"metrics", idptest.Request{Method: http.MethodGet, Path: "/metrics", ContentType: "-"}, 200, metricsContentType, noStoreOnly, false},
		{"healthz 405", idptest.Request{Method: http.MethodDelete, Path: "/healthz", ContentType: "-"}, 405, web.ContentTypeJSON, private, false},
		// Paths no route takes.
		{"404", idptest.Request{Method: http.MethodGet, Path: "/nope", ContentType: "-"}, 404, web.ContentTypeJSON, private, false},
		{"404 under /admin", idptest.Request{Method: http.MethodGet, Path: "/admin/v1/nope", ContentType: "-"}, 404, web.ContentTypeJSON, private, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.req)
			if r.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", r.Status, tt.wantStatus, r.Body)
			}
			want := map[string]string{
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"Content-Type":            tt.contentType,
			}
			if ct := r.Header.Get("Content-Type"); tt.contentType == metricsContentType &&
				strings.HasPrefix(ct, "text/plain; version=") && strings.Contains(ct, "; charset=utf-8") {
				want["Content-Type"] = ct // the Prometheus text format version is promhttp's business
			}
			if tr.https {
				want["Strict-Transport-Security"] = wantHSTS
			}
			switch tt.cache {
			case private:
				want["Cache-Control"], want["Pragma"] = "no-store", "no-cache"
			case noStoreOnly:
				want["Cache-Control"] = "no-store"
			case public:
				want["Cache-Control"] = "public, max-age=300"
			}
			if tt.cors {
				want["Access-Control-Allow-Origin"] = "*"
			}
			for _, k := range snapshotHeaders {
				got := r.Header.Values(k)
				switch w, ok := want[k]; {
				case !ok || w == "":
					if len(got) != 0 {
						t.Errorf("%s: %q, want none", k, got)
					}
				case len(got) != 1 || got[0] != w:
					t.Errorf("%s: %q, want %q", k, got, w)
				}
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			for k, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, evilOrigin) || versions.MatchString(v) {
						t.Errorf("header %s: %q", k, v)
					}
				}
			}
			if tt.req.Path != "/metrics" && versions.Match(r.Body) {
				t.Errorf("body names a version: %s", r.Body)
			}
			if tt.wantStatus >= 400 && idptest.Leaks.Match(r.Body) {
				t.Errorf("body leaks internals: %s", r.Body)
			}
		})
	}
}

// TestHSTS is when Strict-Transport-Security is sent (TH-02): on every
// answer, errors included, to a request that reached Keyward over TLS, and
// never on a plain-HTTP one, nor for a loopback issuer (a developer's
// machine), nor when HSTSMaxAge is negative.
func TestHSTS(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	const proxy, stranger = "10.0.0.7:40000", "192.0.2.1:40000"
	tests := []struct {
		name     string
		issuer   string
		maxAge   time.Duration
		require  bool // RequireForwardedHTTPS
		method   string
		path     string
		remote   string
		tls      bool
		proto    string // X-Forwarded-Proto
		wantCode int
		want     string
	}{
		{"direct TLS, token error", "https://id.example.test", 0, false, "POST", "/oauth2/token", stranger, true, "", 401, wantHSTS},
		{"direct TLS, JWKS", "https://id.example.test", 0, false, "GET", "/.well-known/jwks.json", stranger, true, "", 200, wantHSTS},
		{"direct TLS, metadata", "https://id.example.test", 0, false, "GET", "/.well-known/openid-configuration", stranger, true, "", 200, wantHSTS},
		{"direct TLS, 404", "https://id.example.test", 0, false, "GET", "/nope", stranger, true, "", 404, wantHSTS},
		{"trusted proxy, https", "https://id.example.test", 0, true, "POST", "/oauth2/token", proxy, false, "https", 401, wantHSTS},
		{"trusted proxy, https, healthz", "https://id.example.test", 0, true, "GET", "/healthz", proxy, false, "https", 200, wantHSTS},
		{"trusted proxy, http: refused without HSTS", "https://id.example.test", 0, true, "POST", "/oauth2/token", proxy, false, "http", 400, ""},
		{"untrusted peer claiming https", "https://id.example.test", 0, true, "POST", "/oauth2/token", stranger, false, "https", 400, ""},
		{"plain HTTP probe", "https://id.example.test", 0, true, "GET", "/healthz", stranger, false, "", 200, ""},
		{"plain HTTP, no RequireForwardedHTTPS", "https://id.example.test", 0, false, "GET", "/.well-known/jwks.json", stranger, false, "", 200, ""},
		{"two years", "https://id.example.test", 2 * 365 * 24 * time.Hour, false, "GET", "/healthz", stranger, true, "", 200, "max-age=63072000; includeSubDomains"},
		{"turned off", "https://id.example.test", -1, false, "GET", "/healthz", stranger, true, "", 200, ""},
		{"localhost issuer over TLS", "https://localhost:8443", 0, false, "GET", "/healthz", stranger, true, "", 200, ""},
		{"127.0.0.1 issuer over TLS", "https://127.0.0.1:8443", 0, false, "GET", "/healthz", stranger, true, "", 200, ""},
		{"::1 issuer over TLS", "https://[::1]:8443", 0, false, "GET", "/healthz", stranger, true, "", 200, ""},
		{"dev.localhost issuer over TLS", "https://dev.localhost", 0, false, "GET", "/healthz", stranger, true, "", 200, ""},
		{"loopback HTTP dev server", "http://localhost:8080", 0, false, "GET", "/healthz", "127.0.0.1:40000", false, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProtectServer(t, db, func(c *idp.Config) {
				c.Issuer, c.HSTSMaxAge, c.RequireForwardedHTTPS, c.TrustedProxies = tt.issuer, tt.maxAge, tt.require, proxies
			}).Handler()
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader("grant_type=client_credentials"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = tt.remote
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.wantCode, w.Body)
			}
			if got := w.Header().Values("Strict-Transport-Security"); (tt.want == "" && len(got) != 0) ||
				(tt.want != "" && (len(got) != 1 || got[0] != tt.want)) {
				t.Fatalf("Strict-Transport-Security %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNoBannerFromNetHTTP covers the answers net/http writes itself, before
// Keyward's handler runs (TH-07): a malformed request, one without Host, and
// plain HTTP sent to the TLS port. They carry no Server header and no version.
func TestNoBannerFromNetHTTP(t *testing.T) {
	h := newProtectServer(t, storagetest.OpenSQLite(t), nil).Handler()
	plain := httptest.NewServer(h)
	defer plain.Close()
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error is the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	tests := []struct {
		name, addr, raw string
	}{
		{"malformed request line", plain.Listener.Addr().String(), "GARBAGE\r\n\r\n"},
		{"no Host", plain.Listener.Addr().String(), "GET /healthz HTTP/1.1\r\n\r\n"},
		{"bad header", plain.Listener.Addr().String(), "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"},
		{"plain HTTP to the TLS port", tlsSrv.Listener.Addr().String(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", tt.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%s)", res.StatusCode, body)
			}
			for _, k := range []string{"Server", "X-Powered-By"} {
				if v := res.Header.Values(k); len(v) != 0 {
					t.Errorf("%s: %q", k, v)
				}
			}
			if versions.Match(body) {
				t.Errorf("body names a version: %s", body)
			}
		})
	}
}

// TestMetricsNamesGoVersion records the one place a version is served:
// /metrics's go_info{version="go1.…"}, the Prometheus convention that
// dashboards rely on. It is why /metrics belongs on its own listener
// (HideMetrics, serve --metrics-addr; AD-09).
func TestMetricsNamesGoVersion(t *testing.T) {
	w := get(t, newProtectServer(t, storagetest.OpenSQLite(t), nil).Handler(), http.MethodGet, "/metrics")
	if !strings.Contains(w.Body.String(), `go_info{version="go1.`) {
		t.Fatalf("/metrics has no go_info version; TH-07's note in docs/security.md is out of date")
	}
	hidden := get(t, newProtectServer(t, storagetest.OpenSQLite(t), func(c *idp.Config) { c.HideMetrics = true }).Handler(), http.MethodGet, "/metrics")
	if hidden.Code != http.StatusNotFound || versions.Match(hidden.Body.Bytes()) {
		t.Fatalf("with HideMetrics: %d %s", hidden.Code, hidden.Body)
	}
}

// TestLoopbackHost is the issuer-host check that keeps HSTS off a
// developer's machine.
func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "localhost.": true, "app.localhost": true,
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "::ffff:127.0.0.1": true,
		"id.example.com": false, "localhost.example.com": false, "mylocalhost": false,
		"10.0.0.1": false, "192.0.2.1": false, "": false,
	} {
		if got := idp.LoopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
