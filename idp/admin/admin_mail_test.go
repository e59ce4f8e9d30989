package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAdminSendReset: POST /admin/v1/users/{id}/send-reset mails a reset
// link to a verified address (202) over SMTP, refuses an unverified one
// (409 email_unverified) and an unknown user (404), takes no body, needs
// the admin scope, and is audited without the link. A PATCHed address
// gets a verification link; once verified, the old address is told.
func TestAdminSendReset(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		smtp := mailtest.NewServer(t)
		e := idptest.NewAdmin(t, b, func(c *idp.Config) {
			c.Mail = mailtest.NewSender(t, smtp.Addr)
			c.PublicURL = "https://as.test"
		})
		ops := e.OpsToken()
		userAT := e.Login().Str("access_token")
		alice := e.Users["alice"].ID
		r := e.Call("POST", "/admin/v1/users/"+alice+"/send-reset", ops, "")
		idptest.Want(t, r, http.StatusAccepted, "")
		m := smtp.Wait(t, "alice@example.com", mail.KindPasswordReset, 1)
		if !strings.HasPrefix(m.Link(), "https://as.test/account/reset-password?token=kwpr_") {
			t.Fatalf("link %q", m.Link())
		}
		e.WantAudit(t, audit.PasswordResetSent, 1, alice, "")
		if strings.Contains(string(r.Body), "kwpr_") {
			t.Errorf("the answer holds the token: %s", r.Body)
		}
		// The link works through the account API.
		if r := e.Account("/account/password/reset", "", idptest.JSONObject("token", m.Token(), "new_password", idptest.NewAlicePassword)); r.Status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.Status, r.Body)
		}

		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+alice+"/send-reset", ops, `{"x":1}`), 400, web.ErrInvalidRequest)
		idptest.Want(t, e.Call("POST", "/admin/v1/users/nobody/send-reset", ops, ""), 404, "not_found")
		if r := e.Call("POST", "/admin/v1/users/"+alice+"/send-reset", userAT, ""); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
			t.Errorf("a user's token: %d %s", r.Status, r.Body)
		}

		// A new address is pending, gets a link; the reset still goes to
		// the verified one until it is verified.
		r = e.Call("PATCH", "/admin/v1/users/"+alice, ops, `{"email":"alice@example.org"}`)
		idptest.Want(t, r, 200, "")
		v := smtp.Wait(t, "alice@example.org", mail.KindVerifyEmail, 1)
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+alice+"/send-reset", ops, ""), http.StatusAccepted, "")
		smtp.Wait(t, "alice@example.com", mail.KindPasswordReset, 2)
		if r := e.Account("/account/verify-email", "", idptest.JSONObject("token", v.Token())); r.Status != http.StatusNoContent {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		smtp.Wait(t, "alice@example.com", mail.KindEmailChanged, 1)

		// Unverified: 409, nothing mailed.
		bob := e.AddUser("bob", idptest.AlicePassword, false)
		idptest.Want(t, e.Call("PATCH", "/admin/v1/users/"+bob.ID, ops, `{"email_verified":false}`), 200, "")
		before := len(smtp.Messages())
		idptest.Want(t, e.Call("POST", "/admin/v1/users/"+bob.ID+"/send-reset", ops, ""), http.StatusConflict, "email_unverified")
		if n := len(smtp.Messages()); n != before {
			t.Errorf("%d mails after a refused send-reset", n-before)
		}
	})
}
