package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// goRP is a relying party of Keyward's authorization endpoint built as an
// application would build one: golang.org/x/oauth2 for the code flow with
// PKCE (S256), go-oidc for discovery and the ID token (signature, issuer,
// audience, expiry) and a nonce check of its own; RP-initiated logout
// through the discovered end_session_endpoint. It serves on 127.0.0.1:
//
//	/                 → Keyward's authorization endpoint (?prompt=none passes prompt=none)
//	/callback         → checks state and iss, exchanges the code, verifies the ID token; shows the claims
//	/logout           → end_session_endpoint with id_token_hint, post_logout_redirect_uri and state
//	/logged-out       → checks the state; "Signed out"
type goRP struct {
	URL      string // http://127.0.0.1:port
	clientID string
	ln       net.Listener

	mu                  sync.Mutex
	issuer, endSession  string
	conf                *oauth2.Config
	verifier            *oidc.IDTokenVerifier
	state, nonce, pkce  string
	rawIDToken          string
	claims              map[string]any
	logoutState, failed string
}

// newGoRP listens on a loopback port, so the client can be registered
// with its exact redirect URIs before Keyward runs; start serves.
func newGoRP(t *testing.T, clientID string) *goRP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &goRP{URL: "http://" + ln.Addr().String(), clientID: clientID, ln: ln}
}

func (rp *goRP) redirectURI() string        { return rp.URL + "/callback" }
func (rp *goRP) postLogoutRedirect() string { return rp.URL + "/logged-out" }

// start discovers the issuer and serves until the test ends.
func (rp *goRP) start(t *testing.T, issuer string) {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("discovery lacks end_session_endpoint: %v", err)
	}
	rp.issuer, rp.endSession = issuer, meta.EndSession
	rp.conf = &oauth2.Config{ClientID: rp.clientID, Endpoint: provider.Endpoint(), RedirectURL: rp.redirectURI(),
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	rp.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams // public client: client_id in the body
	rp.verifier = provider.Verifier(&oidc.Config{ClientID: rp.clientID})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", rp.login)
	mux.HandleFunc("GET /callback", rp.callback)
	mux.HandleFunc("GET /logout", rp.logout)
	mux.HandleFunc("GET /logged-out", rp.loggedOut)
	srv := &http.Server{Handler: mux}
	go srv.Serve(rp.ln)
	t.Cleanup(func() { srv.Close() })
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func page(w http.ResponseWriter, status int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html><title>%s</title><h1>%s</h1>%s", title, title, body)
}

func (rp *goRP) login(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.state, rp.nonce, rp.pkce = random(), random(), oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(rp.pkce), oidc.Nonce(rp.nonce)}
	if p := r.URL.Query().Get("prompt"); p != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", p))
	}
	http.Redirect(w, r, rp.conf.AuthCodeURL(rp.state, opts...), http.StatusFound)
}

func (rp *goRP) callback(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	q := r.URL.Query()
	switch {
	case q.Get("state") != rp.state || q.Get("iss") != rp.issuer: // RFC 9207
		rp.failed = "bad state or iss"
		page(w, http.StatusBadRequest, "Sign-in failed", `<p id="error">bad state or iss</p>`)
		return
	case q.Get("error") != "":
		rp.failed = q.Get("error")
		page(w, http.StatusOK, "Sign-in failed", `<p id="error">`+html.EscapeString(q.Get("error"))+`</p>`)
		return
	}
	tok, err := rp.conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(rp.pkce))
	if err != nil {
		rp.failed = "exchange: " + err.Error()
		page(w, http.StatusBadGateway, "Sign-in failed", `<p id="error">code exchange failed</p>`)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(r.Context(), raw)
	if err != nil || idt.Nonce != rp.nonce {
		rp.failed = fmt.Sprintf("ID token: %v (nonce match %v)", err, err == nil && idt.Nonce == rp.nonce)
		page(w, http.StatusBadGateway, "Sign-in failed", `<p id="error">ID token invalid</p>`)
		return
	}
	var claims map[string]any
	idt.Claims(&claims)
	rp.rawIDToken, rp.claims, rp.failed = raw, claims, ""
	out, _ := json.MarshalIndent(claims, "", "  ")
	page(w, http.StatusOK, "Signed in", `<pre id="claims">`+html.EscapeString(string(out))+`</pre><p><a id="logout" href="/logout">Sign out</a></p>`)
}

func (rp *goRP) logout(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.logoutState = random()
	q := url.Values{"id_token_hint": {rp.rawIDToken}, "client_id": {rp.clientID},
		"post_logout_redirect_uri": {rp.postLogoutRedirect()}, "state": {rp.logoutState}}
	http.Redirect(w, r, rp.endSession+"?"+q.Encode(), http.StatusFound)
}

func (rp *goRP) loggedOut(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if r.URL.Query().Get("state") != rp.logoutState {
		page(w, http.StatusBadRequest, "Logout failed", `<p id="error">bad state</p>`)
		return
	}
	rp.rawIDToken, rp.claims = "", nil
	page(w, http.StatusOK, "Signed out", "")
}

// result is what the last callback saw: the ID token's claims, or why it
// failed.
func (rp *goRP) result() (map[string]any, string) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.claims, rp.failed
}
