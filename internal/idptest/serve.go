package idptest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

// KeyedServer is a Server over a fresh SQLite database with a real key
// manager, for the endpoints that need nothing else.
func KeyedServer(t testing.TB, issuer string) (http.Handler, *keys.Manager) {
	t.Helper()
	db := storagetest.OpenSQLite(t)
	km, err := keys.NewManager(t.Context(), db, keys.NewKEK(), keys.Policy{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := idp.New(idp.Config{Issuer: issuer, Store: db, Keys: km, JWKSMaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler(), km
}

// Serve runs one request through h without a network; header holds
// key, value pairs.
func Serve(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
