package idp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// testKeys is a minimal KeySource over one RSA-2048 key, kid = its
// thumbprint, without the optional PublicKeys method: it shows that access
// tokens are also checked against the parsed JWKS document. The harness
// otherwise uses a real keys.Manager.
type testKeys struct {
	key     *rsa.PrivateKey
	kid     string
	set     jose.JSONWebKeySet
	doc     []byte
	mu      sync.Mutex
	signers map[string]jose.Signer
}

var sharedTestKeys = sync.OnceValue(func() *testKeys {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	pub := jose.JSONWebKey{Key: &k.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
	doc, _ := json.Marshal(set)
	return &testKeys{key: k, kid: pub.KeyID, set: set, doc: doc, signers: map[string]jose.Signer{}}
})

func (k *testKeys) Sign(typ string, payload []byte) (string, error) {
	k.mu.Lock()
	s, ok := k.signers[typ]
	if !ok {
		var err error
		s, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			k.mu.Unlock()
			return "", err
		}
		k.signers[typ] = s
	}
	k.mu.Unlock()
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func (k *testKeys) JWKS() ([]byte, string) { return k.doc, `"test"` }
func (k *testKeys) Ready() error           { return nil }

// countingStore counts user lookups by name, to show that some requests
// never reach one (TE-06).
type countingStore struct {
	*storage.DB
	byName atomic.Int64
}

func (c *countingStore) UserByUsername(ctx context.Context, name string) (storage.User, error) {
	c.byName.Add(1)
	return c.DB.UserByUsername(ctx, name)
}

// countingHasher counts verifications, real and dummy (TE-21, AV-02).
type countingHasher struct {
	oauth.PasswordHasher
	verifies atomic.Int64
}

func (h *countingHasher) Verify(ctx context.Context, pw, enc string) (bool, bool, error) {
	h.verifies.Add(1)
	return h.PasswordHasher.Verify(ctx, pw, enc)
}

func (h *countingHasher) VerifyDummy(ctx context.Context, pw string) error {
	h.verifies.Add(1)
	return h.PasswordHasher.VerifyDummy(ctx, pw)
}

// testParams keep argon2id cheap in tests; benchmarks use the defaults.
var testParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testCeiling keeps the floor on failed checks (password.Ceiling) near a millisecond;
// TestLoginTiming uses the defaults.
var testCeiling = password.Ceiling{Memory: 64, Time: 1, BcryptCost: 4}

// offsetClock is an adjustable offset from the real time, so real clients
// (go-oidc checks exp against time.Now) and fake time agree.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Log output goes to syncBuffer (audit_test.go), safe for concurrent requests.

// env is a real server on a loopback port over a fresh database.
type env struct {
	t       testing.TB
	db      *storage.DB
	store   *countingStore
	hasher  *countingHasher
	keys    KeySource
	kid     string // the active signing key
	clock   *offsetClock
	srv     *Server
	url     string
	client  *http.Client // sends e.do's requests; nil: http.DefaultClient
	secrets map[string]string
	users   map[string]*storage.User
	logs    *syncBuffer
	rt      string // the current refresh token of a test
}

const alicePassword = "correct horse battery staple"

// newEnv starts a server over a fresh database of backend b with the
// standard clients and users; change adjusts the Config.
func newEnv(t testing.TB, b storagetest.Backend, change ...func(*Config)) *env {
	t.Helper()
	db := storagetest.Open(t, b.DSN(t))
	h, err := password.NewHasher(testParams, password.WithCeiling(testCeiling))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, store: &countingStore{DB: db}, hasher: &countingHasher{PasswordHasher: h},
		clock: &offsetClock{}, secrets: map[string]string{}, users: map[string]*storage.User{},
		logs: &syncBuffer{}}
	km, err := keys.NewManager(context.Background(), db, keys.NewKEK(), keys.Policy{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.keys = km
	ts := httptest.NewUnstartedServer(nil)
	e.url = "http://" + ts.Listener.Addr().String()
	cfg := Config{
		Issuer: e.url, Store: e.store, Keys: e.keys, Passwords: e.hasher, Now: e.clock.Now,
		Log: slog.New(web.LogHandler(slog.NewJSONHandler(e.logs, nil))),
	}
	for _, c := range change {
		c(&cfg)
	}
	e.keys = cfg.Keys
	e.kid = activeKid(t, cfg.Keys)
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = e.srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		e.srv.Auditor().Flush() // before the database closes
	})
	e.seed()
	return e
}

func (e *env) seed() {
	e.t.Helper()
	ctx := context.Background()
	clients := []manage.ClientSpec{
		{ID: "C1", Grants: []string{manage.GrantPassword, manage.GrantRefreshToken},
			Scopes: []string{"openid", "profile", "email", "read", "write", manage.ScopeAdmin}, Audiences: []string{"https://rs1.test", "https://rs2.test"}},
		{ID: "C2", Grants: []string{manage.GrantPassword, manage.GrantRefreshToken}, Scopes: []string{"read"}, Audiences: []string{"https://rs2.test"}},
		{ID: "CC", Grants: []string{manage.GrantClientCredentials}, Scopes: []string{"read", "write", "openid"}, Audiences: []string{"https://rs1.test"}},
		{ID: "POST", AuthMethod: storage.AuthSecretPost, Grants: []string{manage.GrantClientCredentials}, Scopes: []string{"read"}},
		{ID: "NOREF", Grants: []string{manage.GrantPassword}, Scopes: []string{"openid", "read"}},
		{ID: "ROPC", Grants: []string{manage.GrantPassword, manage.GrantRefreshToken}, Scopes: []string{"read"}}, // password only: CC on it is unauthorized
		{ID: "pub1", Public: true, Grants: []string{manage.GrantRefreshToken}, Scopes: []string{"read"}},
		{ID: "RS", Grants: []string{manage.GrantClientCredentials}, Audiences: []string{"https://rs1.test"},
			IntrospectAudiences: []string{"https://rs1.test"}}, // a resource server introspecting
		{ID: "a"},
	}
	for _, spec := range clients {
		c, secret, err := manage.NewClient(spec)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.db.CreateClient(ctx, &c); err != nil {
			e.t.Fatal(err)
		}
		e.secrets[spec.ID] = secret
	}
	// CA-02: an id and a secret that need form-encoding in Basic.
	ab := storage.Client{ID: "a:b+c", SecretHash: manage.HashClientSecret("p@ss w%rd"), AuthMethod: storage.AuthSecretBasic,
		GrantTypes: storage.List{manage.GrantClientCredentials}}
	if err := e.db.CreateClient(ctx, &ab); err != nil {
		e.t.Fatal(err)
	}
	e.secrets["a:b+c"] = "p@ss w%rd"
	for _, u := range []struct {
		name     string
		disabled bool
	}{{"alice", false}, {"mallory-locked", true}, {"dave-disabled", true}} {
		e.addUser(u.name, alicePassword, u.disabled)
	}
}

func (e *env) addUser(name, pw string, disabled bool) *storage.User {
	e.t.Helper()
	hash, err := e.hasher.Hash(context.Background(), pw)
	if err != nil {
		e.t.Fatal(err)
	}
	u := &storage.User{Username: name, Email: name + "@example.com", EmailVerified: true, PasswordHash: hash, Disabled: disabled,
		PasswordChangedAt: storage.At(e.clock.Now().Add(-time.Hour))}
	if err := e.db.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	e.users[name] = u
	return u
}

// basic is client_secret_basic for a client, form-encoded (RFC 6749 §2.3.1).
func (e *env) basic(id string) string {
	return basicHeader(id, e.secrets[id])
}

func basicHeader(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// request is one raw HTTP request.
type request struct {
	method, path, query string
	body                string
	contentType         string // "" means form; "-" none
	auth                string // Authorization header; "" none
	header              http.Header
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (e *env) do(r request) response {
	e.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/oauth2/token"
	}
	u := e.url + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	req, err := http.NewRequest(r.method, u, strings.NewReader(r.body))
	if err != nil {
		e.t.Fatal(err)
	}
	switch r.contentType {
	case "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "-":
	default:
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	c := e.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: body}
	json.Unmarshal(body, &out.json)
	return out
}

// token posts form to the token endpoint as client (Basic).
func (e *env) token(client string, form url.Values) response {
	e.t.Helper()
	r := request{body: form.Encode()}
	if client != "" {
		r.auth = e.basic(client)
	}
	return e.do(r)
}

func passwordForm(user, pw string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}}
	addPairs(v, extra)
	return v
}

func refreshForm(rt string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	addPairs(v, extra)
	return v
}

func ccForm(extra ...string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}}
	addPairs(v, extra)
	return v
}

func addPairs(v url.Values, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
}

// login runs a password grant for alice with C1 and returns the response.
func (e *env) login(extra ...string) response {
	e.t.Helper()
	r := e.token("C1", passwordForm("alice", alicePassword, extra...))
	if r.status != http.StatusOK {
		e.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return r
}

func (r response) str(k string) string { s, _ := r.json[k].(string); return s }

// rfcErrors are the codes an error body may carry (RFC 6749 §5.2, RFC 6750
// §3.1, RFC 8707, RFC 7009 §2.2.1).
var rfcErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_target": true, "invalid_token": true,
	"insufficient_scope": true, "unsupported_token_type": true, "temporarily_unavailable": true,
}

// leaks finds internal detail in a body: Go types, SQL, paths, stacks.
var leaks = regexp.MustCompile(`(?i)\.go\b|goroutine|panic|runtime\.|storage\.|idp\.|\*[a-z]+\.|select |insert |update |pq:|sqlite|/tmp/|/work/|/home/|/root/|sql:`)

// checkE1 is the standard error check: status, JSON, no-store, Pragma, an
// RFC error code, the wanted code, and nothing internal in the body.
func checkE1(t testing.TB, r response, wantStatus int, wantCode string) {
	t.Helper()
	if r.status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != web.ContentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("cache headers %q %q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	code := r.str("error")
	if !rfcErrors[code] {
		t.Errorf("error %q is not an RFC code (body %s)", code, r.body)
	}
	if wantCode != "" && code != wantCode {
		t.Errorf("error %q, want %q (body %s)", code, wantCode, r.body)
	}
	if leaks.Match(r.body) {
		t.Errorf("body leaks internals: %s", r.body)
	}
	if _, ok := r.json["access_token"]; ok {
		t.Error("an error carries an access token")
	}
	if code == web.ErrInvalidClient && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=") {
		t.Errorf("invalid_client without WWW-Authenticate: Basic (%q)", r.header.Get("WWW-Authenticate"))
	}
}

// jwtParts decodes a compact JWS's header and payload without checking it.
func jwtParts(t testing.TB, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func num(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// backends runs f on SQLite and PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, b storagetest.Backend)) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// activeKid is the kid the KeySource signs with now.
func activeKid(t testing.TB, k KeySource) string {
	t.Helper()
	tok, err := k.Sign("JWT", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := jwtParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

// signClaims signs claims with the server's own key: for tokens that are
// genuinely ours but must still be refused (expired, wrong typ, wrong iss).
func (e *env) signClaims(typ string, claims map[string]any) string {
	e.t.Helper()
	b, _ := json.Marshal(claims)
	tok, err := e.keys.Sign(typ, b)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}
