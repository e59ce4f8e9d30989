package idp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRequireForwardedHTTPS (TE-01): with RequireForwardedHTTPS, every
// route but the probes answers a plain-HTTP request with 400
// invalid_request, no-store and no Location, before routing (so no 301 and
// no 404); a trusted proxy's https request goes through; without the field
// nothing changes.
func TestRequireForwardedHTTPS(t *testing.T) {
	s := newProtectServer(t, storagetest.OpenSQLite(t), func(c *idp.Config) {
		c.RequireForwardedHTTPS = true
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	h := s.Handler()
	send := func(method, path, remote, proto string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = remote
		if proto != "" {
			r.Header.Set("X-Forwarded-Proto", proto)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const proxy, stranger = "10.0.0.7:40000", "192.0.2.1:40000"
	tests := []struct {
		name                 string
		method, path, remote string
		proto                string
		wantStatus           int
		wantCode             string // the OAuth error; "" for none
	}{
		{"token, no header", http.MethodPost, "/oauth2/token", proxy, "", 400, web.ErrInvalidRequest},
		{"token, http", http.MethodPost, "/oauth2/token", proxy, "http", 400, web.ErrInvalidRequest},
		{"token, untrusted https", http.MethodPost, "/oauth2/token", stranger, "https", 400, web.ErrInvalidRequest},
		{"token, trusted https", http.MethodPost, "/oauth2/token", proxy, "https", 401, web.ErrInvalidClient},
		{"unclean path", http.MethodPost, "//oauth2/token", stranger, "", 400, web.ErrInvalidRequest},
		{"unknown path", http.MethodGet, "/nope", stranger, "", 400, web.ErrInvalidRequest},
		{"wrong method", http.MethodGet, "/oauth2/token", stranger, "", 400, web.ErrInvalidRequest},
		{"discovery", http.MethodGet, "/.well-known/openid-configuration", stranger, "", 400, web.ErrInvalidRequest},
		{"metrics on the main listener", http.MethodGet, "/metrics", stranger, "", 400, web.ErrInvalidRequest},
		{"discovery, trusted https", http.MethodGet, "/.well-known/openid-configuration", proxy, "https", 200, ""},
		{"healthz", http.MethodGet, "/healthz", stranger, "", 200, ""},
		{"readyz", http.MethodGet, "/readyz", stranger, "", 200, ""},
		{"healthz, wrong method", http.MethodDelete, "/healthz", stranger, "", 405, web.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := send(tt.method, tt.path, tt.remote, tt.proto)
			var body map[string]any
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tt.wantStatus || (tt.wantCode != "" && body["error"] != tt.wantCode) {
				t.Fatalf("%d %s, want %d %s", w.Code, w.Body.String(), tt.wantStatus, tt.wantCode)
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Fatalf("Location: %s", loc)
			}
			if w.Code == http.StatusBadRequest {
				if body["error_description"] != "HTTPS required" || w.Header().Get("Cache-Control") != "no-store" ||
					w.Header().Get("Content-Type") != web.ContentTypeJSON || w.Header().Get("X-Request-Id") == "" {
					t.Fatalf("refusal %v %s", w.Header(), w.Body.String())
				}
			}
		})
	}

	// Refusals are counted, under a label of their own.
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.RemoteAddr = proxy
	r.Header.Set("X-Forwarded-Proto", "https")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	want := `keyward_http_requests_total{code="400",endpoint="https_required",method="POST"} 4`
	if !strings.Contains(w.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// Off by default.
	plain := newProtectServer(t, storagetest.OpenSQLite(t), nil).Handler()
	w = httptest.NewRecorder()
	plain.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("without RequireForwardedHTTPS: %d %s", w.Code, w.Body.String())
	}
}
