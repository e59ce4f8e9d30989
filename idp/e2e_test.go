package idp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestEndToEnd drives a real server on loopback with golang.org/x/oauth2
// and go-oidc, on SQLite and PostgreSQL: discovery, the password grant, a
// refreshing TokenSource after forced expiry, client credentials, ID token
// verification, userinfo, revocation — and no secret in the logs.
func TestEndToEnd(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b)
		ctx := context.Background()

		provider, err := oidc.NewProvider(ctx, e.URL)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		conf := &oauth2.Config{
			ClientID: "C1", ClientSecret: e.Secrets["C1"],
			Endpoint: oauth2.Endpoint{TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
			Scopes:   []string{oidc.ScopeOpenID, "profile", "email", "read"},
		}
		tok, err := conf.PasswordCredentialsToken(ctx, "alice", idptest.AlicePassword)
		if err != nil {
			t.Fatalf("password grant: %v", err)
		}
		if tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") || time.Until(tok.Expiry) > 16*time.Minute {
			t.Fatalf("token %+v", tok)
		}

		// The ID token verifies against the discovered JWKS.
		verifier := provider.Verifier(&oidc.Config{ClientID: "C1"})
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("ID token: %v", err)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
		var claims struct {
			Username string `json:"preferred_username"`
			Email    string `json:"email"`
		}
		if err := idt.Claims(&claims); err != nil || idt.Subject != e.Users["alice"].ID || claims.Username != "alice" || claims.Email != "alice@example.com" {
			t.Fatalf("ID token claims %+v sub %q (%v)", claims, idt.Subject, err)
		}

		// Userinfo through go-oidc.
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != e.Users["alice"].ID || ui.Email != "alice@example.com" {
			t.Fatalf("userinfo %+v (%v)", ui, err)
		}

		// A refreshing TokenSource after forcing expiry.
		old := *tok
		tok.Expiry = time.Now().Add(-time.Minute)
		ts := conf.TokenSource(ctx, tok)
		fresh, err := ts.Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == old.RefreshToken || fresh.RefreshToken == "" {
			t.Fatal("refresh did not rotate")
		}
		if _, err := verifier.Verify(ctx, fresh.Extra("id_token").(string)); err != nil {
			t.Fatalf("refreshed ID token: %v", err)
		}
		client := oauth2.NewClient(ctx, ts)
		resp, err := client.Get(provider.UserInfoEndpoint())
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("userinfo with the refreshed token: %v %v", resp, err)
		}
		resp.Body.Close()

		// Client credentials.
		cc := &clientcredentials.Config{ClientID: "CC", ClientSecret: e.Secrets["CC"], TokenURL: provider.Endpoint().TokenURL,
			Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader, EndpointParams: map[string][]string{"audience": {"https://rs1.test"}}}
		ct, err := cc.Token(ctx)
		if err != nil || ct.RefreshToken != "" {
			t.Fatalf("client credentials: %+v %v", ct, err)
		}
		// client_secret_post through x/oauth2.
		post := &clientcredentials.Config{ClientID: "POST", ClientSecret: e.Secrets["POST"], TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams}
		if _, err := post.Token(ctx); err != nil {
			t.Fatalf("client_secret_post: %v", err)
		}
		// The CA-02 client through x/oauth2's own encoding.
		ab := &clientcredentials.Config{ClientID: "a:b+c", ClientSecret: "p@ss w%rd", TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
		if _, err := ab.Token(ctx); err != nil {
			t.Fatalf("encoded Basic credentials: %v", err)
		}
		// A wrong password surfaces as an oauth2.RetrieveError with the code.
		_, err = conf.PasswordCredentialsToken(ctx, "alice", "wrong")
		var re *oauth2.RetrieveError
		if !idptest.ErrorsAs(err, &re) || re.ErrorCode != web.ErrInvalidGrant {
			t.Fatalf("wrong password: %v", err)
		}

		// Revocation ends the refresh chain.
		r := e.Do(idptest.Request{Path: "/oauth2/revoke", Auth: e.Basic("C1"), Body: "token=" + fresh.RefreshToken})
		if r.Status != 200 {
			t.Fatalf("revoke: %d", r.Status)
		}
		fresh.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(ctx, fresh).Token(); err == nil {
			t.Fatal("a revoked refresh token refreshed")
		}

		// Nothing secret reached the logs (LG, RS-18).
		logs := e.Logs.String()
		for name, secret := range map[string]string{
			"password": idptest.AlicePassword, "client secret": e.Secrets["C1"], "refresh token": old.RefreshToken,
			"access token": old.AccessToken, "refreshed token": fresh.RefreshToken, "cc token": ct.AccessToken,
		} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s is in the logs", name)
			}
		}
		for _, event := range []string{"token issued", "refresh token rotated", "token revoked",
			"login_failed", "login_succeeded", "token_issued", "token_refreshed", "token_revoked"} {
			if !strings.Contains(logs, `"msg":"`+event+`"`) {
				t.Errorf("no %q log", event)
			}
		}
		// The same events are audit rows (DESIGN "Observability").
		e.Srv.Auditor().Flush() // token_issued rows are written behind the answer
		evs, err := e.DB.AuditEvents(ctx, storage.AuditFilter{})
		if err != nil || len(evs) < 5 {
			t.Errorf("%d audit rows (%v)", len(evs), err)
		}
		if !strings.Contains(logs, `"request_id"`) || !strings.Contains(logs, `"client_ip":"127.0.0.1"`) {
			t.Error("logs lack request id or client IP")
		}
	})
}
