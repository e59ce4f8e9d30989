package account

import (
	"errors"
	"net/http"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// registrationAccepted is the one body of a registration that got as far as
// creating the account, whether the username was free or taken (RR-10,
// AC-R3): the answer never tells a caller that an account exists.
type registrationAccepted struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var acceptedBody = registrationAccepted{
	Status:  "accepted",
	Message: "if the username was available, the account now exists; sign in to use it",
}

// ActorSelf is the audit actor of an action a user took on their own
// behalf without being signed in (registration).
const ActorSelf = "self"

// Register serves POST /account/register, bound only when
// the server's Config.Registration is on. The body is strict JSON {"username",
// "password", "email"}; the username is normalised and must be of one
// script (NormalizeNewUsername), the e-mail address checked
// (NormalizeEmail) and the password vetted by the policy. A valid request
// counts against the per-IP registration limit, is hashed, and creates the
// account unverified; a free, a taken and a look-alike username
// (storage.ErrLookalike) get the same 202 body, after the same work (RR-10).
func (h *Handlers) Register(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if h.cfg.Passwords == nil {
		return errAccountsOff()
	}
	in, err := web.DecodeStrict(r, "username", "password", "email")
	if err != nil {
		return err
	}
	for _, k := range []string{"username", "password", "email"} {
		if in[k] == "" {
			return web.BadRequest("username, password and email are required")
		}
	}
	username, err := manage.NormalizeNewUsername(in["username"])
	if errors.Is(err, manage.ErrMixedScripts) {
		return web.BadRequest("the username mixes letters of different scripts (such as Latin and Cyrillic); write it in one script")
	}
	if err != nil {
		return web.BadRequest("the username must be 1 to 64 characters without spaces or control characters")
	}
	email, err := manage.NormalizeEmail(in["email"])
	if err != nil {
		return web.BadRequest("the email must be one bare address such as alice@example.com, with an ASCII (punycode) domain")
	}
	if err := h.checkNewPassword(in["password"], username, email); err != nil {
		return err
	}
	if err := h.cfg.Throttle.CountRegistration(ctx, web.ClientIP(ctx)); err != nil {
		return err
	}
	hash, err := h.cfg.Passwords.Hash(ctx, in["password"])
	if err != nil {
		return guard.HashingError(err)
	}
	u := storage.User{Username: username, Email: email, EmailVerified: false, PasswordHash: hash,
		PasswordChangedAt: storage.At(h.now()), CreatedAt: storage.At(h.now())}
	err = h.cfg.Store.CreateUser(ctx, &u)
	switch {
	case errors.Is(err, storage.ErrConflict):
		// The name (by storage.UsernameKey) is taken, or looks like a taken
		// one (storage.ErrLookalike: same storage.UsernameSkeleton). The
		// audit trail says which; the caller gets the answer a new account
		// gets, so neither tells which names exist (RR-10).
		reason := "username_taken"
		if errors.Is(err, storage.ErrLookalike) {
			reason = "username_lookalike"
		}
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.UserCreated, Outcome: audit.OutcomeFailure, Reason: reason,
			Actor: ActorSelf, UserAgent: r.UserAgent()})
	case err != nil:
		return err
	default:
		by := audit.Event{Actor: ActorSelf, UserAgent: r.UserAgent()}
		ev := by
		ev.Type, ev.Subject = audit.UserCreated, u.ID
		h.cfg.Audit.Record(ctx, ev)
		// The address is unverified: mail it a link (issue 14). A failure
		// to store the link is logged, not answered; the account exists and
		// an administrator or a later change can send another.
		if h.cfg.Links != nil && u.Email != "" {
			if err := h.cfg.Links.SendVerification(withLang(ctx, r), by, u, u.Email); err != nil {
				h.log.ErrorContext(ctx, "registration: verification link not issued", "sub", u.ID, "err", err)
			}
		}
	}
	web.NoStore(w)
	web.WriteJSON(w, http.StatusAccepted, acceptedBody)
	return nil
}
