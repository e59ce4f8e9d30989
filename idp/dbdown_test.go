package idp_test

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestDatabaseGone drops the server's PostgreSQL database under it (AV-07,
// LG-06): token requests answer 503 temporarily_unavailable with
// Retry-After and nothing of the cause, and /readyz turns unavailable,
// while the JWKS is still served from memory so resource servers keep
// validating.
func TestDatabaseGone(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	db := storagetest.Open(t, dsn)
	km, err := keys.NewManager(t.Context(), db, keys.NewKEK(), keys.Policy{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	c, secret, err := manage.NewClient(manage.ClientSpec{ID: "svc", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{"read"}, Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateClient(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	srv, err := idp.New(idp.Config{Issuer: "http://localhost:8080", Store: db, Keys: km})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	token := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("svc", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := token(); w.Code != http.StatusOK {
		t.Fatalf("before: %d %s", w.Code, w.Body)
	}

	admin, err := sql.Open("postgres", storagetest.PostgresServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := url.Parse(dsn)
	if _, err := admin.ExecContext(t.Context(), `DROP DATABASE `+strings.TrimPrefix(u.Path, "/")+` WITH (FORCE)`); err != nil {
		t.Fatal(err)
	}

	w := token()
	var body map[string]string
	json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("with the database gone: %d %v Retry-After %q", w.Code, body, w.Header().Get("Retry-After"))
	}
	for _, leak := range []string{"pq:", "keyward_test", "FATAL", "3D000", "does not exist"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Fatalf("the answer leaks %q: %s", leak, w.Body)
		}
	}
	if w := idptest.Serve(h, http.MethodGet, "/readyz"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database gone: %d", w.Code)
	}
	if w := idptest.Serve(h, http.MethodGet, "/.well-known/jwks.json"); w.Code != http.StatusOK {
		t.Fatalf("JWKS with the database gone: %d", w.Code)
	}
}
