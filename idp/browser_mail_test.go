package idp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/internal/browsertest"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestBrowserResetFromMail is issue 14's browser test over the real flows:
// alice asks for a reset, Keyward's SMTP sender mails the link to a server
// on loopback, and a person opens the link from that mail in Chromium.
// Opening it (twice) consumes nothing; a form whose CSRF field was removed
// is refused and consumes nothing either; typing the new password twice
// and submitting shows the confirmation, after which the new password
// signs in and the old one does not. Screenshots go to
// $KEYWARD_ARTIFACTS/mail-reset.
func TestBrowserResetFromMail(t *testing.T) {
	b := browsertest.New(t, "mail-reset")
	smtp := mailtest.NewServer(t)
	e := idptest.New(t, storagetest.Backends[0], func(c *idp.Config) { c.Mail = mailtest.NewSender(t, smtp.Addr) })
	if r := e.Account("/account/password/forgot", "", idptest.JSONObject("username", "alice")); r.Status != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", r.Status, r.Body)
	}
	link := smtp.Wait(t, "alice@example.com", mail.KindPasswordReset, 1).Link()
	if link == "" {
		t.Fatal("no link in the mail")
	}
	// The issuer is the loopback server, so the link opens it as mailed.
	if !strings.HasPrefix(link, e.URL+"/account/reset-password?token=kwpr_") {
		t.Fatalf("link %q does not open %s", link, e.URL)
	}

	browsertest.WantPage(t, b.Open(link), http.StatusOK, ui.PageCSP, true)
	b.Shot("reset-from-mail")
	b.Eval(`document.querySelector('input[name="csrf_token"]').remove(), "removed"`)
	b.TypeInto("new_password", "a long and quiet river at dusk")
	b.TypeInto("confirm_password", "a long and quiet river at dusk")
	if resp := b.Submit(); resp.Status != http.StatusForbidden {
		t.Fatalf("a form without its CSRF field: %d, want 403", resp.Status)
	}
	b.Shot("reset-without-csrf")

	b.Open(link) // the link still works: neither the GETs nor the refused form used it
	pw := "a long and quiet river at dusk"
	b.TypeInto("new_password", pw)
	b.TypeInto("confirm_password", pw)
	if resp := b.Submit(); resp.Status != http.StatusOK {
		t.Fatalf("submit: %d", resp.Status)
	}
	if h := b.Text("h1"); !strings.Contains(strings.ToLower(h), "password") {
		t.Fatalf("confirmation heading %q", h)
	}
	b.Shot("reset-confirmed")
	if r := e.Token("C1", idptest.PasswordForm("alice", pw)); r.Status != http.StatusOK {
		t.Fatalf("the new password: %d %s", r.Status, r.Body)
	}
	idptest.CheckE1(t, e.Token("C1", idptest.PasswordForm("alice", idptest.AlicePassword)), http.StatusBadRequest, "invalid_grant")
}
