package manage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// outbox is a Mailer that keeps what it is given (the end-to-end tests in
// idp/account go over SMTP).
type outbox struct {
	mu sync.Mutex
	ms []mail.Message
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ms = append(o.ms, m)
	return nil
}

func (o *outbox) last(t *testing.T) mail.Message {
	t.Helper()
	if len(o.ms) == 0 {
		t.Fatal("no mail")
	}
	return o.ms[len(o.ms)-1]
}

// TestSetEmailRules: the address rules of SetEmail and ConfirmEmail, on a
// real SQLite store: an account without a verified address takes the new
// one unverified; with one, the new one is pending until confirmed; the
// same address cancels; a link for an address the account no longer has
// is refused as stale; and the links carry the public URL and the token.
func TestSetEmailRules(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	rec := &events{}
	box := &outbox{}
	o := New(db, rec, nil, nil)
	o.SetMail(MailConfig{Sender: box, PublicURL: "https://as.test/"})
	ctx := WithLang(t.Context(), "zh-CN")
	by := audit.Event{Actor: "cli"}

	u := storage.User{Username: "alice", PasswordHash: "h"}
	if err := db.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	// No address yet: set unverified, link mailed to it.
	got, err := o.SetEmail(ctx, by, u.ID, "a@example.com")
	if err != nil || got.Email != "a@example.com" || got.EmailVerified || got.EmailPending != "" {
		t.Fatalf("first address: %v %+v", err, got)
	}
	m := box.last(t)
	if m.Kind != mail.KindVerifyEmail || m.To != "a@example.com" || m.Lang != "zh-CN" ||
		!strings.HasPrefix(m.Link, "https://as.test/account/verify-email?token=kwev_") || m.Expires != DefaultVerifyTokenLifetime {
		t.Fatalf("verification mail %+v", m)
	}
	first := strings.TrimPrefix(m.Link, "https://as.test/account/verify-email?token=")
	// Changed before verification: still unverified, replaced, the old link superseded.
	if got, err = o.SetEmail(ctx, by, u.ID, "b@example.com"); err != nil || got.Email != "b@example.com" || got.EmailPending != "" {
		t.Fatalf("second address: %v %+v", err, got)
	}
	if _, err := o.ConfirmEmail(ctx, by, first); !errors.Is(err, ErrInvalidAccountToken) {
		t.Fatalf("superseded link: %v", err)
	}
	second := strings.TrimPrefix(box.last(t).Link, "https://as.test/account/verify-email?token=")
	if got, err = o.ConfirmEmail(ctx, by, second); err != nil || !got.EmailVerified || got.Email != "b@example.com" {
		t.Fatalf("confirm: %v %+v", err, got)
	}
	// Verified: a new one is pending; the same one cancels it.
	if got, err = o.SetEmail(ctx, by, u.ID, "c@example.com"); err != nil || got.Email != "b@example.com" || !got.EmailVerified || got.EmailPending != "c@example.com" {
		t.Fatalf("pending: %v %+v", err, got)
	}
	pending := strings.TrimPrefix(box.last(t).Link, "https://as.test/account/verify-email?token=")
	n := len(box.ms)
	if got, err = o.SetEmail(ctx, by, u.ID, "b@example.com"); err != nil || got.EmailPending != "" || !got.EmailVerified {
		t.Fatalf("cancel: %v %+v", err, got)
	}
	if len(box.ms) != n {
		t.Errorf("cancelling mailed %+v", box.ms[n:])
	}
	if _, err := o.ConfirmEmail(ctx, by, pending); !errors.Is(err, ErrInvalidAccountToken) {
		t.Fatalf("a link for a cancelled address: %v", err)
	}
	if e := rec.es[len(rec.es)-1]; e.Type != audit.EmailVerificationFailed || e.Reason != "stale" || e.Subject != u.ID {
		t.Errorf("last event %+v", e)
	}
	// Pending, then confirmed: the old address is told, masked.
	o.SetEmail(ctx, by, u.ID, "dora@example.org")
	tok := strings.TrimPrefix(box.last(t).Link, "https://as.test/account/verify-email?token=")
	if got, err = o.ConfirmEmail(ctx, by, tok); err != nil || got.Email != "dora@example.org" {
		t.Fatalf("confirm pending: %v %+v", err, got)
	}
	if m := box.last(t); m.Kind != mail.KindEmailChanged || m.To != "b@example.com" || m.NewEmail != "d***@example.org" {
		t.Errorf("change notice %+v", m)
	}
	// No verified address: no reset link.
	if err := o.SendReset(ctx, by, storage.User{ID: u.ID, Email: "x@example.com"}); !errors.Is(err, ErrEmailUnverified) {
		t.Errorf("reset for an unverified address: %v", err)
	}
	for _, e := range rec.es {
		if strings.Contains(e.Reason, "kwev_") || strings.Contains(e.Reason, "kwpr_") {
			t.Errorf("an event holds a token: %+v", e)
		}
	}
}

// TestResetPasswordOps: ResetPassword uses the link once, sets the
// password, ends the sessions and other links, clears the lockout and
// mails password_was_reset (not password_changed); a later SetPassword
// mails password_changed and revokes a live link.
func TestResetPasswordOps(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	rec, box := &events{}, &outbox{}
	var unlocked unlocks
	o := New(db, rec, &unlocked, nil)
	o.SetMail(MailConfig{Sender: box, PublicURL: "https://as.test", ResetLifetime: time.Minute})
	ctx, by := t.Context(), audit.Event{Actor: "self"}
	u := storage.User{Username: "alice", Email: "alice@example.com", EmailVerified: true, PasswordHash: "h0"}
	if err := db.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	if err := o.SendReset(ctx, by, u); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(box.last(t).Link, "https://as.test/account/reset-password?token=")
	if box.last(t).Expires != time.Minute || o.ResetLifetime() != time.Minute {
		t.Errorf("lifetime %v", box.last(t).Expires)
	}
	got, err := o.ResetPassword(ctx, by, tok, "h1")
	if err != nil || got.PasswordHash != "h1" {
		t.Fatalf("reset: %v %+v", err, got)
	}
	if len(unlocked) != 1 || unlocked[0] != "alice" {
		t.Errorf("unlocked %v", unlocked)
	}
	if m := box.last(t); m.Kind != mail.KindPasswordWasReset || m.To != "alice@example.com" || m.Link != "" {
		t.Errorf("notice %+v", m)
	}
	if _, err := o.ResetPassword(ctx, by, tok, "h2"); !errors.Is(err, ErrInvalidAccountToken) {
		t.Fatalf("second use: %v", err)
	}
	if e := rec.es[len(rec.es)-1]; e.Type != audit.PasswordResetFailed || e.Reason != storage.TokenUsed || e.Outcome != audit.OutcomeFailure {
		t.Errorf("last event %+v", e)
	}
	o.SendReset(ctx, by, got)
	live := strings.TrimPrefix(box.last(t).Link, "https://as.test/account/reset-password?token=")
	if _, _, err := o.SetPassword(ctx, audit.Event{Actor: "cli"}, u.ID, "h3", nil); err != nil {
		t.Fatal(err)
	}
	if m := box.last(t); m.Kind != mail.KindPasswordChanged {
		t.Errorf("notice %+v", m)
	}
	if _, err := o.ResetPassword(ctx, by, live, "h4"); !errors.Is(err, ErrInvalidAccountToken) {
		t.Fatalf("a link after a password change: %v", err)
	}
	if MaskEmail("x") != "***" || MaskEmail("ü@example.com") != "ü***@example.com" {
		t.Errorf("MaskEmail %q %q", MaskEmail("x"), MaskEmail("ü@example.com"))
	}
}
