package idp_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// fuzzEnv is one SQLite-backed server shared by a fuzz target's inputs.
func fuzzEnv(f *testing.F) *idptest.Env {
	return idptest.New(f, storagetest.Backends[0])
}

// serveDirect runs one request through the full handler in process.
func serveDirect(e *idptest.Env, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.Srv.Handler().ServeHTTP(w, req)
	return w
}

// fuzzStatuses are the answers the OAuth endpoints may give: success, an
// RFC 6749 error (400, 401), an oversize body (413, IN-01), throttled (429),
// overloaded (503).
var fuzzStatuses = map[int]bool{200: true, 400: true, 401: true, 405: true, 413: true, 429: true, 503: true}

func checkFuzzResponse(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if !fuzzStatuses[w.Code] {
		t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
	}
	if w.Code != http.StatusOK && w.Code != http.StatusMethodNotAllowed {
		if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != web.ContentTypeJSON {
			t.Fatalf("error without JSON/no-store: %v", w.Header())
		}
		if idptest.Leaks.Match(w.Body.Bytes()) {
			t.Fatalf("body leaks internals: %s", w.Body.Bytes())
		}
	}
}

// FuzzTokenForm sends arbitrary bodies and content types to the token
// endpoint: it never panics and never answers 5xx; 413 means the body was
// over the 16 KiB cap (IN-01), and a form body over it is always 413.
func FuzzTokenForm(f *testing.F) {
	e := fuzzEnv(f)
	rt := e.Login().Str("refresh_token")
	for _, seed := range []string{
		idptest.PasswordForm("alice", idptest.AlicePassword).Encode(),
		idptest.PasswordForm("ghost", "x").Encode(),
		idptest.RefreshForm(rt).Encode(),
		"grant_type=client_credentials&scope=read",
		"grant_type=password&grant_type=password",
		"grant_type=password&username=%00&password=%FF",
		"grant_type=refresh_token&refresh_token=kwrt_" + strings.Repeat("A", 43),
		"grant_type=client_credentials&scope=%22%5C",
		"a=%zz&;&&=",
		"grant_type=password&username=alice&password=" + strings.Repeat("x", 300),
		// IN-03: each field one over its limit, and IN-01: one byte over the cap.
		idptest.PasswordForm(strings.Repeat("u", oauth.MaxUsernameChars+1), "x").Encode(),
		idptest.PasswordForm("alice", strings.Repeat("\uFDFA", 10)).Encode(),
		idptest.RefreshForm(strings.Repeat("k", oauth.MaxRefreshTokenBytes+1)).Encode(),
		"grant_type=client_credentials&scope=" + strings.Repeat("s", oauth.MaxScopeBytes+1),
		"grant_type=client_credentials&client_id=" + strings.Repeat("c", oauth.MaxClientIDBytes+1),
		"grant_type=client_credentials&pad=" + strings.Repeat("x", idp.MaxOAuthBody-len("grant_type=client_credentials&pad=")+1),
	} {
		f.Add(seed, "application/x-www-form-urlencoded")
	}
	f.Add(`{"grant_type":"password"}`, "application/json")
	f.Add("x", "multipart/form-data; boundary=")
	f.Add("grant_type=password", "application/x-www-form-urlencoded; charset=utf-8; x=y")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		for _, auth := range []string{e.Basic("C1"), ""} {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			w := serveDirect(e, req)
			checkFuzzResponse(t, w)
			if w.Code == http.StatusRequestEntityTooLarge && len(body) <= idp.MaxOAuthBody {
				t.Fatalf("413 for a body of %d bytes", len(body))
			}
			if contentType == "application/x-www-form-urlencoded" && len(body) > idp.MaxOAuthBody && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a form body of %d bytes", w.Code, len(body))
			}
		}
	})
}

// FuzzClientAuth sends arbitrary Authorization headers and client fields:
// never a panic, never a 5xx, and never a token for a wrong secret.
func FuzzClientAuth(f *testing.F) {
	e := fuzzEnv(f)
	f.Add(e.Basic("CC"), "", "")
	f.Add(idptest.BasicHeader("a:b+c", "p@ss w%rd"), "", "")
	f.Add("Basic "+strings.Repeat("A", 5000), "", "")
	f.Add("Basic !!!", "CC", "x")
	f.Add("", "POST", e.Secrets["POST"])
	f.Add("", "pub1", "")
	f.Add("Bearer x", "C1\x00", "")
	f.Add("basic Og==", "", "")
	f.Add(idptest.BasicHeader(strings.Repeat("c", oauth.MaxClientIDBytes+1), "x"), "", "")
	f.Add("", strings.Repeat("c", oauth.MaxClientIDBytes+1), "x")
	f.Add("", strings.Repeat("c", oauth.MaxClientIDBytes), "")
	f.Fuzz(func(t *testing.T, auth, clientID, secret string) {
		body := "grant_type=client_credentials"
		if clientID != "" {
			body += "&client_id=" + urlEscape(clientID)
		}
		if secret != "" {
			body += "&client_secret=" + urlEscape(secret)
		}
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		w := serveDirect(e, req)
		checkFuzzResponse(t, w)
		// IN-03: a client id over 128 bytes, in the form or in Basic, is
		// invalid_request (413 when the body is over the cap anyway).
		basicID, _, basicOK := oauth.ParseBasic(auth)
		if len(clientID) > oauth.MaxClientIDBytes || basicOK && len(basicID) > oauth.MaxClientIDBytes {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), `"invalid_request"`) {
				t.Fatalf("over-long client id: status %d %s", w.Code, w.Body.Bytes())
			}
		}
		if w.Code == http.StatusOK {
			// The token is for a client whose real secret was presented.
			var resp struct {
				AccessToken string `json:"access_token"`
			}
			json.Unmarshal(w.Body.Bytes(), &resp)
			_, p := idptest.JWTParts(t, resp.AccessToken)
			cid, _ := p["client_id"].(string)
			id, sec, ok := oauth.ParseBasic(auth)
			byHeader := ok && id == cid && sec == e.Secrets[cid]
			byBody := auth == "" && clientID == cid && secret == e.Secrets[cid]
			if !byHeader && !byBody {
				t.Fatalf("a token for %q from auth %q id %q", cid, auth, clientID)
			}
		}
	})
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

// TestHTTPFraming is AC-H5 and AC-H6 over a raw connection: ambiguous
// framing is refused by the HTTP layer, oversized headers are refused
// quickly. Content-Length together with chunked is the exception: net/http
// follows RFC 9112 §6.3 (chunked wins, Content-Length is dropped) rather than
// refusing, and the handler cannot see the dropped header, so that case
// only checks that one request is read and nothing fails.
func TestHTTPFraming(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	addr := strings.TrimPrefix(e.URL, "http://")
	body := "grant_type=client_credentials"
	auth := e.Basic("CC")
	tests := []struct {
		name     string
		raw      string
		goAccept bool // net/http reads it as chunked
	}{
		{"content-length and chunked", "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n1d\r\n" + body + "\r\n0\r\n\r\n", true},
		{"two content lengths", "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\nContent-Length: 5\r\n\r\n" + body, false},
		{"xchunked", "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: xchunked\r\n\r\n" + body, false},
		{"1 MiB cookie", "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 1<<20) +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n" + body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go c.Write([]byte(tt.raw))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // the server closed the connection: refused
			}
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			if tt.goAccept {
				if resp.StatusCode >= 500 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode < 400 || strings.Contains(b.String(), "access_token") {
				t.Fatalf("status %d body %s", resp.StatusCode, b.String())
			}
		})
	}
}
