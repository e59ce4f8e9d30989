package verify_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// tokenWithKid is V signed with k under kid.
func tokenWithKid(t testing.TB, is *issuer, k *rsa.PrivateKey, kid string) string {
	return rs256(t, k, obj(with(baseHeader(), member{"kid", str(kid)})...), obj(basePayload(is.srv.URL)...))
}

// TestUnknownKidBurst (RS-05, AC-J9): 1,000 concurrent tokens with random unknown kids
// cause at most one refetch after the initial fetch, sent with Cache-Control: no-cache,
// and every caller is rejected with ErrUnknownKey.
func TestUnknownKidBurst(t *testing.T) {
	is := newIssuer(t)
	clk := newClock()
	v := newVerifier(t, is, is.config(clk))
	clk.Advance(verify.DefaultRefetchCooldown + time.Second) // one refetch is allowed now

	tokens := make([]string, 1000)
	for i := range tokens {
		var b [12]byte
		rand.Read(b[:])
		// The kid is looked up before the signature is checked, so a dummy one will do.
		h := obj(with(baseHeader(), member{"kid", str(b64(b[:]))})...)
		tokens[i] = signingInput(h, obj(basePayload(is.srv.URL)...)) + "." + b64(make([]byte, 256))
	}
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, verify.ErrUnknownKey) {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d tokens not rejected with ErrUnknownKey", n)
	}
	// The initial fetch and exactly one refetch: the cooldown had passed, so the first
	// unknown kid refetches and every other caller shares or skips that fetch.
	if n := is.jwksFetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
	if cc := is.lastRequest().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("refetch Cache-Control = %q, want no-cache", cc)
	}
}

// TestUnknownKidRefetch: a key published after the first fetch is picked up by the
// refetch an unknown kid triggers, once the cooldown has passed, and not before.
func TestUnknownKidRefetch(t *testing.T) {
	is := newIssuer(t)
	clk := newClock()
	v := newVerifier(t, is, is.config(clk))
	is.publish(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&rsaK2.PublicKey, "k2", "RS256"})
	k2 := tokenWithKid(t, is, rsaK2, "k2")

	steps := []struct {
		name        string
		advance     time.Duration
		want        error
		wantFetches int32
	}{
		{"within cooldown of the first fetch", 0, verify.ErrUnknownKey, 1},
		{"after the cooldown", verify.DefaultRefetchCooldown, nil, 2},
		{"cached now", time.Second, nil, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			wantVerify(t, v, k2, s.want)
			if n := is.jwksFetches.Load(); n != s.wantFetches {
				t.Errorf("JWKS fetches = %d, want %d", n, s.wantFetches)
			}
		})
	}
	if cc := is.lastRequest().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("refetch Cache-Control = %q, want no-cache", cc)
	}
}

// TestETagNotModified: when the cached set expires the verifier revalidates with
// If-None-Match, keeps its keys on 304 and takes the new lifetime.
func TestETagNotModified(t *testing.T) {
	is := newIssuer(t)
	is.setCacheControl("max-age=120")
	clk := newClock()
	v := newVerifier(t, is, is.config(clk))
	V := valid(t, is)

	clk.Advance(121 * time.Second)
	if _, err := v.Verify(t.Context(), V); err != nil {
		t.Fatalf("Verify after revalidation: %v", err)
	}
	if got, want := is.lastRequest().Get("If-None-Match"), is.etag; got != want || got == "" {
		t.Errorf("If-None-Match = %q, want %q", got, want)
	}
	if n := is.notModified.Load(); n != 1 {
		t.Fatalf("304 responses = %d, want 1", n)
	}
	clk.Advance(119 * time.Second)
	if _, err := v.Verify(t.Context(), V); err != nil {
		t.Fatal(err)
	}
	if n := is.jwksFetches.Load(); n != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (the 304 renewed the lifetime)", n)
	}
	if err := v.Err(); err != nil {
		t.Errorf("Err() = %v after a 304", err)
	}
}

// TestCacheAgeClamped: the JWKS is refetched when its announced max-age, clamped to
// [MinCacheAge, MaxCacheAge], has passed, and not before.
func TestCacheAgeClamped(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		wantAge      time.Duration
	}{
		{"max-age within bounds", "public, max-age=300", 300 * time.Second},
		{"max-age below min", "max-age=5", time.Minute},
		{"max-age above max", "max-age=86400", 10 * time.Minute},
		{"no-store", "no-store", time.Minute},
		{"no header", "", 5 * time.Minute},
		{"garbage", "max-age=soon", 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t)
			is.setCacheControl(tt.cacheControl)
			clk := newClock()
			cfg := is.config(clk)
			cfg.MinCacheAge, cfg.MaxCacheAge = time.Minute, 10*time.Minute
			v := newVerifier(t, is, cfg)
			V := valid(t, is)

			clk.Advance(tt.wantAge - time.Second)
			if _, err := v.Verify(t.Context(), V); err != nil {
				t.Fatal(err)
			}
			if n := is.jwksFetches.Load(); n != 1 {
				t.Fatalf("fetches before %s = %d, want 1", tt.wantAge, n)
			}
			clk.Advance(2 * time.Second)
			if _, err := v.Verify(t.Context(), V); err != nil {
				t.Fatal(err)
			}
			if n := is.jwksFetches.Load(); n != 2 {
				t.Fatalf("fetches after %s = %d, want 2", tt.wantAge, n)
			}
		})
	}
}

// TestRemovedKeyDropped (KM-07): a key the issuer removes stops verifying at the latest
// after MaxCacheAge, even when the issuer announces a longer max-age.
func TestRemovedKeyDropped(t *testing.T) {
	is := newIssuer(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&rsaK2.PublicKey, "k2", "RS256"})
	is.setCacheControl("max-age=86400")
	clk := newClock()
	cfg := is.config(clk)
	cfg.MaxCacheAge = 10 * time.Minute
	v := newVerifier(t, is, cfg)
	k2 := tokenWithKid(t, is, rsaK2, "k2")
	is.publish(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}) // emergency revocation of k2

	steps := []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"still cached", 9 * time.Minute, nil},
		{"after MaxCacheAge", time.Minute + time.Second, verify.ErrUnknownKey},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			wantVerify(t, v, k2, s.want)
		})
	}
}

// TestIssuerDown (AV-07): while the JWKS endpoint fails, cached keys keep verifying,
// the error is observable through Err and OnError, and refetches respect the cooldown;
// once the issuer is back the error clears.
func TestIssuerDown(t *testing.T) {
	is := newIssuer(t)
	clk := newClock()
	cfg := is.config(clk)
	var reported atomic.Int32
	cfg.OnError = func(error) { reported.Add(1) }
	v := newVerifier(t, is, cfg)
	V := valid(t, is)

	is.setDown(true)
	clk.Advance(6 * time.Minute) // past the 300s max-age
	for i := range 3 {
		if _, err := v.Verify(t.Context(), V); err != nil {
			t.Fatalf("Verify %d with issuer down: %v", i, err)
		}
	}
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("Err() = %v, want the 503", err)
	}
	if n := reported.Load(); n != 1 {
		t.Errorf("OnError called %d times, want 1 (cooldown)", n)
	}
	if n := is.jwksFetches.Load(); n != 2 {
		t.Errorf("JWKS fetches = %d, want 2", n)
	}

	is.setDown(false)
	clk.Advance(verify.DefaultRefetchCooldown)
	if _, err := v.Verify(t.Context(), V); err != nil {
		t.Fatal(err)
	}
	if err := v.Err(); err != nil {
		t.Errorf("Err() = %v after recovery", err)
	}
}

// TestUnusableKeysSkipped (KM-10, RFC 7517 §5): keys of other types, for encryption,
// too short, with an unknown kty or malformed are skipped, not fatal.
func TestUnusableKeysSkipped(t *testing.T) {
	is := newIssuer(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(k jose.JSONWebKey) string {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	keys := []string{
		marshal(jose.JSONWebKey{Key: &ecE1.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"}),
		`{"kty":"oct","kid":"oct","k":"c2VjcmV0","alg":"HS256"}`,
		`{"kty":"OKP","kid":"okp","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
		`{"kty":"XYZ","kid":"xyz"}`,
		`{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}`,
		`"not an object"`,
		marshal(jose.JSONWebKey{Key: &weak.PublicKey, KeyID: "weak", Algorithm: "RS256", Use: "sig"}),
		marshal(jose.JSONWebKey{Key: &rsaK2.PublicKey, KeyID: "enc", Algorithm: "RS256", Use: "enc"}),
		marshal(jose.JSONWebKey{Key: &rsaK2.PublicKey, KeyID: "rs512", Algorithm: "RS512", Use: "sig"}),
		marshal(jose.JSONWebKey{Key: &rsaK1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}),
	}
	is.setJWKS([]byte(`{"keys":[` + strings.Join(keys, ",") + `]}`))
	v := newVerifier(t, is, is.config(newClock()))

	if _, err := v.Verify(t.Context(), valid(t, is)); err != nil {
		t.Fatalf("k1 beside unusable keys: %v", err)
	}
	for _, kid := range []string{"weak", "enc", "rs512", "oct"} {
		t.Run(kid, func(t *testing.T) {
			k := rsaK2
			if kid == "weak" {
				k = weak
			}
			if _, err := v.Verify(t.Context(), tokenWithKid(t, is, k, kid)); !errors.Is(err, verify.ErrUnknownKey) {
				t.Fatalf("Verify error = %v, want ErrUnknownKey", err)
			}
		})
	}
}

// TestDiscovery: the jwks_uri is discovered from OIDC metadata or, failing that, RFC 8414
// metadata; a metadata issuer that differs, a redirect to another host and an oversized
// document are refused (KM-10).
func TestDiscovery(t *testing.T) {
	jwksDoc := func(t *testing.T) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaK1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
		return b
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(jwksDoc(t)) }))
	t.Cleanup(other.Close)

	tests := []struct {
		name    string
		routes  func(base string) map[string]http.HandlerFunc
		jwksURL bool // configure JWKSURL instead of discovering
		wantErr string
	}{
		{"openid configuration", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{
				"/.well-known/openid-configuration": jsonDoc(`{"issuer":%q,"jwks_uri":%q}`, base, base+"/keys"),
				"/keys":                             rawDoc(jwksDoc(t)),
			}
		}, false, ""},
		{"oauth authorization server fallback", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{
				"/.well-known/oauth-authorization-server": jsonDoc(`{"issuer":%q,"jwks_uri":%q}`, base, base+"/keys"),
				"/keys": rawDoc(jwksDoc(t)),
			}
		}, false, ""},
		{"configured jwks url needs no metadata", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{"/keys": rawDoc(jwksDoc(t))}
		}, true, ""},
		{"metadata issuer differs", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{
				"/.well-known/openid-configuration": jsonDoc(`{"issuer":%q,"jwks_uri":%q}`, base+"/", base+"/keys"),
				"/keys":                             rawDoc(jwksDoc(t)),
			}
		}, false, "metadata issuer"},
		{"no metadata", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{}
		}, false, "status 404"},
		{"jwks redirects to another host", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{
				"/keys": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/keys", http.StatusFound) },
			}
		}, true, "redirect to another origin"},
		{"jwks over 1 MiB", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{
				"/keys": rawDoc([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`)),
			}
		}, true, "larger than 1 MiB"},
		{"jwks not a key set", func(base string) map[string]http.HandlerFunc {
			return map[string]http.HandlerFunc{"/keys": rawDoc([]byte(`[]`))}
		}, true, "parse jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			for path, h := range tt.routes(srv.URL) {
				mux.HandleFunc(path, h)
			}
			cfg := verify.Config{Issuer: srv.URL, Audience: testAudience}
			if tt.jwksURL {
				cfg.JWKSURL = srv.URL + "/keys"
			}
			v, err := verify.New(t.Context(), cfg)
			if testsupport.WantError(t, err, tt.wantErr) {
				return
			}
			defer v.Close()
			tok := rs256(t, rsaK1, obj(baseHeader()...), obj(basePayload(srv.URL)...))
			if _, err := v.Verify(t.Context(), tok); err != nil && !errors.Is(err, verify.ErrExpired) && !errors.Is(err, verify.ErrNotYetValid) {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func jsonDoc(format string, args ...any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, format, args...)
	}
}

func rawDoc(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
}

// TestNewWithKeys: a local key source needs no HTTP, private keys in it are reduced to
// public ones, and its changes are followed after MinCacheAge or on Refresh.
func TestNewWithKeys(t *testing.T) {
	var mu sync.Mutex
	current := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rsaK1, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	var calls int
	src := verify.KeySourceFunc(func(context.Context) (jose.JSONWebKeySet, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return current, nil
	})
	clk := newClock()
	const iss = "https://as.test"
	v, err := verify.NewWithKeys(t.Context(), verify.Config{Issuer: iss, Audience: testAudience, Now: clk.Now}, src)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := func(k *rsa.PrivateKey, kid string) string {
		return rs256(t, k, obj(with(baseHeader(), member{"kid", str(kid)})...), obj(basePayload(iss)...))
	}
	if _, err := v.Verify(t.Context(), tok(rsaK1, "k1")); err != nil {
		t.Fatalf("k1: %v", err)
	}

	mu.Lock()
	current = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaK2.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"}}}
	mu.Unlock()
	if _, err := v.Verify(t.Context(), tok(rsaK1, "k1")); err != nil {
		t.Fatalf("k1 still cached: %v", err)
	}
	if err := v.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok(rsaK1, "k1")); !errors.Is(err, verify.ErrUnknownKey) {
		t.Fatalf("k1 after Refresh: %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(t.Context(), tok(rsaK2, "k2")); err != nil {
		t.Fatalf("k2 after Refresh: %v", err)
	}

	t.Run("static keys", func(t *testing.T) {
		sv, err := verify.NewWithKeys(t.Context(), verify.Config{Issuer: iss, Audience: testAudience, Now: clk.Now},
			verify.StaticKeys(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaK1.PublicKey, KeyID: "k1", Algorithm: "RS256"}}}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sv.Verify(t.Context(), tok(rsaK1, "k1")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("failing source", func(t *testing.T) {
		_, err := verify.NewWithKeys(t.Context(), verify.Config{Issuer: iss, Audience: testAudience},
			verify.KeySourceFunc(func(context.Context) (jose.JSONWebKeySet, error) { return jose.JSONWebKeySet{}, errors.New("db down") }))
		if err == nil || !strings.Contains(err.Error(), "db down") {
			t.Fatalf("NewWithKeys error = %v", err)
		}
	})
}

// TestClose: Close and cancelling the context of New both stop the background refresh;
// Verify keeps working with the cached keys.
func TestClose(t *testing.T) {
	tests := []struct {
		name string
		stop func(cancel context.CancelFunc, v *verify.Verifier)
	}{
		{"close", func(_ context.CancelFunc, v *verify.Verifier) { v.Close() }},
		{"cancel then close", func(cancel context.CancelFunc, v *verify.Verifier) { cancel(); v.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			v, err := verify.New(ctx, is.config(newClock()))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { tt.stop(cancel, v); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("stopping did not return")
			}
			if _, err := v.Verify(t.Context(), valid(t, is)); err != nil {
				t.Fatalf("Verify after stop: %v", err)
			}
			v.Close() // idempotent
		})
	}
}
