package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

var demoCreds = regexp.MustCompile(`client_secret: (\S+)[\s\S]*password:\s+(\S+)`)

// TestDemoEndToEnd starts keyward serve --demo as its own process and signs
// the demo user in with x/oauth2, refreshes, and uses client credentials,
// exactly as the README's curl lines do.
func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, nil, "--demo", "--database", "sqlite:"+dir+"/keyward.db", "--key-encryption-key-file", writeKEK(t, dir))
	secret, pw := demoCredentials(t, p)
	ctx := context.Background()
	conf := &oauth2.Config{ClientID: "demo-app", ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: p.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}, Scopes: []string{"openid", "api:read"}}
	tok, err := conf.PasswordCredentialsToken(ctx, "demo", pw)
	if err != nil {
		t.Fatalf("password grant: %v\n%s", err, p.Log.String())
	}
	if tok.RefreshToken == "" || !strings.HasPrefix(tok.RefreshToken, "kwrt_") || tok.Extra("id_token") == nil {
		t.Fatalf("token response lacks a refresh or ID token: %+v", tok)
	}
	res, err := conf.Client(ctx, tok).Get(p.URL + "/userinfo")
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	json.NewDecoder(res.Body).Decode(&info)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || info["sub"] == "" {
		t.Fatalf("userinfo %d %v", res.StatusCode, info)
	}
	tok.Expiry = tok.Expiry.Add(-24 * time.Hour)
	fresh, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	cc := clientcredentials.Config{ClientID: "demo-app", ClientSecret: secret, TokenURL: p.URL + "/oauth2/token", Scopes: []string{"api:read"}}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	// Disabling the client ends its logins for good (CA-09): enabling it
	// again does not bring the refresh token back.
	dsn := "sqlite:" + dir + "/keyward.db"
	mustRun(t, dsn, "", "clients", "disable", "demo-app")
	revoked := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--type", "token_revoked", "--output", "json"))
	if len(revoked) != 1 || revoked[0]["subject"] != "demo-app" || revoked[0]["client_id"] != "demo-app" || revoked[0]["reason"] != "client" {
		t.Fatalf("token_revoked after disabling the client: %v", revoked)
	}
	mustRun(t, dsn, "", "clients", "enable", "demo-app")
	fresh.Expiry = time.Now().Add(-time.Hour)
	if _, err := conf.TokenSource(ctx, fresh).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after the client was disabled and enabled again: %v", err)
	}
	for _, s := range []string{secret, pw, tok.AccessToken, tok.RefreshToken, fresh.RefreshToken} {
		if strings.Contains(p.Log.String(), s) {
			t.Fatal("a secret or token reached the server log")
		}
	}
}
