package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHeaderSizeCap (IN-02, AC-H6) sends oversized request headers to a
// real keyward serve over a raw connection: a 100 KiB Cookie, 10,000 small
// headers, a 64 KiB Bearer token and a 24 KiB Cookie (over serve's 16 KiB MaxHeaderBytes plus the
// 4 KiB net/http allows on top, far under Go's 1 MiB default) are refused
// with 431 (or 400) within 2 s, while an 8 KiB Cookie is served. After each
// one the server answers a normal request.
func TestHeaderSizeCap(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, nil, "--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir))
	addr := strings.TrimPrefix(p.URL, "http://")
	tests := []struct {
		name    string
		headers string // header lines, each ending in CRLF
		refused bool
	}{
		{"100 KiB cookie", "Cookie: " + strings.Repeat("c", 100<<10) + "\r\n", true},
		{"10,000 headers", strings.Repeat("X-Pad: 1\r\n", 10_000), true},
		{"64 KiB bearer token", "Authorization: Bearer " + strings.Repeat("t", 64<<10) + "\r\n", true},
		{"24 KiB cookie", "Cookie: " + strings.Repeat("c", 24<<10) + "\r\n", true},
		{"8 KiB cookie", "Cookie: " + strings.Repeat("c", 8<<10) + "\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			// The server may answer and hang up before reading it all.
			go c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n" + tt.headers + "Connection: close\r\n\r\n"))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer after %v: %v", time.Since(start), err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			took := time.Since(start)
			switch {
			case !tt.refused && res.StatusCode != http.StatusOK:
				t.Fatalf("%s: %d, want 200", tt.name, res.StatusCode)
			case tt.refused && res.StatusCode != http.StatusRequestHeaderFieldsTooLarge && res.StatusCode != http.StatusBadRequest:
				t.Fatalf("%s: %d, want 431 or 400", tt.name, res.StatusCode)
			case took > 2*time.Second:
				t.Fatalf("%s: answered after %v", tt.name, took)
			}
			if code, _ := get(t, p.URL+"/healthz"); code != http.StatusOK {
				t.Fatalf("/healthz after %s: %d", tt.name, code)
			}
		})
	}
}
