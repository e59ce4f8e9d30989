package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/internal/mailtest"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
)

// TestUsersMailCLI: `keyward users send-reset` and `set-email` go through
// manage.Ops with the sender cliMailer gives (here one delivering over SMTP
// to a server on loopback), and `set-password` mails its notice; without the
// test's sender, they mail as serve would (here into the outbox).
func TestUsersMailCLI(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		smtp := mailtest.NewServer(t)
		flushed := 0
		cliMailer = func(*cobra.Command) (manage.Mailer, func(), error) {
			s := mailtest.NewSender(t, smtp.Addr)
			return s, func() { s.Close(t.Context()); flushed++ }, nil
		}
		t.Cleanup(func() { cliMailer = nil })
		mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", "alice", "--email", "alice@example.com", "--email-verified", "--password-stdin")
		mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", "bob", "--email", "bob@example.com", "--password-stdin")

		out := mustRun(t, dsn, "", "users", "send-reset", "alice", "--public-url", "https://as.test", "--output", "json")
		if v := decode[map[string]any](t, out); v["sent"] != true || strings.Contains(out, "kwpr_") {
			t.Fatalf("send-reset printed %s", out)
		}
		m := smtp.Wait(t, "alice@example.com", mail.KindPasswordReset, 1)
		if !strings.HasPrefix(m.Link(), "https://as.test/account/reset-password?token=kwpr_") {
			t.Errorf("link %q", m.Link())
		}
		for _, c := range []struct {
			name string
			args []string
			want string
		}{
			{"unverified", []string{"users", "send-reset", "bob", "--public-url", "https://as.test"}, "no verified e-mail"},
			{"no public url", []string{"users", "send-reset", "alice"}, "--public-url"},
			{"bad address", []string{"users", "set-email", "alice", "a\r\nBcc: x@evil.test", "--public-url", "https://as.test"}, "not a valid address"},
			{"unknown user", []string{"users", "send-reset", "nobody", "--public-url", "https://as.test"}, "no user"},
		} {
			if _, err := run(t, dsn, "", c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}

		out = mustRun(t, dsn, "", "users", "set-email", "alice", "alice@example.org", "--public-url", "https://as.test", "--output", "json")
		if v := decode[map[string]any](t, out); v["email"] != "alice@example.com" || v["email_pending"] != "alice@example.org" {
			t.Fatalf("set-email printed %s", out)
		}
		smtp.Wait(t, "alice@example.org", mail.KindVerifyEmail, 1)

		mustRun(t, dsn, "a new and long enough passphrase\n", "users", "set-password", "alice", "--password-stdin")
		smtp.Wait(t, "alice@example.com", mail.KindPasswordChanged, 1)
		if flushed < 3 {
			t.Errorf("the mail was flushed %d times, want once per mailing command", flushed)
		}

		audit := mustRun(t, dsn, "", "audit", "list", "--output", "json")
		if strings.Contains(audit, "kwpr_") || strings.Contains(audit, "kwev_") || !strings.Contains(audit, "password_reset_sent") {
			t.Errorf("audit trail: %s", audit)
		}

		// Without the test's sender, the command mails as serve would from
		// its mail flags: here the development outbox, flushed before exit.
		cliMailer = nil
		before := len(smtp.Messages())
		outbox := t.TempDir()
		mustRun(t, dsn, "", "users", "send-reset", "alice", "--public-url", "https://as.test", "--mail-outbox", outbox)
		if len(smtp.Messages()) != before {
			t.Error("mail went to the SMTP server without --smtp-url")
		}
		entries, err := mail.ListOutbox(outbox)
		if err != nil || len(entries) != 1 || !strings.Contains(entries[0].File, "password_reset") {
			t.Fatalf("outbox after send-reset: %+v, %v", entries, err)
		}
	})
}
