package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestRefreshKeepsAudience is finding 8 (RFC 8707 §2): a refresh is
// limited to the audience of the original grant. C1 may ask for rs1 and
// rs2; alice's login was for rs2, so a refresh asking for rs1 (registered
// for C1, never granted) is invalid_target, as is any refresh once C1 is
// no longer registered for rs2. A refused refresh uses nothing up.
func TestRefreshKeepsAudience(t *testing.T) {
	const granted, other = "https://rs2.test", "https://rs1.test"
	tests := []struct {
		name       string
		act        func(t *testing.T, e *idptest.Env) // before the refresh; undone afterwards
		extra      []string
		wantStatus int
		wantCode   string
	}{
		{"no audience asked", nil, nil, 200, ""},
		{"the granted audience", nil, []string{"audience", granted}, 200, ""},
		{"the granted resource", nil, []string{"resource", granted}, 200, ""},
		{"another registered audience", nil, []string{"audience", other}, 400, web.ErrInvalidTarget},
		{"another registered resource", nil, []string{"resource", other}, 400, web.ErrInvalidTarget},
		{"an unregistered audience", nil, []string{"audience", "https://evil.test"}, 400, web.ErrInvalidTarget},
		{"audience and resource differ", nil, []string{"audience", granted, "resource", other}, 400, web.ErrInvalidRequest},
		{"the granted audience no longer registered", func(t *testing.T, e *idptest.Env) {
			setC1Audiences(e, t, storage.List{other})
		}, nil, 400, web.ErrInvalidTarget},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rt := e.Login("scope", "read", "audience", granted).Str("refresh_token")
				if tt.act != nil {
					tt.act(t, e)
					defer setC1Audiences(e, t, storage.List{other, granted})
				}
				r := e.Token("C1", idptest.RefreshForm(rt, tt.extra...))
				if tt.wantStatus != http.StatusOK {
					idptest.CheckE1(t, r, tt.wantStatus, tt.wantCode)
					// Nothing was used up: the token still refreshes, for
					// the granted audience.
					setC1Audiences(e, t, storage.List{other, granted})
					r = e.Token("C1", idptest.RefreshForm(rt))
				}
				if r.Status != http.StatusOK {
					t.Fatalf("refresh: %d %s", r.Status, r.Body)
				}
				if _, p := idptest.JWTParts(t, r.Str("access_token")); p["aud"] != granted {
					t.Errorf("aud %v, want %q", p["aud"], granted)
				}
			})
		}
	})
}

// TestRefreshKeepsIssuerAudience: a family granted for the issuer itself
// (a client registered for no audience) keeps it, even if the client is
// given audiences later.
func TestRefreshKeepsIssuerAudience(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		r := e.Token("ROPC", idptest.PasswordForm("alice", idptest.AlicePassword))
		if r.Status != http.StatusOK {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		if _, err := e.DB.UpdateClient(context.Background(), "ROPC", func(c *storage.Client) error {
			c.Audiences = storage.List{"https://rs1.test"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		idptest.CheckE1(t, e.Token("ROPC", idptest.RefreshForm(r.Str("refresh_token"), "audience", "https://rs1.test")), 400, web.ErrInvalidTarget)
		r = e.Token("ROPC", idptest.RefreshForm(r.Str("refresh_token")))
		if r.Status != http.StatusOK {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		if _, p := idptest.JWTParts(t, r.Str("access_token")); p["aud"] != e.URL {
			t.Errorf("aud %v, want the issuer %q", p["aud"], e.URL)
		}
	})
}

func setC1Audiences(e *idptest.Env, t *testing.T, auds storage.List) {
	t.Helper()
	if _, err := e.DB.UpdateClient(context.Background(), "C1", func(c *storage.Client) error { c.Audiences = auds; return nil }); err != nil {
		t.Fatal(err)
	}
}
