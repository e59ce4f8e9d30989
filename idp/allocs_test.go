package idp_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Allocation budgets of one token request through the real handler, in
// process (no network: the HTTP server's own allocations stay out), with
// its database work, JSON log record and audit row: a few above what was
// measured, so a change that allocates more per request fails in every go
// test run, whatever the machine's load. The signer takes 4 (keys builds the
// JWS by hand; through go-jose it took about 60); most of the rest are the
// database driver's, the form parsing and the JSON of the answer, the log
// record and the audit row. On PostgreSQL each statement also allocates
// its context (storage's statementContext: a hang-up must not cancel it),
// about 4 per statement, and an audit batch about 30 whatever its size
// (one array per column, storage's pgAuditInsert): here each request's row
// is a batch of its own, under load a batch holds tens of rows, where the
// VALUES list it replaced took 10 per row. Lower them when a change
// allocates less.
var tokenAllocBudget = map[string]map[string]float64{
	"client_credentials": {"SQLite": 210, "Postgres": 240},
	"refresh_token":      {"SQLite": 420, "Postgres": 420},
}

func TestTokenAllocations(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, be storagetest.Backend) {
		db := storagetest.Open(t, be.DSN(t), storage.WithClientCacheTTL(storage.DefaultClientCacheTTL)) // as keyward serve opens it
		e := idptest.NewOn(t, db, func(c *idp.Config) {
			c.Log = slog.New(web.LogHandler(slog.NewJSONHandler(io.Discard, nil)))
		})
		h := e.Srv.Handler()
		post := func(client, form string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form))
			r.RemoteAddr = "127.0.0.1:40000"
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Authorization", e.Basic(client))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			e.Srv.Auditor().Flush() // the row's write counts too
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			return w
		}
		rt := e.Login("scope", "read").Str("refresh_token")
		requests := map[string]func(){
			"client_credentials": func() { post("CC", idptest.CCForm("scope", "read").Encode()) },
			"refresh_token": func() {
				w := post("C1", idptest.RefreshForm(rt).Encode())
				rt = refreshTokenOf(t, w.Body.String())
			},
		}
		for _, name := range []string{"client_credentials", "refresh_token"} {
			t.Run(name, func(t *testing.T) {
				req := requests[name]
				req() // warm: prepared statements, pooled connections
				allocs := testing.AllocsPerRun(50, req)
				budget := tokenAllocBudget[name][be.Name]
				t.Logf("%s on %s: %v allocations per request (budget %v)", name, be.Name, allocs, budget)
				if allocs > budget && !raceEnabled {
					t.Errorf("%s on %s allocates %v times per request, over its budget of %v", name, be.Name, allocs, budget)
				}
			})
		}
	})
}

// refreshTokenOf picks refresh_token out of a token response.
func refreshTokenOf(t *testing.T, body string) string {
	t.Helper()
	const key = `"refresh_token":"`
	i := strings.Index(body, key)
	if i < 0 {
		t.Fatalf("no refresh_token in %s", body)
	}
	rest := body[i+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}
