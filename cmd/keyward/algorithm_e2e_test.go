package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// TestServeKeyAlgorithm runs a real keyward process with --key-algorithm
// ES256 and one with EdDSA: the JWKS holds keys of that algorithm only,
// discovery lists it, a client_credentials token verifies with the verify
// package (default allowlist) through the JWKS and by the server's own
// introspection, go-oidc's verifier accepts
// an ID token from the password grant, and `keys list` shows each key's alg.
func TestServeKeyAlgorithm(t *testing.T) {
	for _, tt := range []struct{ alg, kty, crv string }{{"ES256", "EC", "P-256"}, {"EdDSA", "OKP", "Ed25519"}} {
		t.Run(tt.alg, func(t *testing.T) {
			dir := t.TempDir()
			dsn := "sqlite:" + dir + "/keyward.db"
			p := startProcess(t, nil, "--demo", "--database", dsn, "--key-encryption-key-file", writeKEK(t, dir), "--key-algorithm", tt.alg)
			secret, pw := demoCredentials(t, p)
			ctx := t.Context()
			jwksURL := p.URL + "/.well-known/jwks.json"

			var jwks struct{ Keys []map[string]string }
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
			if status := decodeOK(t, req, &jwks); status != http.StatusOK || len(jwks.Keys) != 2 {
				t.Fatalf("jwks: %d, %d keys", status, len(jwks.Keys))
			}
			for _, k := range jwks.Keys {
				if k["alg"] != tt.alg || k["kty"] != tt.kty || k["crv"] != tt.crv || k["d"] != "" {
					t.Fatalf("JWK %v, want a public %s %s key for %s", k, tt.kty, tt.crv, tt.alg)
				}
			}
			var meta struct {
				IDTokenAlgs []string `json:"id_token_signing_alg_values_supported"`
			}
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/.well-known/openid-configuration", nil)
			if status := decodeOK(t, req, &meta); status != http.StatusOK || !slices.Equal(meta.IDTokenAlgs, []string{tt.alg}) {
				t.Fatalf("discovery: %d, id_token_signing_alg_values_supported %v", status, meta.IDTokenAlgs)
			}

			v, err := verify.New(ctx, verify.Config{Issuer: processIssuer, Audience: "api", JWKSURL: jwksURL})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			cc := demoClientToken(t, p, secret)
			if hdr := jwtHeader(t, cc); hdr["alg"] != tt.alg || hdr["typ"] != "at+jwt" {
				t.Fatalf("access token header %v", hdr)
			}
			if _, err := v.Verify(ctx, cc); err != nil {
				t.Fatalf("verify, client_credentials token: %v", err)
			}
			if !demoIntrospect(t, p, secret, cc) {
				t.Fatal("the server's introspection refuses its own token")
			}

			form := url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {pw}, "scope": {"openid api:read"}}
			req = testsupport.FormRequest(t, http.MethodPost, p.URL+"/oauth2/token", form)
			req.SetBasicAuth("demo-app", secret)
			var tr struct {
				IDToken string `json:"id_token"`
			}
			if status := decodeOK(t, req, &tr); status != http.StatusOK || tr.IDToken == "" {
				t.Fatalf("password grant: %d, id_token %q", status, tr.IDToken)
			}
			idv := oidc.NewVerifier(processIssuer, oidc.NewRemoteKeySet(ctx, jwksURL),
				&oidc.Config{ClientID: "demo-app", SupportedSigningAlgs: []string{tt.alg}})
			idTok, err := idv.Verify(ctx, tr.IDToken)
			if err != nil {
				t.Fatalf("go-oidc, ID token: %v", err)
			}
			if idTok.Subject == "" {
				t.Fatal("ID token without sub")
			}

			out := mustRun(t, dsn, "", "keys", "list")
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[0], "ALG") ||
				strings.Count(out, " "+tt.alg+" ") != 2 {
				t.Fatalf("keys list:\n%s", out)
			}
			var listed []struct{ Alg string }
			if err := json.Unmarshal([]byte(mustRun(t, dsn, "", "keys", "list", "--output", "json")), &listed); err != nil ||
				len(listed) != 2 || listed[0].Alg != tt.alg || listed[1].Alg != tt.alg {
				t.Fatalf("keys list --output json: %+v, %v", listed, err)
			}
		})
	}
}

// jwtHeader decodes a compact JWS's protected header.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestKeyAlgorithmFlagChecked: an algorithm Keyward does not sign with is
// refused, naming the flag.
func TestKeyAlgorithmFlagChecked(t *testing.T) {
	dsn := "sqlite:" + t.TempDir() + "/keyward.db"
	for _, alg := range []string{"RS384", "HS256", "none", "es256", ""} {
		if _, err := run(t, dsn, "", "keys", "rotate", "--key-algorithm", alg); err == nil || !strings.Contains(err.Error(), "--key-algorithm") {
			t.Errorf("--key-algorithm %q: %v", alg, err)
		}
	}
}

// TestServeAlgorithmRollingDeploy is a rolling deploy from RS256 to ES256 on
// real processes sharing one database (a 2 s JWKS max-age and 5 s margin):
// the old replica keeps running beside the new one, the ES256 key signs on
// both once it has been published long enough (never before), and a token
// of the old RS256 key still verifies with verify afterwards.
func TestServeAlgorithmRollingDeploy(t *testing.T) {
	t.Parallel() // it mostly waits for the publication delay
	dir := t.TempDir()
	dsn := "sqlite:" + dir + "/keyward.db"
	common := []string{"--database", dsn, "--key-encryption-key-file", writeKEK(t, dir), "--jwks-max-age", "2s", "--key-publish-margin", "5s"}
	old := startProcess(t, nil, append([]string{"--demo"}, common...)...)
	secret, _ := demoCredentials(t, old)
	ctx := t.Context()
	// The verifier obeys the 2 s max-age (MinCacheAge and cooldown 1 s), and never
	// needs an unknown-kid refetch: the ES256 key is in its JWKS before it
	// signs.
	ct := &jwksCounter{}
	v, err := verify.New(ctx, verify.Config{Issuer: processIssuer, Audience: "api", JWKSURL: old.URL + "/.well-known/jwks.json",
		MinCacheAge: time.Second, MaxCacheAge: 2 * time.Second, RefetchCooldown: time.Second, HTTPClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rsTok := demoClientToken(t, old, secret)
	if jwtHeader(t, rsTok)["alg"] != "RS256" {
		t.Fatalf("first token %v", jwtHeader(t, rsTok))
	}

	started := time.Now()
	cur := startProcess(t, nil, append([]string{"--key-algorithm", "ES256"}, common...)...)
	var esKid string
	retryUntil(t, 30*time.Second, "both replicas sign with ES256", func() bool {
		kids := map[string]bool{}
		for _, p := range []*process{old, cur} {
			tok := demoClientToken(t, p, secret)
			hdr := jwtHeader(t, tok)
			if _, err := v.Verify(ctx, tok); err != nil {
				_, b, _ := testsupport.Do(t, nil, testsupport.FormRequest(t, http.MethodGet, old.URL+"/.well-known/jwks.json", nil))
				t.Fatalf("a token of %v after %v does not verify: %v; fetches %d; old JWKS %s", hdr, time.Since(started), err, ct.fetches.Load(), b)
			}
			if hdr["alg"] != "ES256" {
				return false
			}
			if el := time.Since(started); el < 7*time.Second {
				t.Fatalf("an ES256 token %v after the second start: published less than max-age + margin", el)
			}
			kids[hdr["kid"].(string)] = true
		}
		for k := range kids {
			esKid = k
		}
		return len(kids) == 1
	})
	if _, err := v.Verify(ctx, rsTok); err != nil {
		t.Fatalf("the RS256 token after the migration: %v", err)
	}
	if n := ct.noCache.Load(); n != 1 {
		t.Errorf("%d JWKS fetches with no-cache, want 1 (the first): the verifier met an unknown kid", n)
	}
	out := mustRun(t, dsn, "", "keys", "list")
	if !strings.Contains(out, esKid) || !strings.Contains(out, "RS256") || !strings.Contains(out, "ES256") {
		t.Fatalf("keys list after the migration:\n%s", out)
	}
}
