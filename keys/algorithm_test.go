package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAlgorithms: for each algorithm a Manager generates a key of that type,
// publishes exactly the public members of its kty, and signs tokens whose
// header is exactly {"alg","kid","typ"} and whose signature verifies with
// go-jose against the JWKS; an ES256 signature is the 64-byte R || S.
func TestAlgorithms(t *testing.T) {
	tests := []struct {
		alg         string
		wantMembers []string
		kty, crv    string
		sigLen      int
	}{
		{AlgRS256, []string{"alg", "e", "kid", "kty", "n", "use"}, "RSA", "", 256},
		{AlgES256, []string{"alg", "crv", "kid", "kty", "use", "x", "y"}, "EC", "P-256", 64},
		{AlgEdDSA, []string{"alg", "crv", "kid", "kty", "use", "x"}, "OKP", "Ed25519", 64},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			p := managerPolicy
			p.Algorithm = tt.alg
			m, err := NewManager(t.Context(), storagetest.OpenSQLite(t), NewKEK(), p, nil, newClock().Now)
			if err != nil {
				t.Fatal(err)
			}
			doc, _ := m.JWKS()
			var jwks struct{ Keys []map[string]string }
			if err := json.Unmarshal(doc, &jwks); err != nil || len(jwks.Keys) != 2 {
				t.Fatalf("JWKS %s: %v", doc, err)
			}
			for _, k := range jwks.Keys {
				if got := slices.Sorted(maps.Keys(k)); !slices.Equal(got, tt.wantMembers) {
					t.Fatalf("JWK members %v, want %v", got, tt.wantMembers)
				}
				if k["kty"] != tt.kty || k["crv"] != tt.crv || k["alg"] != tt.alg || k["use"] != "sig" {
					t.Fatalf("JWK %v", k)
				}
			}
			for _, typ := range []string{"at+jwt", "JWT"} {
				tok, err := m.Sign(typ, []byte(accessToken))
				if err != nil {
					t.Fatal(err)
				}
				parts := strings.Split(tok, ".")
				hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
				if want := `{"alg":"` + tt.alg + `","kid":"` + activeKID(m) + `","typ":"` + typ + `"}`; string(hdr) != want {
					t.Fatalf("header %s, want %s", hdr, want)
				}
				if payload, _ := base64.RawURLEncoding.DecodeString(parts[1]); string(payload) != accessToken {
					t.Fatalf("payload %s", payload)
				}
				if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(sig) != tt.sigLen {
					t.Fatalf("signature of %d bytes, want %d", len(sig), tt.sigLen)
				}
				if _, _, err := verifyToken(tok, doc); err != nil {
					t.Fatalf("token does not verify: %v", err)
				}
			}
		})
	}
}

// TestRawECDSA: the ASN.1 signature becomes fixed 32-byte halves, also when
// R or S is short (about 1 in 128 signatures has a leading zero byte) and
// verifies as R || S; malformed DER is refused.
func TestRawECDSA(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	short := 0
	for i := range 2000 {
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		der, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		raw, err := rawECDSA(der)
		if err != nil || len(raw) != 64 {
			t.Fatalf("rawECDSA: %d bytes, %v", len(raw), err)
		}
		r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
		if r.BitLen() <= 248 || s.BitLen() <= 248 {
			short++
		}
		if !ecdsa.Verify(&priv.PublicKey, digest[:], r, s) {
			t.Fatalf("signature %d does not verify as R || S", i)
		}
	}
	if short == 0 {
		t.Fatal("no short R or S in 2000 signatures: the padding path was not exercised")
	}
	for _, bad := range [][]byte{nil, {0x30, 0}, {0x30, 3, 2, 1, 1}, append([]byte{0x30, 0x46, 2, 0x21}, make([]byte, 0x44)...)} {
		if _, err := rawECDSA(bad); err == nil {
			t.Fatalf("rawECDSA accepted %x", bad)
		}
	}
}

// TestParsePublicRefuses: a stored key is loaded only when its JWK fits its
// alg: no P-384 or off-curve point for ES256, no RSA key for EdDSA, no
// short RSA key, no alg that differs from the JWK's.
func TestParsePublicRefuses(t *testing.T) {
	kek := NewKEK()
	gen := func(alg string) storage.Key {
		k, err := generate(Policy{Algorithm: alg, KeySize: 2048}, kek)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	es, ed, rs := gen(AlgES256), gen(AlgEdDSA), gen(AlgRS256)
	for _, k := range []storage.Key{es, ed, rs} {
		pub, err := parsePublic(k)
		if err != nil {
			t.Fatalf("%s: %v", k.Alg, err)
		}
		if _, err := decrypt(k, pub, kek); err != nil {
			t.Fatalf("%s: decrypt: %v", k.Alg, err)
		}
	}
	withJWK := func(k storage.Key, edit func(j map[string]string)) storage.Key {
		var j map[string]string
		json.Unmarshal([]byte(k.PublicJWK), &j)
		edit(j)
		b, _ := json.Marshal(j)
		k.PublicJWK = string(b)
		return k
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name string
		k    storage.Key
	}{
		{"ES256 row, point off the curve", withJWK(es, func(j map[string]string) { j["y"] = b64(make([]byte, 32)) })},
		{"ES256 row, P-384 key", withJWK(es, func(j map[string]string) {
			raw, _ := p384.PublicKey.Bytes()
			j["crv"], j["x"], j["y"] = "P-384", b64(raw[1:49]), b64(raw[49:])
		})},
		{"ES256 row, short x", withJWK(es, func(j map[string]string) { j["x"] = j["x"][2:] })},
		{"EdDSA row, X25519 curve", withJWK(ed, func(j map[string]string) { j["crv"] = "X25519" })},
		{"EdDSA row holding an RSA JWK", func() storage.Key { k := rs; k.Alg = AlgEdDSA; return k }()},
		{"RS256 row holding an EC JWK", func() storage.Key { k := es; k.Alg = AlgRS256; return k }()},
		{"JWK alg differs from the row", withJWK(rs, func(j map[string]string) { j["alg"] = "PS256" })},
		{"RSA under 2048 bits", withJWK(rs, func(j map[string]string) { j["n"] = b64(small.N.Bytes()) })},
		{"unknown alg", func() storage.Key { k := rs; k.Alg = "RS512"; return k }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parsePublic(tt.k); err == nil {
				t.Fatal("parsePublic accepted it")
			}
		})
	}
	// A sealed Ed25519 key under an ES256 row's kid does not open (the kid
	// is the AEAD's associated data), and decrypt refuses a private key of
	// another type than the public one.
	edPub, _ := parsePublic(ed)
	swapped := es
	swapped.PrivateKey = ed.PrivateKey
	if _, err := decrypt(swapped, edPub, kek); err == nil {
		t.Fatal("decrypt accepted another key's private part")
	}
	var _ ed25519.PublicKey = edPub.(ed25519.PublicKey)
}

// TestSignAllocs bounds the allocations of one Sign per algorithm (the
// figures of docs/keys.md): the header is made once per typ and the token
// is built in one buffer, so Sign allocates at most two things more than
// the bare signature over the same input (the buffer, and the R || S of
// ES256). Before this signer, RS256 took 62 allocations against the bare
// signature's 2.
func TestSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	for _, alg := range Algorithms {
		t.Run(alg, func(t *testing.T) {
			p := managerPolicy
			p.Algorithm = alg
			m, err := NewManager(t.Context(), storagetest.OpenSQLite(t), NewKEK(), p, nil, newClock().Now)
			if err != nil {
				t.Fatal(err)
			}
			payload := []byte(accessToken)
			tok, err := m.Sign("at+jwt", payload)
			if err != nil {
				t.Fatal(err)
			}
			signer := m.snap.Load().active.signer
			input := []byte(tok[:strings.LastIndexByte(tok, '.')])
			bare := testing.AllocsPerRun(50, func() {
				var err error
				if alg == AlgEdDSA {
					_, err = signer.Sign(rand.Reader, input, crypto.Hash(0))
				} else {
					d := sha256.Sum256(input)
					_, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
				}
				if err != nil {
					t.Fatal(err)
				}
			})
			n := testing.AllocsPerRun(50, func() {
				if _, err := m.Sign("at+jwt", payload); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%s: %v allocations per Sign, %v for the bare signature", alg, n, bare)
			if n > bare+2 {
				t.Fatalf("%v allocations per Sign, want at most the bare signature's %v + 2", n, bare)
			}
		})
	}
}

// FuzzRawECDSA: whatever a signer returns, rawECDSA never panics and either
// refuses it or returns the 64-byte R || S.
func FuzzRawECDSA(f *testing.F) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	d := sha256.Sum256([]byte("seed"))
	der, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
	f.Add(der)
	f.Add([]byte{0x30, 6, 2, 1, 0, 2, 1, 0})
	f.Add(append([]byte{0x30, 0x46, 2, 0x21, 0}, make([]byte, 0x43)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, err := rawECDSA(in)
		if err != nil {
			return
		}
		if len(raw) != 64 {
			t.Fatalf("%d bytes", len(raw))
		}
	})
}
