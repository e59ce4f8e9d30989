package verify_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/verify"
)

// hs signs header.payload with HMAC (HS256 or HS512) under secret.
func hs(h func() crypto.Hash, secret []byte, header, payload string) string {
	in := signingInput(header, payload)
	m := hmac.New(h().New, secret)
	m.Write([]byte(in))
	return in + "." + b64(m.Sum(nil))
}

func sha256Hash() crypto.Hash { return crypto.SHA256 }
func sha512Hash() crypto.Hash { return crypto.SHA512 }

// es256 signs header.payload with ECDSA P-256 in the JWS R||S form.
func es256(t testing.TB, k *ecdsa.PrivateKey, header, payload string) string {
	t.Helper()
	in := signingInput(header, payload)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64(sig)
}

// confusionKeys are the forms of k1's public key an attacker may use as an HMAC secret
// (AC-J4).
func confusionKeys(t testing.TB) map[string][]byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&rsaK1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: &rsaK1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"pem with newline":    pemKey,
		"pem without newline": []byte(strings.TrimSuffix(string(pemKey), "\n")),
		"der spki":            spki,
		"der pkcs1":           x509.MarshalPKCS1PublicKey(&rsaK1.PublicKey),
		"jwk json":            jwkJSON,
		"raw n":               rsaK1.PublicKey.N.Bytes(),
	}
}

// selfSignedA is a self-signed certificate for the attacker key claiming CN as.test (AC-J8).
func selfSignedA(t testing.TB) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "as.test"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaA.PublicKey, rsaA)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// corpusCase is one crafted token and the sentinel Verify must wrap (nil: accept).
type corpusCase struct {
	name  string
	token string
	want  error
}

// attackCorpus builds every token of SECURITY-REQUIREMENTS §15.1 (AC-J1..AC-J19, except
// AC-J17, which needs an ES256 verifier: TestPsychicSignature) against issuer is. Header
// URLs point at canary, which must never be called.
func attackCorpus(t *testing.T, is *issuer, canary string) []corpusCase {
	t.Helper()
	iss := is.srv.URL
	H, P := baseHeader(), basePayload(iss)
	hdr := func(changes ...member) string { return obj(with(H, changes...)...) }
	pay := func(changes ...member) string { return obj(with(P, changes...)...) }
	signed := func(header, payload string) string { return rs256(t, rsaK1, header, payload) }
	V := signed(obj(H...), obj(P...))
	vParts := strings.Split(V, ".")
	vSig := vParts[2]

	var cases []corpusCase
	add := func(name, token string, want error) { cases = append(cases, corpusCase{name, token, want}) }

	// Positive controls.
	add("baseline V accepted", V, nil)
	add("typ AT+JWT accepted", signed(hdr(member{"typ", `"AT+JWT"`}), obj(P...)), nil)
	add("typ application/at+jwt accepted", signed(hdr(member{"typ", `"application/at+jwt"`}), obj(P...)), nil)
	add("typ Application/AT+JWT accepted", signed(hdr(member{"typ", `"Application/AT+JWT"`}), obj(P...)), nil)
	add("aud array containing rs1 accepted", signed(obj(H...), pay(member{"aud", `["https://rs2.test","https://rs1.test"]`})), nil)
	add("exp in 10 years accepted", signed(obj(H...), pay(member{"exp", num(testNow.AddDate(10, 0, 0))})), nil)
	add("exp within leeway accepted", signed(obj(H...), pay(member{"exp", num(testNow.Add(-20 * time.Second))})), nil)
	add("nbf within leeway accepted", signed(obj(H...), pay(member{"nbf", num(testNow.Add(20 * time.Second))})), nil)
	add("second published key accepted", rs256(t, rsaK2, hdr(member{"kid", `"k2"`}), obj(P...)), nil)
	add("jku x5u jwk x5c ignored on a valid token", signed(hdr(
		member{"jku", str(canary + "/jwks.json")}, member{"x5u", str(canary + "/cert.pem")},
		member{"jwk", `{"kty":"oct","k":"AAAA"}`}, member{"x5c", `["` + base64.StdEncoding.EncodeToString(selfSignedA(t)) + `"]`},
	), obj(P...)), nil)

	// AC-J1 alg none.
	noneHdr := hdr(member{"alg", `"none"`})
	noneS := signingInput(noneHdr, obj(P...))
	add("J1 none with empty signature", noneS+".", verify.ErrMalformed)
	add("J1 none with V's signature", noneS+"."+vSig, verify.ErrAlgorithm)
	add("J1 none with a space signature", noneS+". ", verify.ErrMalformed)

	// AC-J2 spellings of none and ill-typed alg, each with a real RS256 signature.
	for _, alg := range []string{`"None"`, `"NONE"`, `"nOnE"`, `"none "`, `" none"`, `"\u006eone"`,
		`"none\u0000"`, `""`, `null`, `["RS256"]`, `256`, `{"x":1}`, `"rs256"`, `"RS256 "`} {
		add("J2 alg "+alg, signed(hdr(member{"alg", alg}), obj(P...)), verify.ErrAlgorithm)
	}
	add("J2 alg missing", signed(hdr(member{"alg", ""}), obj(P...)), verify.ErrAlgorithm)

	// AC-J3 other algorithms with kid k1.
	add("J3 HS256", hs(sha256Hash, []byte("secret"), hdr(member{"alg", `"HS256"`}), obj(P...)), verify.ErrAlgorithm)
	add("J3 HS512", hs(sha512Hash, []byte("secret"), hdr(member{"alg", `"HS512"`}), obj(P...)), verify.ErrAlgorithm)
	add("J3 RS1", signed(hdr(member{"alg", `"RS1"`}), obj(P...)), verify.ErrAlgorithm)
	add("J3 ES256 with attacker key", es256(t, ecE1, hdr(member{"alg", `"ES256"`}), obj(P...)), verify.ErrAlgorithm)

	// AC-J4 RS256 to HS256 key confusion, every form of the public key.
	for form, k := range confusionKeys(t) {
		add("J4 HS256 keyed with "+form, hs(sha256Hash, k, hdr(member{"alg", `"HS256"`}), obj(P...)), verify.ErrAlgorithm)
	}

	// AC-J5 another algorithm on the real key.
	add("J5 PS256 with real key", signRSA(t, rsaK1, crypto.SHA256, true, hdr(member{"alg", `"PS256"`}), obj(P...)), verify.ErrAlgorithm)
	add("J5 RS512 with real key", signRSA(t, rsaK1, crypto.SHA512, false, hdr(member{"alg", `"RS512"`}), obj(P...)), verify.ErrAlgorithm)

	// AC-J6 embedded jwk signed by the attacker.
	aJWK, _ := json.Marshal(jose.JSONWebKey{Key: &rsaA.PublicKey, Algorithm: "RS256", Use: "sig"})
	tp, _ := (&jose.JSONWebKey{Key: &rsaA.PublicKey}).Thumbprint(crypto.SHA256)
	add("J6 jwk with kid k1", rs256(t, rsaA, hdr(member{"jwk", string(aJWK)}), obj(P...)), verify.ErrSignature)
	add("J6 jwk with kid thumbprint", rs256(t, rsaA, hdr(member{"jwk", string(aJWK)}, member{"kid", str(b64(tp))}), obj(P...)), verify.ErrUnknownKey)

	// AC-J7 and AC-J8 jku, x5u, x5c: URLs at the canary and the SSRF set.
	urls := []string{canary + "/jwks.json", "http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data/",
		"http://[::1]/", "file:///etc/passwd", "https://as.test@attacker.test/", "https://as.test.attacker.test/"}
	for _, u := range urls {
		add("J7 jku "+u, rs256(t, rsaA, hdr(member{"jku", str(u)}), obj(P...)), verify.ErrSignature)
		add("J8 x5u "+u, rs256(t, rsaA, hdr(member{"x5u", str(u)}), obj(P...)), verify.ErrSignature)
	}
	add("J7 jku with attacker kid", rs256(t, rsaA, hdr(member{"jku", str(canary + "/jwks.json")}, member{"kid", `"attacker"`}), obj(P...)), verify.ErrUnknownKey)
	x5c := `["` + base64.StdEncoding.EncodeToString(selfSignedA(t)) + `"]`
	add("J8 x5c self-signed for as.test", rs256(t, rsaA, hdr(member{"x5c", x5c}), obj(P...)), verify.ErrSignature)

	// AC-J9 kid injection.
	add("J9 kid traversal HS256 empty key", hs(sha256Hash, nil, hdr(member{"alg", `"HS256"`}, member{"kid", `"../../../../dev/null"`}), obj(P...)), verify.ErrAlgorithm)
	for _, kid := range []string{`"../../../../dev/null"`, `"/dev/null"`, `"' OR '1'='1"`, `"k1' UNION SELECT 'AAAA' --"`,
		`"k1\u0000"`, `"k1;"`, `"sleep 5"`, `"K1"`, `"k1 "`, `42`, `{"kid":"k1"}`, `["k1"]`, `""`, `null`} {
		add("J9 kid "+kid, signed(hdr(member{"kid", kid}), obj(P...)), verify.ErrUnknownKey)
	}
	add("J9 kid missing", signed(hdr(member{"kid", ""}), obj(P...)), verify.ErrUnknownKey)
	add("J9 kid of 10 KiB", signed(hdr(member{"kid", str(strings.Repeat("k", 10<<10))}), obj(P...)), verify.ErrMalformed)

	// AC-J10 crit.
	for _, crit := range [][]member{
		{{"crit", `["x-unknown"]`}, {"x-unknown", `true`}}, {{"crit", `[]`}}, {{"crit", `["exp"]`}}, {{"crit", `"x"`}},
	} {
		add("J10 "+obj(crit...), signed(hdr(crit...), obj(P...)), verify.ErrMalformed)
	}

	// AC-J11 duplicate and case-variant member names, raw text, signed with the real key.
	add("J11 header alg twice", signed(`{"alg":"RS256","alg":"none","typ":"at+jwt","kid":"k1"}`, obj(P...)), verify.ErrMalformed)
	add("J11 header alg and ALG", signed(`{"alg":"none","ALG":"RS256","typ":"at+jwt","kid":"k1"}`, obj(P...)), verify.ErrMalformed)
	add("J11 header kid and Kid", signed(`{"alg":"RS256","typ":"at+jwt","kid":"k1","Kid":"k2"}`, obj(P...)), verify.ErrMalformed)
	add("J11 payload sub twice", signed(obj(H...), pay(member{"sub", `"u-alice","sub":"u-admin"`})), verify.ErrMalformed)
	add("J11 payload aud and AUD", signed(obj(H...), pay(member{"aud", `"https://rs2.test","AUD":"https://rs1.test"`})), verify.ErrMalformed)
	add("J11 payload exp and Exp", signed(obj(H...), pay(member{"exp", `1,"Exp":9999999999`})), verify.ErrMalformed)
	add("J11 nested duplicate", signed(obj(H...), pay(member{"cnf", `{"x":1,"x":2}`})), verify.ErrMalformed)

	// AC-J12 typ.
	for _, typ := range []string{`"JWT"`, `"at+jwt "`, `"at+jwt; q=1"`, `"logout+jwt"`, `"secevent+jwt"`,
		`""`, `"jwt"`, `" at+jwt"`, `"application/jwt"`, `"at+JWT\u0000"`, `1`, `["at+jwt"]`} {
		add("J12 typ "+typ, signed(hdr(member{"typ", typ}), obj(P...)), verify.ErrType)
	}
	add("J12 typ missing", signed(hdr(member{"typ", ""}), obj(P...)), verify.ErrType)

	// AC-J13 claims.
	claimCases := []struct {
		name   string
		change member
		want   error
	}{
		{"exp missing", member{"exp", ""}, verify.ErrMalformed},
		{"exp an hour ago", member{"exp", num(testNow.Add(-time.Hour))}, verify.ErrExpired},
		{"exp just past leeway", member{"exp", num(testNow.Add(-31 * time.Second))}, verify.ErrExpired},
		{"exp string", member{"exp", `"9999999999"`}, verify.ErrMalformed},
		{"exp 1e400", member{"exp", `1e400`}, verify.ErrMalformed},
		{"exp -1", member{"exp", `-1`}, verify.ErrMalformed},
		{"exp 1.5", member{"exp", `1.5`}, verify.ErrExpired},
		{"exp null", member{"exp", `null`}, verify.ErrMalformed},
		{"nbf in 10 minutes", member{"nbf", num(testNow.Add(10 * time.Minute))}, verify.ErrNotYetValid},
		{"nbf string", member{"nbf", `"0"`}, verify.ErrMalformed},
		{"iat in an hour", member{"iat", num(testNow.Add(time.Hour))}, verify.ErrNotYetValid},
		{"iat missing", member{"iat", ""}, verify.ErrMalformed},
		{"iss trailing slash", member{"iss", str(iss + "/")}, verify.ErrIssuer},
		{"iss upper case", member{"iss", str(strings.ToUpper(iss))}, verify.ErrIssuer},
		{"iss https variant", member{"iss", str(strings.Replace(iss, "http://", "https://", 1))}, verify.ErrIssuer},
		{"iss suffix", member{"iss", str(iss + ".evil")}, verify.ErrIssuer},
		{"iss missing", member{"iss", ""}, verify.ErrIssuer},
		{"iss array", member{"iss", `[` + str(iss) + `]`}, verify.ErrIssuer},
		{"aud missing", member{"aud", ""}, verify.ErrAudience},
		{"aud empty string", member{"aud", `""`}, verify.ErrAudience},
		{"aud empty array", member{"aud", `[]`}, verify.ErrAudience},
		{"aud other in array", member{"aud", `["https://rs2.test"]`}, verify.ErrAudience},
		{"aud other string", member{"aud", `"https://rs2.test"`}, verify.ErrAudience},
		{"aud object", member{"aud", `{"a":1}`}, verify.ErrAudience},
		{"aud number in array", member{"aud", `["https://rs1.test",1]`}, verify.ErrAudience},
		{"aud prefix", member{"aud", `"https://rs1.test.evil"`}, verify.ErrAudience},
		{"sub missing", member{"sub", ""}, verify.ErrMalformed},
		{"client_id missing", member{"client_id", ""}, verify.ErrMalformed},
		{"jti missing", member{"jti", ""}, verify.ErrMalformed},
		{"scope array", member{"scope", `["read","write"]`}, verify.ErrMalformed},
	}
	for _, c := range claimCases {
		add("J13 "+c.name, signed(obj(H...), pay(c.change)), c.want)
	}

	// AC-J14 substitution.
	add("J14 token for rs2", signed(obj(H...), pay(member{"aud", `"https://rs2.test"`})), verify.ErrAudience)
	add("J14 id token", signed(hdr(member{"typ", `"JWT"`}), pay(member{"aud", `"C1"`})), verify.ErrType)
	add("J14 refresh token", "kwrt_"+b64(make([]byte, 32)), verify.ErrMalformed)
	add("J14 staging issuer same kid", rs256(t, rsaK2, obj(H...), pay(member{"iss", `"https://staging.as.test"`})), verify.ErrSignature)

	// AC-J15 tampering.
	p := []byte(vParts[1])
	p[10] ^= 'A' ^ 'B' // 'A'<->'B' and the like: still base64url, different bytes
	if p[10] == vParts[1][10] || !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", rune(p[10])) {
		p[10] = 'A' + (vParts[1][10]-'A'+1)%26
	}
	add("J15 payload bit flipped", vParts[0]+"."+string(p)+"."+vSig, verify.ErrSignature)
	add("J15 signature dropped", vParts[0]+"."+vParts[1]+".", verify.ErrMalformed)
	sig, _ := base64.RawURLEncoding.DecodeString(vSig)
	add("J15 signature truncated by one byte", vParts[0]+"."+vParts[1]+"."+b64(sig[:len(sig)-1]), verify.ErrSignature)
	add("J15 padding added", V+"==", verify.ErrMalformed)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, vSig[len(vSig)-1])
	add("J15 signature trailing bits changed", V[:len(V)-1]+string(alphabet[last|1]), verify.ErrMalformed)
	add("J15 expired with bad signature reports the signature", vParts[0]+"."+b64([]byte(pay(member{"exp", num(testNow.Add(-time.Hour))})))+"."+vSig, verify.ErrSignature)

	// AC-J16 format.
	add("J16 two segments", vParts[0]+"."+vParts[1], verify.ErrMalformed)
	add("J16 four segments", V+".x", verify.ErrMalformed)
	jweHdr := b64([]byte(`{"alg":"dir","enc":"A256GCM","kid":"k1"}`))
	add("J16 jwe five segments", jweHdr+"..AAAA.AAAA.AAAA", verify.ErrMalformed)
	add("J16 json serialization", `{"payload":"`+vParts[1]+`","signatures":[{"protected":"`+vParts[0]+`","signature":"`+vSig+`"}]}`, verify.ErrMalformed)
	add("J16 leading space", " "+V, verify.ErrMalformed)
	add("J16 trailing space", V+" ", verify.ErrMalformed)
	add("J16 trailing newline", V+"\n", verify.ErrMalformed)
	add("J16 newline inside payload", vParts[0]+"."+vParts[1][:8]+"\n"+vParts[1][8:]+"."+vSig, verify.ErrMalformed)
	for _, c := range []string{"+", "/", "{", `"`, "=", "%"} {
		add("J16 character "+c, vParts[0]+"."+vParts[1][:8]+c+vParts[1][9:]+"."+vSig, verify.ErrMalformed)
	}
	add("J16 empty", "", verify.ErrMalformed)

	// AC-J18 size and complexity.
	add("J18 1 MB token", strings.Repeat("A", 1<<20), verify.ErrMalformed)
	add("J18 a million dots", strings.Repeat(".", 1_000_000), verify.ErrMalformed)
	deep := `{"x":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`
	add("J18 header nested 100000 deep", b64([]byte(deep))+"."+vParts[1]+"."+vSig, verify.ErrMalformed)
	add("J18 header nested 20 deep within size", signed(hdr(member{"x", strings.Repeat("[", 20) + strings.Repeat("]", 20)}), obj(P...)), verify.ErrMalformed)
	add("J18 payload nested 20 deep within size", signed(obj(H...), pay(member{"x", strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20)})), verify.ErrMalformed)
	var many []member
	for i := range 10_000 {
		many = append(many, member{"m" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + big.NewInt(int64(i)).String(), "0"})
	}
	add("J18 header with 10000 members", signed(hdr(many...), obj(P...)), verify.ErrMalformed)
	add("J18 kid of 64 KiB", signed(hdr(member{"kid", str(strings.Repeat("k", 64<<10))}), obj(P...)), verify.ErrMalformed)

	// AC-J19 JWE-only parameters in a three-segment token.
	add("J19 zip DEF", signed(hdr(member{"zip", `"DEF"`}), obj(P...)), verify.ErrMalformed)
	add("J19 p2c PBES2", signed(hdr(member{"alg", `"PBES2-HS256+A128KW"`}, member{"p2c", `100000000`}, member{"p2s", `"AAAA"`}), obj(P...)), verify.ErrMalformed)
	add("J19 enc", signed(hdr(member{"enc", `"A256GCM"`}), obj(P...)), verify.ErrMalformed)
	return cases
}

// canaryServer counts every request it receives; header URLs in the corpus point at it.
func canaryServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestVerifyAttackCorpus runs AC-J1..AC-J19 (RS-01..RS-14): each crafted token is
// rejected with the named error, positive controls are accepted, and no URL from a
// token header is ever fetched (RS-04).
func TestVerifyAttackCorpus(t *testing.T) {
	is := newIssuer(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&rsaK2.PublicKey, "k2", "RS256"})
	canary, hits := canaryServer(t)
	v := newVerifier(t, is, is.config(newClock()))
	for _, tc := range attackCorpus(t, is, canary.URL) {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(t.Context(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want accepted", err)
				}
				if claims.Subject != "u-alice" || claims.ClientID != "C1" {
					t.Errorf("claims = %+v", claims)
				}
				return
			}
			if claims != nil {
				t.Errorf("claims returned with error")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20]) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("canary got %d requests, want 0", n)
	}
}

// TestVerifyClaims checks the claims returned for the baseline token.
func TestVerifyClaims(t *testing.T) {
	is := newIssuer(t)
	v := newVerifier(t, is, is.config(newClock()))
	tok := rs256(t, rsaK1, obj(baseHeader()...), obj(with(basePayload(is.srv.URL),
		member{"aud", `["https://rs1.test","https://rs2.test"]`}, member{"auth_time", num(testNow.Add(-time.Minute))},
		member{"nbf", num(testNow)}, member{"scope", `"read  write admin"`}, member{"x-tenant", `"acme"`})...))
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"issuer", c.Issuer, is.srv.URL},
		{"subject", c.Subject, "u-alice"},
		{"client id", c.ClientID, "C1"},
		{"id", c.ID, "j1"},
		{"scopes", strings.Join(c.Scopes, "|"), "read|write|admin"},
		{"audience", strings.Join(c.Audience, "|"), "https://rs1.test|https://rs2.test"},
		{"expiry", c.Expiry, testNow.Add(10 * time.Minute)},
		{"issued at", c.IssuedAt, testNow},
		{"not before", c.NotBefore, testNow},
		{"auth time", c.AuthTime, testNow.Add(-time.Minute)},
		{"raw extra claim", c.Raw["x-tenant"], "acme"},
		{"has scope write", c.HasScope("write"), true},
		{"has scope rea", c.HasScope("rea"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// TestKeyBoundToOneAlgorithm (RS-03, KM-05): with RS256 and PS256 both allowed, a key
// published for RS256 does not verify PS256, and a key without alg is ambiguous and unused.
func TestKeyBoundToOneAlgorithm(t *testing.T) {
	is := newIssuer(t, jwk{&rsaK1.PublicKey, "k1", "RS256"}, jwk{&rsaK2.PublicKey, "k2", ""}, jwk{&rsaA.PublicKey, "ps", "PS256"})
	cfg := is.config(newClock())
	cfg.Algorithms = []string{"RS256", "PS256"}
	v := newVerifier(t, is, cfg)
	P := obj(basePayload(is.srv.URL)...)
	hdr := func(alg, kid string) string {
		return obj(with(baseHeader(), member{"alg", str(alg)}, member{"kid", str(kid)})...)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"RS256 on RS256 key", rs256(t, rsaK1, hdr("RS256", "k1"), P), nil},
		{"PS256 on PS256 key", signRSA(t, rsaA, crypto.SHA256, true, hdr("PS256", "ps"), P), nil},
		{"PS256 on RS256 key", signRSA(t, rsaK1, crypto.SHA256, true, hdr("PS256", "k1"), P), verify.ErrAlgorithm},
		{"RS256 on PS256 key", rs256(t, rsaA, hdr("RS256", "ps"), P), verify.ErrAlgorithm},
		{"key without alg and two candidates", rs256(t, rsaK2, hdr("RS256", "k2"), P), verify.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantVerify(t, v, tt.token, tt.want)
		})
	}
}

// TestPsychicSignature (AC-J17, CVE-2022-21449): with ES256 allowed, zero signatures are
// rejected and a real one is accepted.
func TestPsychicSignature(t *testing.T) {
	testKeys(t)
	is := newIssuer(t, jwk{&ecE1.PublicKey, "e1", "ES256"})
	cfg := is.config(newClock())
	cfg.Algorithms = []string{"ES256"}
	v := newVerifier(t, is, cfg)
	H := obj(with(baseHeader(), member{"alg", `"ES256"`}, member{"kid", `"e1"`})...)
	P := obj(basePayload(is.srv.URL)...)
	in := signingInput(H, P)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"real ES256 signature", es256(t, ecE1, H, P), nil},
		{"64 zero bytes", in + "." + strings.Repeat("A", 86), verify.ErrSignature},
		{"DER zero r and s", in + ".MAYCAQACAQA", verify.ErrSignature},
		{"RS256 on an EC key", rs256(t, rsaK1, obj(with(baseHeader(), member{"kid", `"e1"`})...), P), verify.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantVerify(t, v, tt.token, tt.want)
		})
	}
}

// TestParsingCostBounded (RS-13, AC-J18): a million dots is rejected quickly and with
// almost no allocation, before the token is split.
func TestParsingCostBounded(t *testing.T) {
	is := newIssuer(t)
	v := newVerifier(t, is, is.config(newClock()))
	tests := []struct {
		name  string
		token string
	}{
		{"a million dots", strings.Repeat(".", 1_000_000)},
		{"one megabyte", strings.Repeat("A", 1<<20)},
		{"64 KiB bearer token", strings.Repeat("A", 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			allocs := testing.AllocsPerRun(20, func() {
				if _, err := v.Verify(t.Context(), tt.token); !errors.Is(err, verify.ErrMalformed) {
					t.Fatalf("Verify error = %v", err)
				}
			})
			if el := time.Since(start) / 21; el > 50*time.Millisecond {
				t.Errorf("took %s per call", el)
			}
			if allocs > 4 && !raceEnabled {
				t.Errorf("%v allocations per call", allocs)
			}
		})
	}
}

// TestConfig checks the configuration rules New enforces before any I/O.
func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  verify.Config
	}{
		{"no issuer", verify.Config{Audience: "a", JWKSURL: "http://x/jwks"}},
		{"no audience", verify.Config{Issuer: "http://x", JWKSURL: "http://x/jwks"}},
		{"audience with any audience", verify.Config{Issuer: "http://x", Audience: "a", AnyAudience: true, JWKSURL: "http://x/jwks"}},
		{"leeway above a minute", verify.Config{Issuer: "http://x", Audience: "a", Leeway: 61 * time.Second}},
		{"negative leeway", verify.Config{Issuer: "http://x", Audience: "a", Leeway: -time.Second}},
		{"alg none", verify.Config{Issuer: "http://x", Audience: "a", Algorithms: []string{"none"}}},
		{"alg HS256", verify.Config{Issuer: "http://x", Audience: "a", Algorithms: []string{"HS256"}}},
		{"max cache age below min", verify.Config{Issuer: "http://x", Audience: "a", MinCacheAge: time.Hour, MaxCacheAge: time.Minute}},
		{"realm with a quote", verify.Config{Issuer: "http://x", Audience: "a", Realm: `a"b`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verify.New(t.Context(), tt.cfg); err == nil || !strings.HasPrefix(err.Error(), "verify config:") {
				t.Fatalf("New error = %v, want a config error", err)
			}
		})
	}
}

// TestAnyAudience: AnyAudience accepts a token for any resource, but aud must still be a
// non-empty string or array of strings, and every other check still applies.
func TestAnyAudience(t *testing.T) {
	const iss = "https://as.test"
	src := verify.StaticKeys(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaK1.PublicKey, KeyID: "k1", Algorithm: "RS256"}}})
	clk := newClock()
	v, err := verify.NewWithKeys(t.Context(), verify.Config{Issuer: iss, AnyAudience: true, Now: clk.Now}, src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  member
		wantErr error // nil means valid
	}{
		{"our audience", member{"aud", str(testAudience)}, nil},
		{"another audience", member{"aud", `"https://rs2.test"`}, nil},
		{"array of others", member{"aud", `["https://rs2.test","https://rs3.test"]`}, nil},
		{"aud missing", member{"aud", ""}, verify.ErrAudience},
		{"aud empty string", member{"aud", `""`}, verify.ErrAudience},
		{"aud empty array", member{"aud", `[]`}, verify.ErrAudience},
		{"aud number in array", member{"aud", `["https://rs2.test",1]`}, verify.ErrAudience},
		{"other issuer", member{"iss", `"https://evil.test"`}, verify.ErrIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := rs256(t, rsaK1, obj(baseHeader()...), obj(with(basePayload(iss), tt.change)...))
			c, err := v.Verify(t.Context(), tok)
			if tt.wantErr == nil {
				if err != nil || len(c.Audience) == 0 {
					t.Fatalf("Verify = %v, %v; want valid with an audience", c, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
