package idp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// refreshInsertFault is the message of the trigger failRefreshInserts
// installs; it must reach the log and never the client.
const refreshInsertFault = "keyward test: refresh token insert refused"

// failRefreshInserts makes the database itself refuse every INSERT into
// refresh_tokens, with a trigger (a real storage failure, not a fake
// store), and returns the function that drops the trigger again.
func failRefreshInserts(t *testing.T, db *storage.DB) (drop func()) {
	t.Helper()
	var create, remove []string
	switch db.Dialect() {
	case storage.SQLite:
		create = []string{`CREATE TRIGGER refresh_insert_fault BEFORE INSERT ON refresh_tokens
			BEGIN SELECT RAISE(ABORT, '` + refreshInsertFault + `'); END`}
		remove = []string{`DROP TRIGGER refresh_insert_fault`}
	case storage.Postgres:
		create = []string{
			`CREATE FUNCTION refresh_insert_fault() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION '` + refreshInsertFault + `'; END $$`,
			`CREATE TRIGGER refresh_insert_fault BEFORE INSERT ON refresh_tokens
			FOR EACH ROW EXECUTE FUNCTION refresh_insert_fault()`,
		}
		remove = []string{`DROP TRIGGER refresh_insert_fault ON refresh_tokens`, `DROP FUNCTION refresh_insert_fault()`}
	default:
		t.Fatalf("no trigger for dialect %q", db.Dialect())
	}
	exec := func(stmts []string) {
		t.Helper()
		for _, q := range stmts {
			if _, err := db.SQL().ExecContext(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
			}
		}
	}
	exec(create)
	return func() { t.Helper(); exec(remove) }
}

// countRows runs a SELECT COUNT(*) query (with ? placeholders) on db.
func countRows(t *testing.T, db *storage.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().GetContext(t.Context(), &n, db.SQL().Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// auditCount is the number of stored audit rows of type typ, once the rows
// written behind answers (RecordAsync) are in.
func auditCount(e *idptest.Env, t *testing.T, typ audit.Type) int {
	t.Helper()
	e.Srv.Auditor().Flush()
	evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(typ), Limit: storage.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// checkServerFailure is what a client must see when the server could not
// finish the work behind a token (LG-07, LG-06): a 5xx JSON error with
// no-store, no token of any kind, and nothing of the cause.
func checkServerFailure(t *testing.T, r idptest.Response) {
	t.Helper()
	var problems []string
	if r.Status < 500 || r.Status > 599 {
		problems = append(problems, fmt.Sprintf("status %d, want 5xx", r.Status))
	}
	if code := r.Str("error"); code != web.ErrServerError && code != web.ErrTemporarilyUnavail {
		problems = append(problems, fmt.Sprintf("error %q, want server_error or temporarily_unavailable", code))
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		problems = append(problems, fmt.Sprintf("Cache-Control %q", cc))
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if _, ok := r.JSON[k]; ok {
			problems = append(problems, "carries "+k)
		}
	}
	if idptest.Leaks.Match(r.Body) || strings.Contains(string(r.Body), "keyward test") {
		problems = append(problems, "leaks the cause")
	}
	if problems != nil {
		t.Errorf("%s; body %.300s", strings.Join(problems, "; "), r.Body)
	}
}

// TestRefreshInsertFailsClosed is LG-07 on both backends: with the database
// refusing inserts into refresh_tokens (a trigger), a password grant for a
// client with refresh tokens answers 5xx with no access token, stores no
// family (CreateRefreshFamily is one transaction) and records no
// token_issued event. The same login succeeds once the trigger is gone.
func TestRefreshInsertFailsClosed(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		drop := failRefreshInserts(t, e.DB)
		r := e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "openid read"))
		checkServerFailure(t, r)
		if !strings.Contains(e.Logs.String(), refreshInsertFault) {
			t.Errorf("the failure is not the trigger's, or was not logged:\n%s", e.Logs.String())
		}
		if strings.Contains(e.Logs.String(), `"msg":"token issued"`) {
			t.Error(`"token issued" logged for a failed login`)
		}
		if n := countRows(t, e.DB, `SELECT COUNT(*) FROM refresh_families`); n != 0 {
			t.Errorf("%d refresh families stored without their token", n)
		}
		if n := auditCount(e, t, audit.TokenIssued); n != 0 {
			t.Errorf("%d token_issued rows for a failed login", n)
		}

		drop()
		ok := e.Login("scope", "openid read")
		if ok.Str("access_token") == "" || ok.Str("refresh_token") == "" {
			t.Fatalf("login after the fault: %s", ok.Body)
		}
		if n := auditCount(e, t, audit.TokenIssued); n != 1 {
			t.Errorf("%d token_issued rows after one good login, want 1", n)
		}
	})
}

// TestRefreshRotationFailsClosed is LG-07 for rotation on both backends:
// with inserts into refresh_tokens refused, a refresh answers 5xx with no
// access token, and the transaction that marked the presented token used
// (RotateRefreshToken: UPDATE, then INSERT of the successor) rolls back:
// the token is still unused, without a successor, its family live and
// alone, no token_refreshed event. Once the trigger is dropped the same
// token therefore rotates normally (200, a new successor that works);
// had the UPDATE survived, the token would count as used with no successor
// and its next use would be reuse, revoking the family (invalid_grant).
func TestRefreshRotationFailsClosed(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		rt := e.Login("scope", "openid read").Str("refresh_token")
		hash := oauth.RefreshHash(rt)
		drop := failRefreshInserts(t, e.DB)
		checkServerFailure(t, e.Token("C1", idptest.RefreshForm(rt)))
		if !strings.Contains(e.Logs.String(), refreshInsertFault) {
			t.Errorf("the failure is not the trigger's, or was not logged:\n%s", e.Logs.String())
		}

		tok, fam, err := e.DB.RefreshToken(t.Context(), hash)
		if err != nil {
			t.Fatal(err)
		}
		if !tok.UsedAt.IsZero() || tok.SuccessorHash != nil || tok.SuccessorSalt != nil {
			t.Errorf("the failed rotation left the token used_at %v, successor %x, salt %x", tok.UsedAt, tok.SuccessorHash, tok.SuccessorSalt)
		}
		if !fam.RevokedAt.IsZero() {
			t.Errorf("the family was revoked (%s)", fam.RevokeReason)
		}
		if n := countRows(t, e.DB, `SELECT COUNT(*) FROM refresh_tokens WHERE family_id = ?`, fam.ID); n != 1 {
			t.Errorf("%d tokens in the family, want the first one only", n)
		}
		if n := auditCount(e, t, audit.TokenRefreshed); n != 0 {
			t.Errorf("%d token_refreshed rows for a failed rotation", n)
		}

		drop()
		r := e.Token("C1", idptest.RefreshForm(rt))
		next := r.Str("refresh_token")
		if r.Status != http.StatusOK || r.Str("access_token") == "" || next == "" || next == rt {
			t.Fatalf("the same token after the fault: %d %s", r.Status, r.Body)
		}
		if n := auditCount(e, t, audit.RefreshReuseDetected); n != 0 {
			t.Errorf("the retry after the fault was taken for reuse (%d events)", n)
		}
		if r := e.Token("C1", idptest.RefreshForm(next)); r.Status != http.StatusOK {
			t.Fatalf("the successor: %d %s", r.Status, r.Body)
		}
	})
}

// errHasherBroken is faultyHasher's error.
var errHasherBroken = errors.New("keyward test: password hasher broken")

// faultyHasher is the real hasher whose verifications fail while broken is
// set. A failing hasher cannot be caused for real, so this is the one fake
// the LG-07 tests use. claimMatch makes the failing Verify also report a
// match, as a buggy hasher might.
type faultyHasher struct {
	oauth.PasswordHasher
	broken     atomic.Bool
	claimMatch bool
}

func (h *faultyHasher) Verify(ctx context.Context, pw, enc string) (bool, bool, error) {
	if h.broken.Load() {
		return h.claimMatch, false, errHasherBroken
	}
	return h.PasswordHasher.Verify(ctx, pw, enc)
}

func (h *faultyHasher) VerifyDummy(ctx context.Context, pw string) error {
	if h.broken.Load() {
		return errHasherBroken
	}
	return h.PasswordHasher.VerifyDummy(ctx, pw)
}

// TestPasswordVerifierErrorFailsClosed is LG-07's second half: when the
// password verifier returns an error, the password grant answers
// invalid_grant or 5xx, never a token, whatever the verifier claimed about
// the match. Keyward answers a Verify error (the stored hash cannot be
// checked) as an ordinary failed login, invalid_grant, and a VerifyDummy
// error (unknown user) as a server error. Each request succeeds, or fails
// as usual, with the hasher working, so the fault is what changes the
// answer.
func TestPasswordVerifierErrorFailsClosed(t *testing.T) {
	tests := []struct {
		name       string
		user, pw   string
		claimMatch bool
		wantOK     bool // the answer with the hasher working
	}{
		{"right password", "alice", idptest.AlicePassword, false, true},
		{"right password, verifier claims a match", "alice", idptest.AlicePassword, true, true},
		{"wrong password, verifier claims a match", "alice", "wrong password", true, false},
		{"unknown user", "ghost", idptest.AlicePassword, false, false},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var h *faultyHasher
				e := idptest.New(t, b, func(c *idp.Config) {
					h = &faultyHasher{PasswordHasher: c.Passwords, claimMatch: tt.claimMatch}
					c.Passwords = h
				})
				h.broken.Store(true)
				r := e.Token("C1", idptest.PasswordForm(tt.user, tt.pw))
				switch {
				case r.Status == http.StatusBadRequest:
					idptest.CheckE1(t, r, http.StatusBadRequest, web.ErrInvalidGrant)
				case r.Status >= 500:
					checkServerFailure(t, r)
				default:
					t.Errorf("with the verifier failing: %d %.300s, want 400 invalid_grant or 5xx", r.Status, r.Body)
				}
				if n := auditCount(e, t, audit.TokenIssued); n != 0 {
					t.Errorf("%d token_issued rows with the verifier failing", n)
				}
				if n := auditCount(e, t, audit.LoginSucceeded); n != 0 {
					t.Errorf("%d login_succeeded rows with the verifier failing", n)
				}

				h.broken.Store(false)
				if r := e.Token("C1", idptest.PasswordForm(tt.user, tt.pw)); (r.Status == http.StatusOK) != tt.wantOK {
					t.Errorf("with the verifier working: %d %.300s", r.Status, r.Body)
				}
			})
		}
	})
}
