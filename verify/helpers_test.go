package verify_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/verify"
)

// Test keys are generated once per test binary; private keys are never stored in the
// repository (KM-02).
var (
	keysOnce           sync.Once
	rsaK1, rsaK2, rsaA *rsa.PrivateKey // k1 and k2 are the issuer's, A the attacker's
	ecE1               *ecdsa.PrivateKey
)

// TestMain generates the test keys before any test builds its issuer.
func TestMain(m *testing.M) {
	testKeys(nil)
	os.Exit(m.Run())
}

func testKeys(testing.TB) {
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&rsaK1, &rsaK2, &rsaA} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
		if ecE1, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// testNow is the fixed time tokens are minted and verified at, unless a test moves it.
var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is an injectable, movable time source, starting at testNow.
type clock = testsupport.Clock

func newClock() *clock { return testsupport.NewClock(testNow) }

// issuer is an httptest authorization server publishing discovery metadata and a JWKS.
// It counts and records the JWKS requests it gets.
type issuer struct {
	srv *httptest.Server

	mu           sync.Mutex
	jwks         []byte
	etag         string
	cacheControl string
	down         bool
	requests     []http.Header

	jwksFetches atomic.Int32 // every JWKS request, 304s included
	notModified atomic.Int32
}

// jwk describes a public key published by the test issuer.
type jwk struct {
	key any
	kid string
	alg string
}

func newIssuer(t testing.TB, keys ...jwk) *issuer {
	t.Helper()
	testKeys(t)
	is := &issuer{cacheControl: "public, max-age=300"}
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, is.srv.URL, is.srv.URL+"/jwks")
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", meta)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", meta)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksFetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		is.requests = append(is.requests, r.Header.Clone())
		if is.down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", is.cacheControl)
		if is.etag != "" {
			w.Header().Set("ETag", is.etag)
			if r.Header.Get("If-None-Match") == is.etag {
				is.notModified.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(is.jwks)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	if len(keys) == 0 {
		keys = []jwk{{&rsaK1.PublicKey, "k1", "RS256"}}
	}
	is.publish(t, keys...)
	return is
}

// publish replaces the JWKS document and gives it a new ETag.
func (is *issuer) publish(t testing.TB, keys ...jwk) {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	is.setJWKS(b)
}

func (is *issuer) setJWKS(b []byte) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwks = b
	sum := sha256.Sum256(b)
	is.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:8]) + `"`
}

func (is *issuer) setDown(down bool) {
	is.mu.Lock()
	is.down = down
	is.mu.Unlock()
}

func (is *issuer) setCacheControl(cc string) {
	is.mu.Lock()
	is.cacheControl = cc
	is.mu.Unlock()
}

func (is *issuer) lastRequest() http.Header {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.requests[len(is.requests)-1]
}

const testAudience = "https://rs1.test"

// config is a Config for is with the clock c.
func (is *issuer) config(c *clock) verify.Config {
	return verify.Config{Issuer: is.srv.URL, Audience: testAudience, Now: c.Now}
}

// newVerifier builds a Verifier by discovery against is, closed at the end of the test.
func newVerifier(t testing.TB, is *issuer, cfg verify.Config) *verify.Verifier {
	t.Helper()
	v, err := verify.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// member is one JSON object member, its value as raw JSON text; obj writes members in
// order so tests can build exactly the text they mean, duplicates included.
type member struct{ name, raw string }

func obj(ms ...member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%q:%s", m.name, m.raw)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// with replaces the members named in changes (an empty raw deletes) and appends new ones.
func with(ms []member, changes ...member) []member {
	out := append([]member(nil), ms...)
	for _, c := range changes {
		i := 0
		for ; i < len(out) && out[i].name != c.name; i++ {
		}
		switch {
		case i < len(out) && c.raw == "":
			out = append(out[:i], out[i+1:]...)
		case i < len(out):
			out[i] = c
		case c.raw != "":
			out = append(out, c)
		}
	}
	return out
}

func num(t time.Time) string { return fmt.Sprint(t.Unix()) }

func str(s string) string { b, _ := json.Marshal(s); return string(b) }

// baseHeader and basePayload are the attack corpus baseline V (§15).
func baseHeader() []member {
	return []member{{"alg", `"RS256"`}, {"typ", `"at+jwt"`}, {"kid", `"k1"`}}
}

func basePayload(iss string) []member {
	return []member{
		{"iss", str(iss)}, {"sub", `"u-alice"`}, {"aud", str(testAudience)},
		{"client_id", `"C1"`}, {"scope", `"read write"`},
		{"iat", num(testNow)}, {"exp", num(testNow.Add(10 * time.Minute))}, {"jti", `"j1"`},
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signingInput is b64(header) "." b64(payload) of the raw JSON texts.
func signingInput(header, payload string) string {
	return b64([]byte(header)) + "." + b64([]byte(payload))
}

// rs256 signs header.payload with PKCS#1 v1.5 and SHA-256.
func rs256(t testing.TB, k *rsa.PrivateKey, header, payload string) string {
	return signRSA(t, k, crypto.SHA256, false, header, payload)
}

func signRSA(t testing.TB, k *rsa.PrivateKey, h crypto.Hash, pss bool, header, payload string) string {
	t.Helper()
	in := signingInput(header, payload)
	hh := h.New()
	hh.Write([]byte(in))
	var sig []byte
	var err error
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, k, h, hh.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, hh.Sum(nil))
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

// valid is the baseline token V for is, signed with k1.
func valid(t testing.TB, is *issuer) string {
	return rs256(t, rsaK1, obj(baseHeader()...), obj(basePayload(is.srv.URL)...))
}

// wantVerify checks that v answers tok with want: an error errors.Is finds,
// or nil for an accepted token.
func wantVerify(t *testing.T, v *verify.Verifier, tok string, want error) {
	t.Helper()
	_, err := v.Verify(t.Context(), tok)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("Verify error = %v, want %v", err, want)
	}
}
