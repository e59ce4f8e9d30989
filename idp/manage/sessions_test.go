package manage_test

import (
	"context"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestEndSessions: EndUserSessions and EndClientSessions revoke the live
// refresh families and record one token_revoked row, with the caller's
// actor, client and user agent, only when any was live; a failed
// revocation records nothing. The steps run in order on one database.
func TestEndSessions(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		alice := e.Users["alice"].ID
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		tests := []struct {
			name    string
			logins  int // alice's sessions with C1 started first
			end     func(ctx context.Context) (int64, error)
			ctx     context.Context // nil means t.Context()
			wantN   int64
			wantErr bool
			wantRow *storage.AuditEvent // nil: no new token_revoked row
		}{
			{
				name: "user with two sessions", logins: 2,
				end: func(ctx context.Context) (int64, error) {
					by := audit.Event{Actor: "client:OPS", UserAgent: "ops-tool/1"}
					return manage.New(e.DB, e.Srv.Auditor(), nil, e.Clock.Now).EndUserSessions(ctx, by, alice, storage.RevokeSignOut)
				},
				wantN: 2,
				wantRow: &storage.AuditEvent{Type: string(audit.TokenRevoked), Actor: "client:OPS", Subject: alice,
					UserAgent: "ops-tool/1", Outcome: audit.OutcomeSuccess, Reason: storage.RevokeSignOut},
			},
			{
				name: "user with none live",
				end: func(ctx context.Context) (int64, error) {
					return manage.New(e.DB, e.Srv.Auditor(), nil, e.Clock.Now).EndUserSessions(ctx, audit.Event{Actor: "cli"}, alice, storage.RevokeUserDisabled)
				},
			},
			{
				name: "client", logins: 1,
				end: func(ctx context.Context) (int64, error) {
					by := audit.Event{Actor: "client:OPS"} // the client_id is the client's, whoever ends them
					return manage.New(e.DB, e.Srv.Auditor(), nil, e.Clock.Now).EndClientSessions(ctx, by, "C1", storage.RevokeClient)
				},
				wantN: 1,
				wantRow: &storage.AuditEvent{Type: string(audit.TokenRevoked), Actor: "client:OPS", Subject: "C1",
					ClientID: "C1", Outcome: audit.OutcomeSuccess, Reason: storage.RevokeClient},
			},
			{
				name: "store fails", logins: 1, ctx: canceled,
				end: func(ctx context.Context) (int64, error) {
					by := audit.Event{Actor: alice, ClientID: "C1"}
					return manage.New(e.DB, e.Srv.Auditor(), nil, e.Clock.Now).EndUserSessions(ctx, by, alice, storage.RevokePassword)
				},
				wantErr: true,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for range tt.logins {
					e.Login()
				}
				before := tokenRevokedRows(t, e.DB)
				ctx := tt.ctx
				if ctx == nil {
					ctx = t.Context()
				}
				n, err := tt.end(ctx)
				if (err != nil) != tt.wantErr || n != tt.wantN {
					t.Fatalf("ended %d, err %v; want %d, error %t", n, err, tt.wantN, tt.wantErr)
				}
				after := tokenRevokedRows(t, e.DB)
				if tt.wantRow == nil {
					if len(after) != len(before) {
						t.Fatalf("token_revoked rows %d, want %d: %+v", len(after), len(before), after)
					}
					return
				}
				if len(after) != len(before)+1 {
					t.Fatalf("token_revoked rows %d, want %d: %+v", len(after), len(before)+1, after)
				}
				got, want := after[0], *tt.wantRow
				if got.Type != want.Type || got.Actor != want.Actor || got.Subject != want.Subject ||
					got.ClientID != want.ClientID || got.UserAgent != want.UserAgent ||
					got.Outcome != want.Outcome || got.Reason != want.Reason {
					t.Errorf("token_revoked row %+v, want %+v", got, want)
				}
				fs, err := e.DB.RefreshFamilies(t.Context(), alice)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					if f.RevokedAt.IsZero() {
						t.Errorf("family %s of %s still live", f.ID, f.ClientID)
					}
				}
			})
		}
		if fs, _ := e.DB.RefreshFamilies(t.Context(), alice); len(fs) == 0 || !fs[0].RevokedAt.IsZero() {
			t.Errorf("the session of the failed revocation is not live: %+v", fs)
		}
	})
}

// tokenRevokedRows returns the token_revoked audit rows, newest first.
func tokenRevokedRows(t *testing.T, db *storage.DB) []storage.AuditEvent {
	t.Helper()
	rows, err := db.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.TokenRevoked)})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
