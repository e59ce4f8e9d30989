// Package flaskresourceserver holds the test of the Flask example (app.py): it starts
// Keyward and the example as processes on loopback and checks every answer of
// issue 16's list.
package flaskresourceserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

var b64 = base64.RawURLEncoding

// freeAddr returns a loopback address with a port free a moment ago.
// TestFlaskResourceServer: Keyward serves on loopback; app.py, started as the README
// says, answers 200 to a Keyward token with api:read; 401 with WWW-Authenticate to no
// token, an expired one, one for another audience, one from another issuer, alg none,
// HS256 keyed with the public key, a tampered payload, another typ and a kid of no
// Keyward key; 403 to a token without api:read; and after `keyward keys rotate
// --force`, tokens signed by the new key validate without restarting app.py.
func TestFlaskResourceServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keyward and the Flask example")
	}
	py := testsupport.Python(t, "flask", "jwt", "requests", "werkzeug", "cryptography")
	bin := testsupport.BuildKeyward(t)
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "keyward.db")
	kek := keys.NewKEK()
	kekFile := filepath.Join(dir, "keyward.kek")
	if err := os.WriteFile(kekFile, []byte(keys.EncodeKEK(kek)), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := keywardCLI(t, bin, dsn, dir)
	secretOf := func(out []byte) string {
		var c struct {
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal(out, &c); err != nil || c.Secret == "" {
			t.Fatalf("clients create printed %s", out)
		}
		return c.Secret
	}
	rsSecret := secretOf(cli("clients", "create", "--id", "rs-app", "--grant", "client_credentials",
		"--scope", "api:read api:write", "--audience", "api", "--output", "json"))
	otherSecret := secretOf(cli("clients", "create", "--id", "other-app", "--grant", "client_credentials",
		"--scope", "api:read", "--audience", "other", "--output", "json"))

	addr := testsupport.FreeAddr(t)
	issuer := "http://" + addr
	serve := exec.Command(bin, "serve", "--addr", addr, "--issuer", issuer, "--database", dsn, "--key-encryption-key-file", kekFile)
	serve.Dir = dir
	testsupport.StartProcess(t, serve)

	flaskAddr := testsupport.FreeAddr(t)
	_, port, _ := net.SplitHostPort(flaskAddr)
	api := "http://" + flaskAddr
	testsupport.StartPython(t, py, "app.py", api+"/healthz", "KEYWARD_ISSUER="+issuer, "KEYWARD_AUDIENCE=api", "PORT="+port)

	token := func(id, secret, scope string) string {
		t.Helper()
		req := testsupport.FormRequest(t, http.MethodPost, issuer+"/oauth2/token",
			url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
		req.SetBasicAuth(id, secret)
		status, body, _ := testsupport.Do(t, nil, req)
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &tr); status != http.StatusOK || err != nil || tr.AccessToken == "" {
			t.Fatalf("token for %s %q: %d %s", id, scope, status, body)
		}
		return tr.AccessToken
	}
	good := token("rs-app", rsSecret, "api:read")
	header, claims := parts(t, good)
	sub, _ := claims["sub"].(string)

	// Tokens signed with Keyward's own key, through the keys package on the same
	// database and key-encryption key: refused for their claims, not their signature.
	db, err := storage.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	km, err := keys.NewManager(t.Context(), db, kek, keys.Policy{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(typ string, change func(map[string]any)) string {
		t.Helper()
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		change(c)
		payload, _ := json.Marshal(c)
		tok, err := km.Sign(typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now().Unix()
	reSigned := sign("at+jwt", func(map[string]any) {})
	expired := sign("at+jwt", func(c map[string]any) { c["exp"], c["iat"] = now-600, now-1200 })
	wrongIssuer := sign("at+jwt", func(c map[string]any) { c["iss"] = issuer + "/other" })
	idToken := sign("JWT", func(map[string]any) {})

	seg := strings.Split(good, ".")
	none := b64.EncodeToString(mustJSON(map[string]any{"alg": "none", "typ": "at+jwt", "kid": header["kid"]})) + "." + seg[1] + "."
	hs := hs256WithPublicKey(t, issuer, header["kid"].(string), seg[1])
	claims2 := map[string]any{}
	for k, v := range claims {
		claims2[k] = v
	}
	claims2["sub"] = "someone-else"
	tampered := seg[0] + "." + b64.EncodeToString(mustJSON(claims2)) + "." + seg[2]
	foreign := foreignKid(t, claims)

	cases := []struct {
		name, tok string
		status    int
		challenge string
	}{
		{"a Keyward token", good, 200, ""},
		{"the same claims signed by Keyward's key", reSigned, 200, ""},
		{"no token", "", 401, `Bearer realm="api"`},
		{"expired", expired, 401, `error="invalid_token"`},
		{"wrong audience", token("other-app", otherSecret, "api:read"), 401, `error="invalid_token"`},
		{"wrong issuer", wrongIssuer, 401, `error="invalid_token"`},
		{"alg none", none, 401, `error="invalid_token"`},
		{"HS256 keyed with the public key", hs, 401, `error="invalid_token"`},
		{"tampered payload", tampered, 401, `error="invalid_token"`},
		{"typ JWT, not at+jwt", idToken, 401, `error="invalid_token"`},
		{"missing scope", token("rs-app", rsSecret, "api:write"), 403, `error="insufficient_scope"`},
		{"unknown kid", foreign, 401, `error="invalid_token"`},
	}
	for _, c := range cases {
		checkProtected(t, api, sub, c.name, c.tok, c.status, c.challenge)
	}

	// Rotation: the server reloads the key set within seconds; app.py keeps running.
	oldKid := header["kid"]
	cli("keys", "rotate", "--force", "--key-encryption-key-file", kekFile)
	var rotated string
	for deadline := time.Now().Add(30 * time.Second); ; {
		rotated = token("rs-app", rsSecret, "api:read")
		if h, _ := parts(t, rotated); h["kid"] != oldKid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tokens still signed by the old key 30 s after keys rotate --force")
		}
		time.Sleep(500 * time.Millisecond)
	}
	checkProtected(t, api, sub, "a token of the rotated key", rotated, 200, "")
	checkProtected(t, api, sub, "a token of the old key", good, 200, "")
}

// checkProtected GETs /protected with tok and checks the status, the body naming the
// subject on 200, and WWW-Authenticate otherwise.
func checkProtected(t *testing.T, api, sub, name, tok string, status int, challenge string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api+"/protected", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	got, body, h := testsupport.Do(t, nil, req)
	if got != status {
		t.Errorf("%s: %d %s, want %d", name, got, body, status)
		return
	}
	if status == 200 {
		var b struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(body, &b) != nil || b.Sub != sub {
			t.Errorf("%s: body %s, want sub %s", name, body, sub)
		}
		return
	}
	if wa := h.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, challenge) {
		t.Errorf("%s: WWW-Authenticate %q, want one with %s", name, wa, challenge)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// parts decodes a JWT's header and claims, unverified.
func parts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	seg := strings.Split(tok, ".")
	if len(seg) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := b64.DecodeString(seg[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("JWT segment %d: %v", i, err)
		}
	}
	return header, claims
}

// hs256WithPublicKey is the algorithm-confusion attack: the JWKS's RSA key for kid in
// PEM, used as an HMAC secret over an HS256 header and payload.
func hs256WithPublicKey(t *testing.T, issuer, kid, payload string) string {
	t.Helper()
	res, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	ks := set.Key(kid)
	if len(ks) != 1 {
		t.Fatalf("kid %s not in the JWKS", kid)
	}
	der, err := x509.MarshalPKIXPublicKey(ks[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	in := b64.EncodeToString(mustJSON(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid})) + "." + payload
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64.EncodeToString(m.Sum(nil))
}

// foreignKid signs claims with a key of our own under a kid Keyward never had.
func foreignKid(t *testing.T, claims map[string]any) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", fmt.Sprintf("forged-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(mustJSON(claims))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// keywardCLI runs the keyward binary bin on the database dsn in dir, failing
// the test when a command fails, and returns what it printed.
func keywardCLI(t *testing.T, bin, dsn, dir string) func(args ...string) []byte {
	return func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--database", dsn}, args...)...)
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keyward %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}
}
