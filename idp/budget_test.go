package idp_test

import (
	"net/http"
	"testing"

	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// The performance budget in counts, which a busy machine cannot move: the
// database statements and transactions of one request of each kind,
// counted by the real driver wrapped with storage.WithCounter, on SQLite
// and on PostgreSQL. A change that adds a round trip to a hot path fails
// here; one that removes a round trip should lower the budget with it.
//
// Each figure includes the request's audit row: the Auditor writes it after
// the answer, and under load one INSERT carries the rows of many requests
// (group commit), so here, one request at a time, it is one statement.
// Prepared statements are prepared once per pooled connection, so the
// requests run after a warm-up and prepares are bounded, not counted.

// stmtBudget is what one request may cost the database.
type stmtBudget struct {
	statements int64 // every Exec and Query, in a transaction or not, the audit row included
	begins     int64 // transactions (each one also commits or rolls back)
}

// budgetEnv is a server over a database whose driver counts, opened as
// keyward serve opens it (with the client cache).
func budgetEnv(t *testing.T, be storagetest.Backend) (*idptest.Env, *storage.StatementCounter) {
	t.Helper()
	n := &storage.StatementCounter{}
	e := idptest.NewOn(t, storagetest.Open(t, be.DSN(t), storage.WithCounter(n), storage.WithClientCacheTTL(storage.DefaultClientCacheTTL)))
	return e, n
}

// measure runs req once as a warm-up and then runs times more, and
// returns the counts of one run: the same in every run, or the test fails.
func measure(t *testing.T, e *idptest.Env, n *storage.StatementCounter, runs int, req func() idptest.Response) storage.Counts {
	t.Helper()
	run := func() storage.Counts {
		e.Srv.Auditor().Flush()
		before := n.Counts()
		if r := req(); r.Status != http.StatusOK && r.Status != http.StatusNotModified {
			t.Fatalf("request: %d %s", r.Status, r.Body)
		}
		e.Srv.Auditor().Flush()
		return n.Counts().Sub(before)
	}
	run()
	var first storage.Counts
	for i := range runs {
		c := run()
		c.Prepares = 0 // one per statement per new pooled connection: not per request
		if i == 0 {
			first = c
		} else if c != first {
			t.Fatalf("run %d counted %v, run 0 %v: the count is not stable", i, c, first)
		}
	}
	return first
}

func TestStatementBudget(t *testing.T) {
	tests := []struct {
		name   string
		budget stmtBudget
		req    func(e *idptest.Env) func() idptest.Response
	}{
		{
			// The (client, IP) throttle counters, the audit row; the
			// client comes from the client cache (storage.Client).
			name:   "client_credentials",
			budget: stmtBudget{statements: 2, begins: 0},
			req: func(e *idptest.Env) func() idptest.Response {
				form := idptest.CCForm("scope", "read")
				return func() idptest.Response { return e.Token("CC", form) }
			},
		},
		{
			// The client's throttle counters, the login's, the user
			// and their TOTP credential, the refresh family (a
			// transaction of three), the login's counters reset (two)
			// and its known-IP mark set, the audit row. argon2id, not
			// these, bounds the grant.
			name:   "password",
			budget: stmtBudget{statements: 12, begins: 1},
			req: func(e *idptest.Env) func() idptest.Response {
				form := idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "read")
				return func() idptest.Response { return e.Token("C1", form) }
			},
		},
		{
			// The throttle counters, the rotation transaction (token,
			// family and user in one read, the use, the successor: all
			// three prepared), the audit row.
			name:   "refresh_token",
			budget: stmtBudget{statements: 5, begins: 1},
			req: func(e *idptest.Env) func() idptest.Response {
				rt := e.Login("scope", "read").Str("refresh_token")
				return func() idptest.Response {
					r := e.Token("C1", idptest.RefreshForm(rt))
					rt = r.Str("refresh_token")
					return r
				}
			},
		},
		{
			// The caller's throttle counters and the revoked-jti check.
			name:   "introspection",
			budget: stmtBudget{statements: 2, begins: 0},
			req: func(e *idptest.Env) func() idptest.Response {
				at := e.Token("CC", idptest.CCForm("scope", "read")).Str("access_token")
				return func() idptest.Response {
					return e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic("RS"), Body: "token=" + at})
				}
			},
		},
		{
			// Served from the key manager's memory.
			name:   "jwks",
			budget: stmtBudget{statements: 0, begins: 0},
			req: func(e *idptest.Env) func() idptest.Response {
				return func() idptest.Response {
					return e.Do(idptest.Request{Method: http.MethodGet, Path: "/.well-known/jwks.json", ContentType: "-"})
				}
			},
		},
	}
	idptest.Backends(t, func(t *testing.T, be storagetest.Backend) {
		e, n := budgetEnv(t, be)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := measure(t, e, n, 3, tt.req(e))
				t.Logf("%s on %s: %v", tt.name, be.Name, got)
				if got.Statements != tt.budget.statements || got.Begins != tt.budget.begins ||
					got.Commits+got.Rollbacks != got.Begins {
					t.Errorf("%s costs %v; budget: %d statements, %d transactions", tt.name, got, tt.budget.statements, tt.budget.begins)
				}
			})
		}
	})
}
