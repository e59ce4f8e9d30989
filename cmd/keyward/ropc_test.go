package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
)

// TestPasswordGrantLimitsThroughServe is TE-16 on a real serve: the
// forbidden scopes come from --password-grant-forbidden-scopes, the
// password-grant refresh lifetime from its KEYWARD_ variable. A forbidden
// scope is invalid_scope by password, left out of the default scope, and
// granted to client_credentials; the login's refresh family is stored with
// the password-grant lifetime.
func TestPasswordGrantLimitsThroughServe(t *testing.T) {
	t.Chdir(t.TempDir())
	const dsn = "sqlite:keyward.db"
	c := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "app",
		"--grant", "password", "--grant", "refresh_token", "--grant", "client_credentials",
		"--scope", "openid api:read api:write", "--output", "json"))
	secret, _ := c["client_secret"].(string)
	uid := createLoginUser(t, dsn, "alice", alicePassword)
	t.Setenv("KEYWARD_PASSWORD_GRANT_REFRESH_TOKEN_TTL", "48h")
	s := startServe(t, "--password-grant-forbidden-scopes", "api:write, billing")

	auth := http.Header{"Authorization": {basicAuth("app", secret)}}
	post := func(form url.Values) tokenReply {
		t.Helper()
		return send(t, http.DefaultClient, http.MethodPost, s.URL+"/oauth2/token", auth, form)
	}
	login := func(scope string) tokenReply {
		t.Helper()
		f := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return post(f)
	}
	scopeOf := func(what string, r tokenReply) string {
		t.Helper()
		checkIssued(t, what, r)
		sc, _ := decode[map[string]any](t, r.body)["scope"].(string)
		return sc
	}

	checkTokenErrorE1(t, "password grant for api:write", login("openid api:write"), 400, "invalid_scope")
	checkTokenErrorE1(t, "password grant for keyward:admin", login("keyward:admin"), 400, "invalid_scope")
	if sc := scopeOf("password grant, default scope", login("")); sc != "api:read" {
		t.Errorf("password grant, default scope: %q, want api:read", sc)
	}
	if sc := scopeOf("password grant for openid api:read", login("openid api:read")); sc != "openid api:read" {
		t.Errorf("password grant for openid api:read: %q", sc)
	}
	if sc := scopeOf("client_credentials for api:write", post(url.Values{"grant_type": {"client_credentials"}, "scope": {"api:write"}})); sc != "api:write" {
		t.Errorf("client_credentials for api:write: %q", sc)
	}
	s.stop(t)

	db, err := storage.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fams, err := db.RefreshFamilies(t.Context(), uid)
	if err != nil || len(fams) != 2 {
		t.Fatalf("refresh families %v, %v", fams, err)
	}
	for _, f := range fams {
		if life := f.ExpiresAt.Time.Sub(f.CreatedAt.Time); life != 48*time.Hour {
			t.Errorf("family %s lives %v, want 48h (KEYWARD_PASSWORD_GRANT_REFRESH_TOKEN_TTL)", f.ID, life)
		}
	}
}

// TestPasswordGrantFlagsRejectBadValues: serve refuses a password-grant
// refresh lifetime that is not a positive duration or exceeds
// --refresh-token-ttl, and a forbidden scope that is not a scope token,
// from a flag or from its KEYWARD_ variable.
func TestPasswordGrantFlagsRejectBadValues(t *testing.T) {
	t.Chdir(t.TempDir())
	const (
		ttlFlag   = "--password-grant-refresh-token-ttl"
		scopeFlag = "--password-grant-forbidden-scopes"
	)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"zero lifetime", []string{ttlFlag, "0s"}, nil, ttlFlag},
		{"negative lifetime", []string{ttlFlag, "-1h"}, nil, ttlFlag},
		{"not a duration", []string{ttlFlag, "two days"}, nil, ttlFlag},
		{"above the default --refresh-token-ttl", []string{ttlFlag, "721h"}, nil, ttlFlag},
		{"above a set --refresh-token-ttl", []string{"--refresh-token-ttl", "240h", ttlFlag, "241h"}, nil, ttlFlag},
		{"environment above a set --refresh-token-ttl", []string{"--refresh-token-ttl", "240h"},
			map[string]string{"KEYWARD_PASSWORD_GRANT_REFRESH_TOKEN_TTL": "241h"}, ttlFlag},
		{"lifetime from the environment", nil, map[string]string{"KEYWARD_PASSWORD_GRANT_REFRESH_TOKEN_TTL": "0s"},
			"KEYWARD_PASSWORD_GRANT_REFRESH_TOKEN_TTL"},
		{"quote in a scope", []string{scopeFlag, `api:read,a"b`}, nil, scopeFlag},
		{"backslash in a scope", []string{scopeFlag, `a\b`}, nil, scopeFlag},
		{"space inside a scope", []string{scopeFlag, "api:read api:write"}, nil, scopeFlag},
		{"scope from the environment", nil, map[string]string{"KEYWARD_PASSWORD_GRANT_FORBIDDEN_SCOPES": "billing,bad\x01scope"}, scopeFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := run(t, "sqlite:keyward.db", "", append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}
