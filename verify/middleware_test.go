package verify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// protectedServer serves, behind v.Middleware, /any (no scope), /admin (scope admin) and
// /rw (scopes read and admin); each answers the subject and the form field "note".
func protectedServer(t *testing.T, v *verify.Verifier) *httptest.Server {
	t.Helper()
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := verify.ClaimsFrom(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, c.Subject+" "+r.FormValue("note"))
	})
	mux := http.NewServeMux()
	mux.Handle("/any", hello)
	mux.Handle("/admin", verify.RequireScope("admin")(hello))
	mux.Handle("/read", verify.RequireScope("read")(hello))
	mux.Handle("/rw", verify.RequireScope("read", "admin")(hello))
	srv := httptest.NewServer(v.Middleware(mux))
	t.Cleanup(srv.Close)
	return srv
}

// TestMiddleware checks RFC 6750 §2-3 behaviour (RS-15, RS-16, AC-H1, AC-H2, AC-H6): the
// status, the exact WWW-Authenticate challenge and that nothing of the token is echoed.
func TestMiddleware(t *testing.T) {
	is := newIssuer(t)
	v := newVerifier(t, is, is.config(newClock()))
	srv := protectedServer(t, v)
	V := valid(t, is)
	expired := rs256(t, rsaK1, obj(baseHeader()...), obj(with(basePayload(is.srv.URL), member{"exp", num(testNow.Add(-time.Hour))})...))
	const realm = `Bearer realm="https://rs1.test"`
	invalid := func(desc string) string {
		return realm + `, error="invalid_token", error_description="` + desc + `"`
	}
	badRequest := func(desc string) string {
		return realm + `, error="invalid_request", error_description="` + desc + `"`
	}

	tests := []struct {
		name      string
		method    string
		path      string
		auth      []string
		form      url.Values
		wantCode  int
		wantChall string // exact WWW-Authenticate; "" means none
		wantBody  string // for 200
	}{
		{"valid token", "GET", "/any", []string{"Bearer " + V}, nil, 200, "", "u-alice "},
		{"lower-case scheme", "GET", "/any", []string{"bearer " + V}, nil, 200, "", "u-alice "},
		{"upper-case scheme", "GET", "/any", []string{"BEARER " + V}, nil, 200, "", "u-alice "},
		{"form body without a token", "POST", "/any", []string{"Bearer " + V}, url.Values{"note": {"hi"}}, 200, "", "u-alice hi"},
		{"no credentials", "GET", "/any", nil, nil, 401, realm, ""},
		{"query token alone", "GET", "/any?access_token=" + V, nil, nil, 401, realm, ""},
		{"basic scheme", "GET", "/any", []string{"Basic YTpi"}, nil, 401, realm, ""},
		{"expired token", "GET", "/any", []string{"Bearer " + expired}, nil, 401, invalid("the access token expired"), ""},
		{"garbage token", "GET", "/any", []string{"Bearer garbage"}, nil, 401, invalid("the access token is malformed"), ""},
		{"double space", "GET", "/any", []string{"Bearer  " + V}, nil, 401, invalid("the access token is malformed"), ""},
		{"64 KiB token", "GET", "/any", []string{"Bearer " + strings.Repeat("A", 64<<10)}, nil, 401, invalid("the access token is malformed"), ""},
		{"two headers valid first", "GET", "/any", []string{"Bearer " + V, "Bearer garbage"}, nil, 400, badRequest("more than one Authorization header"), ""},
		{"two headers valid second", "GET", "/any", []string{"Bearer garbage", "Bearer " + V}, nil, 400, badRequest("more than one Authorization header"), ""},
		{"basic and bearer headers", "GET", "/any", []string{"Basic YTpi", "Bearer " + V}, nil, 400, badRequest("more than one Authorization header"), ""},
		{"two tokens in one header", "GET", "/any", []string{"Bearer " + V + ", Bearer " + V}, nil, 400, badRequest("more than one credential in the Authorization header"), ""},
		{"header and query token", "GET", "/any?access_token=" + V, []string{"Bearer " + V}, nil, 400, badRequest("more than one access token in the request"), ""},
		{"header and form token", "POST", "/any", []string{"Bearer " + V}, url.Values{"access_token": {V}}, 400, badRequest("more than one access token in the request"), ""},
		{"empty bearer token", "GET", "/any", []string{"Bearer "}, nil, 400, badRequest("the bearer token is empty"), ""},
		{"scope granted", "GET", "/read", []string{"Bearer " + V}, nil, 200, "", "u-alice "},
		{"scope missing", "GET", "/admin", []string{"Bearer " + V}, nil, 403,
			realm + `, error="insufficient_scope", error_description="the access token lacks a required scope", scope="admin"`, ""},
		{"one of two scopes missing", "GET", "/rw", []string{"Bearer " + V}, nil, 403,
			realm + `, error="insufficient_scope", error_description="the access token lacks a required scope", scope="read admin"`, ""},
		{"scope route without token", "GET", "/admin", nil, nil, 401, realm, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := testsupport.FormRequest(t, tt.method, srv.URL+tt.path, tt.form)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			status, b, header := testsupport.Do(t, nil, req)
			if status != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %q)", status, tt.wantCode, b)
			}
			if got := header.Values("WWW-Authenticate"); strings.Join(got, "|") != tt.wantChall {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChall)
			}
			if tt.wantCode == 200 {
				if string(b) != tt.wantBody {
					t.Errorf("body = %q, want %q", b, tt.wantBody)
				}
				return
			}
			for _, part := range strings.Split(V, ".") {
				if strings.Contains(string(b), part) || strings.Contains(header.Get("WWW-Authenticate"), part) {
					t.Errorf("response echoes part of the token")
				}
			}
			if tt.wantCode != 401 || strings.Contains(tt.wantChall, "error=") {
				if ct := header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type = %q, want JSON with its charset", ct)
				}
				var e struct{ Error string }
				if err := json.Unmarshal(b, &e); err != nil || !strings.Contains(tt.wantChall, `error="`+e.Error+`"`) {
					t.Errorf("body %q does not carry the challenge's error code", b)
				}
			}
		})
	}
}

// TestClaimsFrom: no claims outside Middleware, and RequireScope alone fails closed.
func TestClaimsFrom(t *testing.T) {
	if c, ok := verify.ClaimsFrom(context.Background()); ok || c != nil {
		t.Errorf("ClaimsFrom(empty) = %v, %v", c, ok)
	}
	rec := httptest.NewRecorder()
	called := false
	verify.RequireScope("read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })).
		ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if called || rec.Code != http.StatusUnauthorized {
		t.Errorf("RequireScope without Middleware: status %d, handler called %v", rec.Code, called)
	}
}
