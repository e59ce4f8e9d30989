package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// testIssuer serves discovery metadata and a JWKS holding key under kid "k1", and signs
// access tokens with go-jose the way Keyward issues them (RS256, typ at+jwt, kid).
type testIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &testIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, is.srv.URL, is.srv.URL+"/.well-known/jwks.json")
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"},
		}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) token(t *testing.T, aud, scope string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	payload, _ := json.Marshal(map[string]any{
		"iss": is.srv.URL, "sub": "u-alice", "aud": aud, "client_id": "demo",
		"scope": scope, "iat": now, "exp": now + 600, "jti": "j1",
	})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// routeCase is one request to the example's API and the answer it must get.
type routeCase struct {
	name      string
	path      string
	token     string // sent as a bearer token when not empty
	wantCode  int
	wantBody  string // substring
	wantChall string // prefix of WWW-Authenticate; empty: none
}

// checkRoutes sends each case to the API at base, in a subtest of its own.
func checkRoutes(t *testing.T, base string, tests []routeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			status, body, h := testsupport.Do(t, nil, req)
			if status != tt.wantCode {
				t.Fatalf("status = %d, want %d (%s)", status, tt.wantCode, body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", body, tt.wantBody)
			}
			if ch := h.Get("WWW-Authenticate"); !strings.HasPrefix(ch, tt.wantChall) || (tt.wantChall == "" && ch != "") {
				t.Errorf("WWW-Authenticate = %q, want prefix %q", ch, tt.wantChall)
			}
		})
	}
}

// TestProtectedAPI drives the example's routes with tokens from a test issuer.
func TestProtectedAPI(t *testing.T) {
	is := newTestIssuer(t)
	v, err := verify.New(t.Context(), verify.Config{Issuer: is.srv.URL, Audience: "api"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	api := httptest.NewServer(routes(v))
	defer api.Close()

	checkRoutes(t, api.URL, []routeCase{
		{"protected with a token", "/protected", is.token(t, "api", "api:read"), 200, `{"message":"Protected resource!","sub":"u-alice"}`, ""},
		{"protected without a token", "/protected", "", 401, "", `Bearer realm="api"`},
		{"protected with another audience", "/protected", is.token(t, "other", "api:read"), 401, "", `Bearer realm="api", error="invalid_token"`},
		{"orders with api:read", "/orders", is.token(t, "api", "openid api:read"), 200, `"orders":[`, ""},
		{"orders without api:read", "/orders", is.token(t, "api", "openid"), 403, "", `Bearer realm="api", error="insufficient_scope"`},
		{"orders without a token", "/orders", "", 401, "", `Bearer realm="api"`},
	})
}

// TestRunFailsWithoutIssuer: the example refuses to start when discovery fails.
func TestRunFailsWithoutIssuer(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := run(ctx, []string{"--issuer", dead.URL, "--audience", "api", "--addr", "127.0.0.1:0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "start verifier") {
		t.Fatalf("run error = %v", err)
	}
}

// TestRunServesUntilCancelled: with a reachable issuer, run serves and returns nil once
// its context is cancelled.
func TestRunServesUntilCancelled(t *testing.T) {
	is := newTestIssuer(t)
	ctx, cancel := context.WithCancel(t.Context())
	example := testsupport.Go(func() error {
		return run(ctx, []string{"--issuer", is.srv.URL, "--audience", "api", "--addr", "127.0.0.1:0"}, io.Discard)
	})
	time.Sleep(200 * time.Millisecond)
	cancel()
	example.Stopped(t, "run", 10*time.Second)
}
