package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/storage"
)

// Error is an OAuth 2.0 error response (RFC 6749 §5.2).
type Error struct {
	Code, Description string        // Description is for the client, never err.Error()
	Rule              string        // the password rule broken, for invalid_password
	Status            int           // 400 unless the RFC says otherwise
	RetryAfter        time.Duration // sets Retry-After when positive (429, 503)
	Err               error         // the cause: logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Err }

// OAuth error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8707 §2).
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidClient        = "invalid_client"
	ErrInvalidGrant         = "invalid_grant"
	ErrUnauthorizedClient   = "unauthorized_client"
	ErrUnsupportedGrantType = "unsupported_grant_type"
	ErrInvalidScope         = "invalid_scope"
	ErrInvalidTarget        = "invalid_target"
	ErrInvalidToken         = "invalid_token"
	ErrServerError          = "server_error"
	ErrTemporarilyUnavail   = "temporarily_unavailable"
	ErrSlowDown             = "slow_down"
)

// BadRequest is the common 400 invalid_request.
func BadRequest(description string) *Error {
	return &Error{Code: ErrInvalidRequest, Description: description, Status: http.StatusBadRequest}
}

// TooLarge answers a body past its cap (IN-01): 413 with an RFC 6749
// §5.2 body, as RFC 9110 §15.5.14 and the OWASP REST Security Cheat Sheet
// advise.
func TooLarge() *Error {
	return &Error{Code: ErrInvalidRequest, Description: "the request body is too large",
		Status: http.StatusRequestEntityTooLarge}
}

type wireError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Rule        string `json:"rule,omitempty"`
}

// WriteError is the only writer of RFC 6749 §5.2 error bodies. An *Error
// goes out as it is; a deadline or an unreachable database becomes a 503
// with Retry-After, anything else a generic 500. Causes go to log, never to
// the client.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var oe *Error
	switch {
	case errors.As(err, &oe):
		if oe.Status == http.StatusServiceUnavailable {
			log.WarnContext(r.Context(), "request refused: overloaded", "path", r.URL.Path, "code", oe.Code, "err", oe.Err)
		} else if oe.Err != nil && oe.Status >= 500 {
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "code", oe.Code, "err", oe.Err)
		}
	case errors.Is(err, context.DeadlineExceeded):
		// The request outlived its deadline (the server's request timeout),
		// waiting on a busy database: say so and when to retry, before the
		// server's write timeout would drop the connection without an answer.
		log.WarnContext(r.Context(), "request timed out", "path", r.URL.Path, "err", err)
		oe = &Error{Code: ErrTemporarilyUnavail, Description: "the server is busy; retry later", Status: http.StatusServiceUnavailable, RetryAfter: time.Second}
	case storage.Unavailable(err):
		// The database is unreachable or gone: say so and when to retry
		// (AV-07), with the detail in the log only (LG-06).
		log.WarnContext(r.Context(), "database unavailable", "path", r.URL.Path, "err", err)
		oe = &Error{Code: ErrTemporarilyUnavail, Description: "the server cannot reach its database; retry later", Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second}
	default:
		log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		oe = &Error{Code: ErrServerError, Status: http.StatusInternalServerError}
	}
	if oe.Status == 0 {
		oe.Status = http.StatusBadRequest
	}
	if oe.Code == ErrInvalidClient {
		oe.Status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="keyward"`)
	}
	if oe.RetryAfter > 0 {
		secs := int((oe.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	NoStore(w)
	WriteJSON(w, oe.Status, wireError{Error: oe.Code, Description: oe.Description, Rule: oe.Rule})
}

// NoStore marks a response as never cacheable (RFC 6749 §5.1).
func NoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// Content types of Keyward's JSON answers, with the charset ASVS 4.1.1 asks
// for (TH-04). RFC 8259 §11 defines no charset parameter for JSON and says
// it has no effect on conforming readers, so clients (x/oauth2, go-oidc)
// read these exactly as before.
const (
	ContentTypeJSON   = "application/json; charset=utf-8"
	ContentTypeJWKSet = "application/jwk-set+json; charset=utf-8" // RFC 7517 §8.5
)

// WriteJSON writes v as a JSON body with the given status: every JSON answer
// but the prepared JWKS and metadata documents goes through it.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// HandlerFunc is a handler that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts a HandlerFunc, sending any error through WriteError with log.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(log, w, r, err)
		}
	})
}
