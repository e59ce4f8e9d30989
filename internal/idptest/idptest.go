package idptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Env is a real server on a loopback port over a fresh database.
type Env struct {
	T       testing.TB
	DB      *storage.DB
	Store   *CountingStore
	Hasher  *CountingHasher
	Keys    idp.KeySource
	Kid     string // the active signing key
	Clock   *OffsetClock
	Srv     *idp.Server
	URL     string
	Client  *http.Client             // sends e.Do's requests; nil: http.DefaultClient
	Secrets map[string]string        // client id -> secret
	Users   map[string]*storage.User // the seeded users by name
	Logs    *testsupport.SyncBuffer  // the server's JSON log
	RT      string                   // the current refresh token of a test
	Config  idp.Config               // the server's configuration, as New built it
}

// AlicePassword is the password of every seeded user.
const AlicePassword = "correct horse battery staple"

// New starts a server over a fresh database of backend b with the
// standard clients and users; change adjusts the idp.Config.
func New(t testing.TB, b storagetest.Backend, change ...func(*idp.Config)) *Env {
	t.Helper()
	return NewOn(t, storagetest.Open(t, b.DSN(t)), change...)
}

// NewOn is New over db, an open and migrated database (one opened with
// storage.WithCounter, say).
func NewOn(t testing.TB, db *storage.DB, change ...func(*idp.Config)) *Env {
	t.Helper()
	h, err := password.NewHasher(TestParams, password.WithCeiling(TestCeiling))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, DB: db, Store: &CountingStore{DB: db}, Hasher: &CountingHasher{PasswordHasher: h},
		Clock: &OffsetClock{}, Secrets: map[string]string{}, Users: map[string]*storage.User{},
		Logs: &testsupport.SyncBuffer{}}
	km, err := keys.NewManager(context.Background(), db, keys.NewKEK(), keys.Policy{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.Keys = km
	ts := httptest.NewUnstartedServer(nil)
	e.URL = "http://" + ts.Listener.Addr().String()
	cfg := idp.Config{
		Issuer: e.URL, Store: e.Store, Keys: e.Keys, Passwords: e.Hasher, Now: e.Clock.Now,
		Log: slog.New(web.LogHandler(slog.NewJSONHandler(e.Logs, nil))),
	}
	for _, c := range change {
		c(&cfg)
	}
	e.Keys = cfg.Keys
	e.Config = cfg
	e.Kid = ActiveKid(t, cfg.Keys)
	if e.Srv, err = idp.New(cfg); err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = e.Srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		e.Srv.Auditor().Flush() // before the database closes
	})
	e.Seed()
	return e
}

// Seed creates the standard clients (C1, C2, CC, POST, NOREF, ROPC, pub1,
// RS, a, a:b+c) and users (alice; mallory-locked and dave-disabled, both
// disabled). New calls it.
func (e *Env) Seed() {
	e.T.Helper()
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
			e.T.Fatal(err)
		}
		if err := e.DB.CreateClient(ctx, &c); err != nil {
			e.T.Fatal(err)
		}
		e.Secrets[spec.ID] = secret
	}
	// CA-02: an id and a secret that need form-encoding in Basic.
	ab := storage.Client{ID: "a:b+c", SecretHash: manage.HashClientSecret("p@ss w%rd"), AuthMethod: storage.AuthSecretBasic,
		GrantTypes: storage.List{manage.GrantClientCredentials}}
	if err := e.DB.CreateClient(ctx, &ab); err != nil {
		e.T.Fatal(err)
	}
	e.Secrets["a:b+c"] = "p@ss w%rd"
	for _, u := range []struct {
		name     string
		disabled bool
	}{{"alice", false}, {"mallory-locked", true}, {"dave-disabled", true}} {
		e.AddUser(u.name, AlicePassword, u.disabled)
	}
}

// AddUser creates a user with password pw.
func (e *Env) AddUser(name, pw string, disabled bool) *storage.User {
	e.T.Helper()
	hash, err := e.Hasher.Hash(context.Background(), pw)
	if err != nil {
		e.T.Fatal(err)
	}
	u := &storage.User{Username: name, Email: name + "@example.com", EmailVerified: true, PasswordHash: hash, Disabled: disabled,
		PasswordChangedAt: storage.At(e.Clock.Now().Add(-time.Hour))}
	if err := e.DB.CreateUser(context.Background(), u); err != nil {
		e.T.Fatal(err)
	}
	e.Users[name] = u
	return u
}

// Basic is client_secret_basic for a client, form-encoded (RFC 6749 §2.3.1).
func (e *Env) Basic(id string) string {
	return BasicHeader(id, e.Secrets[id])
}

// BasicHeader is client_secret_basic for id and secret, form-encoded.
func BasicHeader(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// Request is one raw HTTP request.
type Request struct {
	Method, Path, Query string
	Body                string
	ContentType         string // "" means form; "-" none
	Auth                string // Authorization header; "" none
	Header              http.Header
}

// Response is one raw HTTP answer; JSON is the body decoded, if it is JSON.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Do sends r to the server: POST /oauth2/token unless r says otherwise.
func (e *Env) Do(r Request) Response {
	e.T.Helper()
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	if r.Path == "" {
		r.Path = "/oauth2/token"
	}
	u := e.URL + r.Path
	if r.Query != "" {
		u += "?" + r.Query
	}
	req, err := http.NewRequest(r.Method, u, strings.NewReader(r.Body))
	if err != nil {
		e.T.Fatal(err)
	}
	switch r.ContentType {
	case "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "-":
	default:
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Auth != "" {
		req.Header.Set("Authorization", r.Auth)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	status, body, header := testsupport.Do(e.T, e.Client, req)
	out := Response{Status: status, Header: header, Body: body}
	json.Unmarshal(body, &out.JSON)
	return out
}

// Token posts form to the token endpoint as client (Basic).
func (e *Env) Token(client string, form url.Values) Response {
	e.T.Helper()
	r := Request{Body: form.Encode()}
	if client != "" {
		r.Auth = e.Basic(client)
	}
	return e.Do(r)
}

// PasswordForm is a password grant; extra are more key, value pairs.
func PasswordForm(user, pw string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}}
	addPairs(v, extra)
	return v
}

// RefreshForm is a refresh_token grant; extra are more key, value pairs.
func RefreshForm(rt string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	addPairs(v, extra)
	return v
}

// CCForm is a client_credentials grant; extra are key, value pairs.
func CCForm(extra ...string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}}
	addPairs(v, extra)
	return v
}

func addPairs(v url.Values, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
}

// Login runs a password grant for alice with C1 and returns the Response.
func (e *Env) Login(extra ...string) Response {
	e.T.Helper()
	r := e.Token("C1", PasswordForm("alice", AlicePassword, extra...))
	if r.Status != http.StatusOK {
		e.T.Fatalf("login: %d %s", r.Status, r.Body)
	}
	return r
}

func (r Response) Str(k string) string { s, _ := r.JSON[k].(string); return s }

// RFCErrors are the codes an error body may carry (RFC 6749 §5.2, RFC 6750
// §3.1, RFC 8707, RFC 7009 §2.2.1).
var RFCErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_target": true, "invalid_token": true,
	"insufficient_scope": true, "unsupported_token_type": true, "temporarily_unavailable": true,
}

// Leaks finds internal detail in a body: Go types, SQL, paths, stacks.
var Leaks = regexp.MustCompile(`(?i)\.go\b|goroutine|panic|runtime\.|storage\.|idp\.|\*[a-z]+\.|select |insert |update |pq:|sqlite|/tmp/|/work/|/home/|/root/|sql:`)

// CheckE1 is the standard error check: status, JSON, no-store, Pragma, an
// RFC error code, the wanted code, and nothing internal in the body.
func CheckE1(t testing.TB, r Response, wantStatus int, wantCode string) {
	t.Helper()
	code := checkErrorAnswer(t, r, wantStatus)
	if !RFCErrors[code] {
		t.Errorf("error %q is not an RFC code (body %s)", code, r.Body)
	}
	if wantCode != "" && code != wantCode {
		t.Errorf("error %q, want %q (body %s)", code, wantCode, r.Body)
	}
	if _, ok := r.JSON["access_token"]; ok {
		t.Error("an error carries an access token")
	}
	if code == web.ErrInvalidClient && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic realm=") {
		t.Errorf("invalid_client without WWW-Authenticate: Basic (%q)", r.Header.Get("WWW-Authenticate"))
	}
}

// checkErrorAnswer checks what every JSON error answer has: the status,
// JSON, no-store and Pragma, nothing internal in the body. It returns the
// error code.
func checkErrorAnswer(t testing.TB, r Response, wantStatus int) string {
	t.Helper()
	if r.Status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", r.Status, wantStatus, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != web.ContentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Pragma") != "no-cache" {
		t.Errorf("cache headers %q %q", r.Header.Get("Cache-Control"), r.Header.Get("Pragma"))
	}
	if Leaks.Match(r.Body) {
		t.Errorf("body leaks internals: %s", r.Body)
	}
	return r.Str("error")
}

// JWTParts decodes a compact JWS's header and payload without checking it.
func JWTParts(t testing.TB, tok string) (header, payload map[string]any) {
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

// Num is v, a json.Number, as an int64.
func Num(t testing.TB, v any) int64 {
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

// Backends runs f on SQLite and PostgreSQL.
func Backends(t *testing.T, f func(t *testing.T, b storagetest.Backend)) {
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// SHA256Sum is sha256.Sum256.
func SHA256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// ErrorsAs is errors.As.
func ErrorsAs(err error, target any) bool { return errors.As(err, target) }

// ActiveKid is the kid the idp.KeySource signs with now.
func ActiveKid(t testing.TB, k idp.KeySource) string {
	t.Helper()
	tok, err := k.Sign("JWT", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := JWTParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

// SignClaims signs claims with the server's own key: for tokens that are
// genuinely ours but must still be refused (expired, wrong typ, wrong iss).
func (e *Env) SignClaims(typ string, claims map[string]any) string {
	e.T.Helper()
	b, _ := json.Marshal(claims)
	tok, err := e.Keys.Sign(typ, b)
	if err != nil {
		e.T.Fatal(err)
	}
	return tok
}

// Restart replaces e's server with a new one over the same database, keys
// and clock, its Config changed by change, as an operator restarting with
// other flags would. Requests then go to the new server; the issuer stays.
func (e *Env) Restart(change func(*idp.Config)) {
	e.T.Helper()
	cfg := e.Config
	change(&cfg)
	srv, err := idp.New(cfg)
	if err != nil {
		e.T.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	e.T.Cleanup(func() {
		ts.Close()
		srv.Auditor().Flush()
	})
	e.Srv, e.URL, e.Config = srv, ts.URL, cfg
}
