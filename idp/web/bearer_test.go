package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestBearerError: RFC 6750 §3's WWW-Authenticate names the realm, and the
// error and its description when there is one; a request without a token
// gets no error attribute but an invalid_token body.
func TestBearerError(t *testing.T) {
	tests := []struct {
		code, desc string
		status     int
		wantHeader string
		wantCode   string
	}{
		{"", "an access token is required", http.StatusUnauthorized, `Bearer realm="keyward"`, ErrInvalidToken},
		{ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized,
			`Bearer realm="keyward", error="invalid_token", error_description="the access token is invalid or expired"`, ErrInvalidToken},
		{ErrInsufficientScope, "", http.StatusForbidden, `Bearer realm="keyward", error="insufficient_scope"`, ErrInsufficientScope},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		e := BearerError(w, tt.code, tt.desc, tt.status)
		if got := w.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
			t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantHeader)
		}
		if e.Code != tt.wantCode || e.Description != tt.desc || e.Status != tt.status {
			t.Errorf("error %+v, want code %q description %q status %d", e, tt.wantCode, tt.desc, tt.status)
		}
	}
}
