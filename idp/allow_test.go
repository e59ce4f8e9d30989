package idp_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestMethodNotAllowedAllow: every 405 names the methods the resource does
// accept in Allow (RFC 9110 §15.5.6, a MUST), in the order the routes
// list them, still as the one JSON error.
func TestMethodNotAllowedAllow(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Registration = true })
	tests := []struct {
		method, path, wantAllow string
	}{
		{http.MethodGet, "/oauth2/token", "POST"},
		{http.MethodOptions, "/oauth2/token", "POST"},
		{http.MethodHead, "/oauth2/introspect", "POST"},
		{http.MethodPost, "/.well-known/jwks.json", "GET, HEAD"},
		{http.MethodDelete, "/.well-known/openid-configuration", "GET, HEAD"},
		{http.MethodPut, "/userinfo", "GET, POST"},
		{http.MethodDelete, "/healthz", "GET"},
		{http.MethodGet, "/account/register", "POST"},
		{http.MethodPut, "/admin/v1/clients", "GET, POST"},
		{http.MethodDelete, "/admin/v1/clients/C1", "GET, PATCH"},
		{http.MethodPost, "/admin/v1/users/u1", "GET, PATCH, DELETE"},
		{http.MethodPost, "/admin/v1/users/u1/sessions", "GET, DELETE"},
		{http.MethodGet, "/admin/v1/keys/k1/revoke", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.Do(idptest.Request{Method: tt.method, Path: tt.path, ContentType: "-"})
			if r.Status != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405", r.Status)
			}
			if got := r.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			if tt.method != http.MethodHead && r.Str("error") != web.ErrInvalidRequest {
				t.Errorf("body %s", r.Body)
			}
		})
	}
	// A path no route has is 404, without Allow.
	if r := e.Do(idptest.Request{Method: http.MethodGet, Path: "/nope", ContentType: "-"}); r.Status != 404 || r.Header.Get("Allow") != "" {
		t.Errorf("unknown path: %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
}

// TestEveryRouteAllow walks the routes idp.Server.Routes binds, so a route
// added later is covered: a method it does not take gets 405 with an Allow
// header holding every method it does.
func TestEveryRouteAllow(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Registration = true })
	router := mux.NewRouter()
	e.Srv.Routes(router)
	vars := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := route.GetMethods()
		path := vars.ReplaceAllString(tmpl, "x1")
		other := http.MethodPut
		if slices.Contains(methods, other) {
			other = http.MethodTrace
		}
		n++
		t.Run(other+" "+tmpl, func(t *testing.T) {
			r := e.Do(idptest.Request{Method: other, Path: path, ContentType: "-"})
			if r.Status != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405", r.Status)
			}
			allow := strings.Split(r.Header.Get("Allow"), ", ")
			for _, m := range methods {
				if !slices.Contains(allow, m) {
					t.Errorf("Allow %q lacks %s", allow, m)
				}
			}
		})
		return nil
	})
	if n < 20 {
		t.Fatalf("walked %d routes", n)
	}
}
