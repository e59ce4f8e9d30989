package oauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestPasswordGrantRefusesSecondFactorUsers (RR-08, ASVS 6.4.3): the
// password grant cannot ask for a TOTP code, so a user who has confirmed
// one gets a wrong password's answer, audited mfa_required and not counted
// as a guess; an enrolment not yet confirmed changes nothing, and after the
// second factor is removed the grant works again.
func TestPasswordGrantRefusesSecondFactorUsers(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		alice := e.Users["alice"].ID
		cred := storage.TOTPCredential{UserID: alice, Secret: "plain:JBSWY3DPEHPK3PXP", CreatedAt: storage.At(time.Now())}
		if err := e.DB.StartTOTPEnrolment(t.Context(), cred); err != nil {
			t.Fatal(err)
		}
		if r := e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)); r.Status != http.StatusOK {
			t.Fatalf("with an unconfirmed enrolment: %d %s", r.Status, r.Body)
		}
		if err := e.DB.ConfirmTOTP(t.Context(), alice, 1, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		login := func() idptest.Response { return e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)) }
		idptest.CheckE1(t, login(), http.StatusBadRequest, "invalid_grant")
		e.Srv.Auditor().Flush()
		evs, err := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.LoginFailed), Subject: alice})
		if err != nil || len(evs) == 0 || evs[0].Reason != "mfa_required" {
			t.Fatalf("login_failed rows %+v, %v; want reason mfa_required", evs, err)
		}
		// Not a guess: many refusals lock nothing.
		for range 10 {
			idptest.CheckE1(t, login(), http.StatusBadRequest, "invalid_grant")
		}
		if _, err := e.DB.DeleteTOTP(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		if r := login(); r.Status != http.StatusOK {
			t.Fatalf("after the second factor was removed: %d %s", r.Status, r.Body)
		}
	})
}
