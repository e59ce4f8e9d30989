package oauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/web"
)

// TestCheckLengths drives the pure IN-03 decision with plain values.
func TestCheckLengths(t *testing.T) {
	tests := []struct {
		name string
		f    form
		ok   bool
	}{
		{"empty", form{}, true},
		{"all at their limits", form{
			"username": strings.Repeat("ü", MaxUsernameChars), "password": strings.Repeat("p", 256),
			"scope": strings.Repeat("s", MaxScopeBytes), "refresh_token": strings.Repeat("k", MaxRefreshTokenBytes),
		}, true},
		{"64 scopes", form{"scope": strings.TrimSpace(strings.Repeat("a ", MaxScopeTokens))}, true},
		{"username", form{"username": strings.Repeat("u", MaxUsernameChars+1)}, false},
		{"password", form{"password": strings.Repeat("p", 257)}, false},
		{"password after NFKC", form{"password": strings.Repeat("\uFDFA", 8)}, false},
		{"scope bytes", form{"scope": strings.Repeat("s", MaxScopeBytes+1)}, false},
		{"scope values", form{"scope": strings.TrimSpace(strings.Repeat("a ", MaxScopeTokens+1))}, false},
		{"refresh_token", form{"refresh_token": strings.Repeat("k", MaxRefreshTokenBytes+1)}, false},
		{"unknown parameter", form{"pad": strings.Repeat("x", 10000)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLengths(tt.f)
			if tt.ok {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				return
			}
			var oe *web.Error
			if !errors.As(err, &oe) || oe.Code != web.ErrInvalidRequest || oe.Status != 0 && oe.Status != http.StatusBadRequest {
				t.Fatalf("err %v, want 400 invalid_request", err)
			}
		})
	}
}
