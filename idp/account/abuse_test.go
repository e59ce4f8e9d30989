package account_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestResetTokenAbuse (AC-R2): a real reset token truncated, with a
// character appended, with its case flipped, without its prefix or under
// the verification prefix is the one invalid_token answer and uses nothing
// up: the real token still works once, then never again. (A request names
// only the token, so there is no other user's token to present for this
// user; RR-07's guessing limit is account.TestLinkErrors.)
func TestResetTokenAbuse(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := newMailEnv(t, b)
		e.forgot("username", "alice")
		tok := e.SMTP.Wait(t, "alice@example.com", mail.KindPasswordReset, 1).Token()
		body := ""
		for name, bad := range map[string]string{
			"truncated":   tok[:len(tok)-1],
			"appended":    tok + "A",
			"case":        "kwpr_" + flipCase(tok[len("kwpr_"):]),
			"no prefix":   tok[len("kwpr_"):],
			"verify kind": "kwev_" + tok[len("kwpr_"):],
		} {
			r := e.reset(bad, idptest.NewAlicePassword)
			idptest.CheckAccountError(t, r, http.StatusBadRequest, "invalid_token")
			if body != "" && string(r.Body) != body {
				t.Errorf("%s: body %s differs from %s", name, r.Body, body)
			}
			body = string(r.Body)
		}
		if r := e.reset(tok, idptest.NewAlicePassword); r.Status != http.StatusNoContent {
			t.Fatalf("the real token after the abuse: %d %s", r.Status, r.Body)
		}
		idptest.CheckAccountError(t, e.reset(tok, "yet another long passphrase 9"), http.StatusBadRequest, "invalid_token")
	})
}

// flipCase swaps upper and lower case letters.
func flipCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}
