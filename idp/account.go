package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/password"
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
	UserSessionStore // sessions.go
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
func passwordRejected(rule, message string) *Error {
	return &Error{Code: ErrInvalidPassword, Description: message, Rule: rule, Status: http.StatusBadRequest}
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
func errAccountsOff() *Error { return &Error{Code: "not_found", Status: http.StatusNotFound} }

// maxJSONString caps one string member of an account body, in bytes.
// Passwords are capped lower by the policy and the hasher (password.MaxBytes).
const maxJSONString = 4096

// decodeStrict reads r's body as one JSON object whose members are all
// strings, each named exactly (case-sensitively) as one of fields and
// present at most once, with nothing after the object (IN-06, AC-A1). It
// rejects what encoding/json would let through: unknown, duplicate and
// case-variant members, null and non-string values, nested values (without
// descending into them), invalid UTF-8, unpaired surrogate escapes and
// trailing data. Members absent from the body are absent from the map.
// The error is a 400 invalid_request (415 for another media type, 413 for
// an oversize body) whose description never repeats a value.
func decodeStrict(r *http.Request, fields ...string) (map[string]string, error) {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return nil, badRequest("parameters belong in the request body, not the URL")
	}
	body, err := readJSONBody(r)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		return nil, badRequest("the request body is not valid UTF-8")
	}
	notObject := badRequest("the request body must be one JSON object of strings")
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject
	}
	out := make(map[string]string, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notObject
		}
		name, _ := tok.(string)
		known := false
		for _, f := range fields {
			known = known || f == name
		}
		if !known {
			return nil, badRequest(fmt.Sprintf("unknown member %q; the members are %s", truncate(name, 64), strings.Join(fields, ", ")))
		}
		if _, dup := out[name]; dup {
			return nil, badRequest(fmt.Sprintf("member %q appears more than once", name))
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, notObject
		}
		v, ok := tok.(string)
		if !ok {
			// A number, true, false, null, or the start of an object or
			// array, which is refused without reading it.
			return nil, badRequest(fmt.Sprintf("member %q must be a string", name))
		}
		if len(v) > maxJSONString {
			return nil, badRequest(fmt.Sprintf("member %q is too long", name))
		}
		if strings.ContainsRune(v, utf8.RuneError) {
			return nil, badRequest(fmt.Sprintf("member %q is not valid Unicode", name))
		}
		out[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("the request body must hold one JSON object and nothing after it")
	}
	return out, nil
}

// readJSONBody checks that r carries one application/json body (UTF-8, no
// other media-type parameter) and reads it: 415 for another media type,
// 413 past the middleware's body cap. The strict decoders of the account
// and admin APIs both start here.
func readJSONBody(r *http.Request) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || len(r.Header.Values("Content-Type")) > 1 {
		return nil, &Error{Code: ErrInvalidRequest, Description: "the request body must be application/json",
			Status: http.StatusUnsupportedMediaType}
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, &Error{Code: ErrInvalidRequest, Description: "the request body must be UTF-8 application/json",
				Status: http.StatusUnsupportedMediaType}
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Code: ErrInvalidRequest, Description: "the request body is too large",
				Status: http.StatusRequestEntityTooLarge}
		}
		return nil, badRequest("the request body is unreadable")
	}
	return body, nil
}
