// Command oidc-login is a tiny relying party of Keyward's authorization
// endpoint: it listens on 127.0.0.1 at a random port, prints the URL to
// open, sends the browser to Keyward with PKCE (S256), state and nonce,
// exchanges the code for tokens, verifies the ID token and its nonce with
// go-oidc, and prints the claims. It uses the public client `serve --demo`
// registers (demo-spa, redirect http://127.0.0.1/callback on any port).
//
//	keyward serve --demo --db sqlite:demo.db &
//	go run ./examples/oidc-login -issuer http://localhost:8080
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func main() {
	issuer := flag.String("issuer", "http://localhost:8080", "Keyward's issuer URL")
	clientID := flag.String("client-id", "demo-spa", "a public client registered with redirect URI http://127.0.0.1/callback")
	flag.Parse()
	if err := run(context.Background(), *issuer, *clientID); err != nil {
		log.Fatal(err)
	}
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func run(ctx context.Context, issuer, clientID string) error {
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	conf := &oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: base + "/callback",
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the body, no secret
	verifier := provider.Verifier(&oidc.Config{ClientID: clientID})
	state, nonce, pkce := random(), random(), oauth2.GenerateVerifier()
	done := make(chan error, 1)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)), http.StatusFound)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("error") != "":
			http.Error(w, "sign-in failed: "+q.Get("error"), http.StatusBadRequest)
			done <- fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
			return
		case q.Get("state") != state || q.Get("iss") != issuer: // RFC 9207: the answer is from our issuer
			http.Error(w, "bad state or issuer", http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			http.Error(w, "code exchange failed", http.StatusBadGateway)
			done <- err
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(r.Context(), raw)
		if err != nil || idt.Nonce != nonce {
			http.Error(w, "ID token invalid", http.StatusBadGateway)
			done <- fmt.Errorf("ID token: %v (nonce match %v)", err, err == nil && idt.Nonce == nonce)
			return
		}
		var claims map[string]any
		idt.Claims(&claims)
		out, _ := json.MarshalIndent(claims, "", "  ")
		fmt.Fprintf(w, "<!DOCTYPE html><title>Signed in</title><h1>Signed in</h1><pre>%s</pre>", html.EscapeString(string(out)))
		fmt.Printf("ID token claims:\n%s\n", out)
		done <- nil
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stdout, "Open %s/ in your browser to sign in at %s\n", base, issuer)
	err = <-done
	srv.Shutdown(ctx)
	return err
}
