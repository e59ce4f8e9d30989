package web

import "net/http"

// ErrInsufficientScope is RFC 6750 §3.1's 403 code.
const ErrInsufficientScope = "insufficient_scope"

// BearerError sets RFC 6750 §3's WWW-Authenticate and returns the error
// WriteError sends. code "" is a request without a token: no error
// attribute (§3.1).
func BearerError(w http.ResponseWriter, code, description string, status int) *Error {
	h := `Bearer realm="keyward"`
	if code != "" {
		h += `, error="` + code + `"`
		if description != "" {
			h += `, error_description="` + description + `"`
		}
	}
	w.Header().Set("WWW-Authenticate", h)
	if code == "" {
		code = ErrInvalidToken
	}
	return &Error{Code: code, Description: description, Status: status}
}
