package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/verify"
)

// The processes below keep the default issuer, http://localhost:8080, while
// listening on a free port, so the verifiers take the JWKS URL directly
// instead of discovering it from the issuer.
const processIssuer = "http://localhost:8080"

// jwksCounter counts the JWKS requests a verifier sends, and among them
// those sent with Cache-Control: no-cache (the first fetch and refetches for
// an unknown kid).
type jwksCounter struct {
	fetches, noCache atomic.Int64
}

func (c *jwksCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.fetches.Add(1)
	if r.Header.Get("Cache-Control") == "no-cache" {
		c.noCache.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// demoCredentials are the demo client's secret and the demo user's password
// printed by serve --demo.
func demoCredentials(t *testing.T, p *process) (secret, password string) {
	t.Helper()
	m := p.WaitOut(t, demoCreds)
	return m[1], m[2]
}

// demoToken posts form to the token endpoint as the demo client and returns
// the access token.
func demoToken(t *testing.T, p *process, secret string, form url.Values) string {
	t.Helper()
	req := testsupport.FormRequest(t, http.MethodPost, p.URL+"/oauth2/token", form)
	req.SetBasicAuth("demo-app", secret)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if status := decodeOK(t, req, &body); status != http.StatusOK || body.AccessToken == "" {
		t.Fatalf("token endpoint: %d", status)
	}
	return body.AccessToken
}

// demoClientToken is a client_credentials token of the demo client: audience api,
// scope api:read.
func demoClientToken(t *testing.T, p *process, secret string) string {
	t.Helper()
	return demoToken(t, p, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}})
}

// demoIntrospect asks the server whether tok is active, as the demo client.
func demoIntrospect(t *testing.T, p *process, secret, tok string) bool {
	t.Helper()
	req := testsupport.FormRequest(t, http.MethodPost, p.URL+"/oauth2/introspect", url.Values{"token": {tok}})
	req.SetBasicAuth("demo-app", secret)
	var body struct {
		Active bool `json:"active"`
	}
	if status := decodeOK(t, req, &body); status != http.StatusOK {
		t.Fatalf("introspection: %d", status)
	}
	return body.Active
}

// decodeOK sends req and decodes a 200 answer into v; it returns the status.
func decodeOK(t *testing.T, req *http.Request, v any) int {
	t.Helper()
	status, b, _ := testsupport.Do(t, nil, req)
	if status == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
	}
	return status
}

// tokenKid is the kid in a compact JWS's header.
func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// retryUntil retries f every 200ms until it returns true or timeout passes.
func retryUntil(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVerifyFollowsKeywardRotation runs the key lifecycle against a real
// keyward process with a 2 s JWKS max-age: a rotation done with the CLI is
// invisible to resource servers (the new key was pre-published, so no JWKS
// fetch is needed for its tokens), and a revocation done with the CLI
// reaches a verifier within its cache age, with ErrUnknownKey, while tokens
// of the fresh key verify. The server's own introspection follows too.
func TestVerifyFollowsKeywardRotation(t *testing.T) {
	t.Parallel() // it mostly waits for rotations: let the others wait alongside
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		policy := []string{"--jwks-max-age", "2s", "--key-publish-margin", "5s", "--key-encryption-key-file", writeKEK(t, t.TempDir())}
		p := startProcess(t, nil, append([]string{"--demo", "--database", dsn}, policy...)...)
		secret, _ := demoCredentials(t, p)
		ctx := t.Context()

		// pinned keeps its first JWKS for an hour: it shows that a rotation
		// needs no fetch. following obeys the 2 s max-age (MinCacheAge 1 s):
		// it shows how fast a revocation arrives.
		newVerifier := func(minAge, maxAge time.Duration) (*verify.Verifier, *jwksCounter) {
			ct := &jwksCounter{}
			v, err := verify.New(ctx, verify.Config{
				Issuer: processIssuer, Audience: "api", JWKSURL: p.URL + "/.well-known/jwks.json",
				HTTPClient:  &http.Client{Transport: ct, Timeout: 10 * time.Second},
				MinCacheAge: minAge, MaxCacheAge: maxAge, RefetchCooldown: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { v.Close() })
			return v, ct
		}
		pinned, pinnedFetches := newVerifier(time.Hour, time.Hour)
		following, followingFetches := newVerifier(time.Second, 2*time.Second)
		mustVerify := func(v *verify.Verifier, tok, what string) {
			t.Helper()
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}

		t0 := demoClientToken(t, p, secret)
		kid0 := tokenKid(t, t0)
		mustVerify(pinned, t0, "first token, pinned")
		mustVerify(following, t0, "first token, following")

		// Rotate without --force: the next key signs once it has been
		// published for max-age + margin (7 s after the key set was created),
		// now or scheduled for the server to carry out.
		rot := decode[map[string]any](t, mustRun(t, dsn, "", append([]string{"keys", "rotate", "--output", "json"}, policy...)...))
		kid1, _ := rot["active"].(string)
		if rot["retired"] != kid0 || kid1 == "" || kid1 == kid0 || rot["forced"] != false {
			t.Fatalf("rotate: %v (active before: %s)", rot, kid0)
		}
		// The server follows the database within its poll interval (5 s).
		var t1 string
		retryUntil(t, 15*time.Second, "the server signs with the rotated key", func() bool {
			t1 = demoClientToken(t, p, secret)
			return tokenKid(t, t1) == kid1
		})
		pinnedBefore := pinnedFetches.fetches.Load()
		mustVerify(pinned, t1, "token of the rotated key, pinned")
		mustVerify(pinned, t0, "token of the retired key, pinned")
		if n := pinnedFetches.fetches.Load(); n != 1 || n != pinnedBefore {
			t.Errorf("pinned verifier fetched the JWKS %d times, want only its first fetch", n)
		}
		mustVerify(following, t1, "token of the rotated key, following")
		if n := followingFetches.noCache.Load(); n != 1 {
			t.Errorf("following verifier refetched for an unknown kid: %d no-cache fetches, want only its first", n)
		}

		// Revoke the now-active key: it leaves the JWKS at once.
		rev := decode[map[string]any](t, mustRun(t, dsn, "", append([]string{"keys", "revoke", "--kid=" + kid1, "--output", "json"}, policy...)...))
		kid2, _ := rev["active"].(string)
		if rev["revoked"] != kid1 || kid2 == "" || kid2 == kid1 {
			t.Fatalf("revoke: %v", rev)
		}
		// Server poll (≤ 5 s) plus the verifier's cache age (2 s).
		retryUntil(t, 20*time.Second, "the following verifier rejects the revoked key", func() bool {
			_, err := following.Verify(ctx, t1)
			if err != nil && !errors.Is(err, verify.ErrUnknownKey) {
				t.Fatalf("revoked key: %v, want ErrUnknownKey", err)
			}
			return err != nil
		})
		var t2 string
		retryUntil(t, 15*time.Second, "the server signs with the key activated by the revocation", func() bool {
			t2 = demoClientToken(t, p, secret)
			return tokenKid(t, t2) == kid2
		})
		mustVerify(following, t2, "token of the key activated by the revocation")
		mustVerify(following, t0, "token of the retired key after the revocation")
		if demoIntrospect(t, p, secret, t1) {
			t.Error("the server's introspection still accepts the revoked key's token")
		}
		if !demoIntrospect(t, p, secret, t2) {
			t.Error("the server's introspection refuses the fresh key's token")
		}
	})
}

// TestVerifyInteropGoOIDC checks tokens issued by a real keyward process
// with go-oidc's RemoteKeySet as well as verify, and that forgeries verify
// refuses (tampered payload, alg none, HS256 keyed with the public key) are
// refused by go-oidc too.
func TestVerifyInteropGoOIDC(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, nil, "--demo", "--database", "sqlite:"+dir+"/keyward.db", "--key-encryption-key-file", writeKEK(t, dir))
	secret, pw := demoCredentials(t, p)
	ctx := t.Context()
	jwksURL := p.URL + "/.well-known/jwks.json"
	v, err := verify.New(ctx, verify.Config{Issuer: processIssuer, Audience: "api", JWKSURL: jwksURL})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	remote := oidc.NewRemoteKeySet(ctx, jwksURL)

	cc := demoClientToken(t, p, secret)
	user := demoToken(t, p, secret, url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {pw},
		"scope": {"openid api:read"}})
	for name, tok := range map[string]string{"client_credentials": cc, "password": user} {
		claims, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("verify, %s token: %v", name, err)
		}
		payload, err := remote.VerifySignature(ctx, tok)
		if err != nil {
			t.Fatalf("go-oidc, %s token: %v", name, err)
		}
		var got struct {
			Sub string `json:"sub"`
			Jti string `json:"jti"`
		}
		if err := json.Unmarshal(payload, &got); err != nil || got.Sub != claims.Subject || got.Jti != claims.ID {
			t.Fatalf("go-oidc payload %s, verify claims sub %q jti %q", payload, claims.Subject, claims.ID)
		}
	}

	parts := strings.Split(cc, ".")
	kid := tokenKid(t, cc)
	b64 := base64.RawURLEncoding.EncodeToString
	var set jose.JSONWebKeySet
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if status := decodeOK(t, req, &set); status != http.StatusOK {
		t.Fatalf("jwks: %d", status)
	}
	jwk := set.Key(kid)
	if len(jwk) != 1 {
		t.Fatalf("kid %s not in the JWKS", kid)
	}
	der, err := x509.MarshalPKIXPublicKey(jwk[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := func(key []byte) string {
		h := b64([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"` + kid + `"}`))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(h + "." + parts[1]))
		return h + "." + parts[1] + "." + b64(mac.Sum(nil))
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	otherSub := strings.Replace(string(payload), `"sub":"client:demo-app"`, `"sub":"client:admin"`, 1)
	if otherSub == string(payload) {
		t.Fatalf("unexpected payload %s", payload)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 1

	tests := []struct {
		name    string
		tok     string
		wantErr error
	}{
		{"tampered payload", parts[0] + "." + b64([]byte(otherSub)) + "." + parts[2], verify.ErrSignature},
		{"flipped signature bit", parts[0] + "." + parts[1] + "." + b64(sig), verify.ErrSignature},
		{"alg none", b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + ".", verify.ErrMalformed},
		{"alg none with a signature", b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + "." + parts[2], verify.ErrAlgorithm},
		{"HS256 keyed with the PEM public key", hs256(pubPEM), verify.ErrAlgorithm},
		{"HS256 keyed with the DER public key", hs256(der), verify.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(ctx, tt.tok); !errors.Is(err, tt.wantErr) {
				t.Errorf("verify: %v, want %v", err, tt.wantErr)
			}
			if payload, err := remote.VerifySignature(ctx, tt.tok); err == nil {
				t.Errorf("go-oidc accepted it: %s", payload)
			}
		})
	}
}
