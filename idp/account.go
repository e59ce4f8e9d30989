package idp

import (
	"context"
	"errors"
	"net/http"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// The account self-service API (docs/account.md): POST /account/register
// (account_register.go) and POST /account/password (account_password.go).
// Both take strict JSON bodies (IN-06) and vet new passwords with the
// password policy (PW-05 to PW-08).

// AccountStore is the part of storage the account endpoints need beyond
// TokenStore.
type AccountStore interface {
	CreateUser(ctx context.Context, u *storage.User) error
	manage.UserSessionStore // idp/manage/ops.go
}

// ErrInvalidPassword is the error code of a new password the policy refuses;
// the body names the rule (a password.Rule* constant or RuleSameAsCurrent).
const ErrInvalidPassword = "invalid_password"

// RuleSameAsCurrent is the rule a password change breaks when the new
// password equals the current one (after NFKC normalisation).
const RuleSameAsCurrent = "same_as_current"

// passwordRejected is a new password the policy refused: 400
// {"error":"invalid_password","rule":...}. message is fit for the user and
// never contains the password.
func passwordRejected(rule, message string) *web.Error {
	return &web.Error{Code: ErrInvalidPassword, Description: message, Rule: rule, Status: http.StatusBadRequest}
}

// checkNewPassword applies the password policy (Config.Policy) to a new
// password for the account named username with email.
func (s *Server) checkNewPassword(pw, username, email string) error {
	pol := s.cfg.Policy
	if pol == nil {
		pol = &password.Policy{}
	}
	err := pol.Check(pw, username, email)
	var pe *password.PolicyError
	if errors.As(err, &pe) {
		return passwordRejected(pe.Rule, pe.Message)
	}
	return err
}

// errAccountsOff answers a request to an account endpoint when the server
// has no password hasher: the endpoint does not exist.
func errAccountsOff() *web.Error { return &web.Error{Code: "not_found", Status: http.StatusNotFound} }
