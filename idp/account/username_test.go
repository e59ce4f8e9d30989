package account_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRegisterLookalike is issue 12's finding 9 at POST /account/register:
// a name mixing scripts is a 400 that says so; a name of one script that
// looks like an existing one (alicė beside alice, with the dot precomposed
// or combining) gets the answer a taken name gets, creates nothing, and is
// audited as username_lookalike.
func TestRegisterLookalike(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) { c.Registration = true })
		const pw = "my own long passphrase 7"
		fresh := e.Account("/account/register", "", idptest.JSONObject("username", "carol", "password", pw, "email", "carol@example.com"))
		if fresh.Status != http.StatusAccepted {
			t.Fatalf("register carol: %d %s", fresh.Status, fresh.Body)
		}
		for _, name := range []string{"\u0430lice", "\u0430l\u0456ce", "p\u0430ypal"} {
			r := e.Account("/account/register", "", idptest.JSONObject("username", name, "password", pw, "email", "x@example.com"))
			idptest.CheckAccountError(t, r, http.StatusBadRequest, web.ErrInvalidRequest)
			if !strings.Contains(r.Str("error_description"), "scripts") {
				t.Errorf("register %q: description %q does not name the rule", name, r.Str("error_description"))
			}
		}
		n, _ := e.DB.CountUsers(t.Context())
		for _, name := range []string{"alic\u0117", "alice\u0307", "a1ice", "ca\u0155ol"} {
			r := e.Account("/account/register", "", idptest.JSONObject("username", name, "password", pw, "email", "x@example.com"))
			if r.Status != fresh.Status || !bytes.Equal(r.Body, fresh.Body) {
				t.Errorf("register %q: %d %s, a new name: %d %s", name, r.Status, r.Body, fresh.Status, fresh.Body)
			}
		}
		if m, _ := e.DB.CountUsers(t.Context()); m != n {
			t.Errorf("users %d after look-alike names, want %d", m, n)
		}
		evs, _ := e.DB.AuditEvents(t.Context(), storage.AuditFilter{Type: string(audit.UserCreated)})
		if len(evs) == 0 || evs[0].Outcome != audit.OutcomeFailure || evs[0].Reason != "username_lookalike" {
			t.Errorf("newest user_created event %+v, want a username_lookalike failure", evs[0])
		}
		// Names of several scripts that UTS #39 allows together still register.
		if r := e.Account("/account/register", "", idptest.JSONObject("username", "山田たろうTaro", "password", pw, "email", "t@example.com")); r.Status != http.StatusAccepted {
			t.Errorf("register a Japanese name: %d %s", r.Status, r.Body)
		}
		if _, err := e.DB.UserByUsername(t.Context(), "山田たろうTaro"); err != nil {
			t.Errorf("the Japanese name was not created: %v", err)
		}
	})
}
