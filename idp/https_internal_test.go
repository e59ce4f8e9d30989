package idp

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestNotHTTPS is the decision behind RequireForwardedHTTPS (TE-01): only
// TLS Keyward terminated itself, or a trusted peer saying exactly
// X-Forwarded-Proto: https, counts as HTTPS.
func TestNotHTTPS(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	tests := []struct {
		name   string
		remote string
		tls    bool
		protos []string
		xff    string
		https  bool
	}{
		{"direct TLS", "192.0.2.1:5000", true, nil, "", true},
		{"trusted proxy, https", "10.1.2.3:5000", false, []string{"https"}, "", true},
		{"trusted proxy, HTTPS", "10.1.2.3:5000", false, []string{"HTTPS"}, "", true},
		{"trusted proxy as mapped IPv6", "[::ffff:10.1.2.3]:5000", false, []string{"https"}, "", true},
		{"trusted proxy, no header", "10.1.2.3:5000", false, nil, "", false},
		{"trusted proxy, http", "10.1.2.3:5000", false, []string{"http"}, "", false},
		{"trusted proxy, empty", "10.1.2.3:5000", false, []string{""}, "", false},
		{"trusted proxy, two headers", "10.1.2.3:5000", false, []string{"https", "http"}, "", false},
		{"trusted proxy, list", "10.1.2.3:5000", false, []string{"https, http"}, "", false},
		{"trusted proxy, wss", "10.1.2.3:5000", false, []string{"wss"}, "", false},
		{"untrusted peer, https", "192.0.2.1:5000", false, []string{"https"}, "", false},
		{"untrusted peer naming a trusted hop", "192.0.2.1:5000", false, []string{"https"}, "10.1.2.3", false},
		{"unparsable peer", "@", false, []string{"https"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
			r.RemoteAddr = tt.remote
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, p := range tt.protos {
				r.Header.Add("X-Forwarded-Proto", p)
			}
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if why := s.notHTTPS(r); (why == "") != tt.https {
				t.Fatalf("notHTTPS = %q, want https %v", why, tt.https)
			}
		})
	}
}
