package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
)

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, 32) // encodes differently in the std and URL alphabets
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"standard padded", base64.StdEncoding.EncodeToString(raw), ""},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"URL alphabet", base64.URLEncoding.EncodeToString(raw), ""},
		{"URL unpadded, with newline", base64.RawURLEncoding.EncodeToString(raw) + "\n", ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), "must be 32 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(raw, 1)), "must be 32 bytes"},
		{"not base64", "this is not base64!", "not valid base64"},
		{"empty", "", "must be 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kek, err := ParseKEK(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(kek, raw) {
				t.Fatalf("ParseKEK = %x, %v", kek, err)
			}
		})
	}
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	kek := NewKEK()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rawFile := write("raw.kek", kek)
	textFile := write("text.kek", []byte("  "+EncodeKEK(kek)+"\n"))
	shortFile := write("short.kek", []byte(base64.StdEncoding.EncodeToString(kek[:20])))
	tests := []struct {
		name             string
		b64, file, gen   string
		want             []byte // nil: a new key
		wantGenerated    bool
		wantErr          string
		wantFileWithMode os.FileMode
	}{
		{name: "flag", b64: EncodeKEK(kek), want: kek},
		{name: "raw file", file: rawFile, want: kek},
		{name: "base64 file", file: textFile, want: kek},
		{name: "short file", file: shortFile, wantErr: "must be 32 bytes"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "bad flag", b64: "c2hvcnQ=", wantErr: "must be 32 bytes"},
		{name: "both", b64: EncodeKEK(kek), file: rawFile, wantErr: "only one of"},
		{name: "none, no generating", wantErr: "no key-encryption key"},
		{name: "flag wins over generating", b64: EncodeKEK(kek), gen: filepath.Join(dir, "unused.kek"), want: kek},
		{name: "generate", gen: filepath.Join(dir, "keyward.kek"), wantGenerated: true, wantFileWithMode: 0o600},
		{name: "generated file is reused", gen: filepath.Join(dir, "keyward.kek")},
		{name: "existing file at the generate path is read", gen: textFile, want: kek},
		{name: "broken file at the generate path is an error, not replaced", gen: shortFile, wantErr: "must be 32 bytes"},
	}
	var generated []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gen, err := LoadKEK(tt.b64, tt.file, tt.gen)
			if testsupport.WantError(t, err, tt.wantErr) {
				return
			}
			if gen != tt.wantGenerated || len(got) != KEKSize {
				t.Fatalf("LoadKEK = %d bytes, generated %v", len(got), gen)
			}
			switch {
			case tt.want != nil && !bytes.Equal(got, tt.want):
				t.Fatal("wrong key")
			case tt.wantGenerated:
				generated = got
				fi, err := os.Stat(tt.gen)
				if err != nil || fi.Mode().Perm() != tt.wantFileWithMode {
					t.Fatalf("generated file: %v, mode %v", err, fi.Mode())
				}
			case tt.want == nil && !bytes.Equal(got, generated):
				t.Fatal("the generated key was not reused")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "unused.kek")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a configured key still wrote a generated one")
	}
}

// TestLoadKEKGenerateRace starts several processes' worth of LoadKEK at once
// on an empty directory: one writes the key, all use it.
func TestLoadKEKGenerateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.kek")
	const n = 8
	keks := make([][]byte, n)
	gens := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keks[i], gens[i], errs[i] = LoadKEK("", "", path) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	writers := 0
	for i := range n {
		if gens[i] {
			writers++
		}
		if !bytes.Equal(keks[i], keks[0]) {
			t.Fatal("replicas got different keys")
		}
	}
	if writers != 1 {
		t.Fatalf("%d writers, want 1", writers)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestSealOpen(t *testing.T) {
	kek, other := NewKEK(), NewKEK()
	secret := []byte("private key bytes")
	a, err := seal(kek, "kid-a", secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := seal(kek, "kid-b", secret)
	if bytes.Contains(a, secret) || bytes.Equal(a, b) {
		t.Fatal("ciphertext shows the plaintext or repeats")
	}
	if got, err := open(kek, "kid-a", a); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	flipped := slices.Clone(a)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name    string
		kek     []byte
		kid     string
		sealed  []byte
		wantErr error
	}{
		{"wrong KEK", other, "kid-a", a, ErrWrongKEK},
		{"ciphertext of A under kid B (swapped rows)", kek, "kid-b", a, ErrWrongKEK},
		{"flipped bit", kek, "kid-a", flipped, ErrWrongKEK},
		{"unknown format", kek, "kid-a", append([]byte{9}, a[1:]...), nil},
		{"truncated", kek, "kid-a", a[:10], nil},
		{"short KEK", kek[:16], "kid-a", a, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := open(tt.kek, tt.kid, tt.sealed)
			if err == nil || got != nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("open = %q, %v; want error %v", got, err, tt.wantErr)
			}
		})
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 §3.1: this key's SHA-256 thumbprint.
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	kid, err := thumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	if err != nil || kid != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint = %q, %v", kid, err)
	}
}

func TestGenerate(t *testing.T) {
	kek := NewKEK()
	k, err := generate(Policy{Algorithm: AlgRS256, KeySize: 2048}, kek)
	if err != nil {
		t.Fatal(err)
	}
	// The public JWK has exactly the published members.
	var members map[string]string
	if err := json.Unmarshal([]byte(k.PublicJWK), &members); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(members)); !slices.Equal(got, []string{"alg", "e", "kid", "kty", "n", "use"}) {
		t.Fatalf("public JWK members %v", got)
	}
	if members["kty"] != "RSA" || members["use"] != "sig" || members["alg"] != "RS256" || members["kid"] != k.KID || members["e"] != "AQAB" {
		t.Fatalf("public JWK %s", k.PublicJWK)
	}
	// kid is the RFC 7638 thumbprint, computed here by hand.
	canon := `{"e":"` + members["e"] + `","kty":"RSA","n":"` + members["n"] + `"}`
	sum := sha256.Sum256([]byte(canon))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.KID != want {
		t.Fatalf("kid %s, want thumbprint %s", k.KID, want)
	}
	pubAny, err := parsePublic(k)
	pub, _ := pubAny.(*rsa.PublicKey)
	if err != nil || pub == nil || pub.N.BitLen() != 2048 {
		t.Fatalf("parse public: %v (%T)", err, pubAny)
	}
	priv, err := decrypt(k, pub, kek)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("decrypt: %v", err)
	}
	if _, err := decrypt(k, pub, NewKEK()); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("decrypt under another KEK: %v", err)
	}
	// A row whose kid names another key is refused.
	k2 := k
	k2.KID = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	if _, err := parsePublic(k2); err == nil {
		t.Fatal("parsePublic accepted a kid that is not the key's thumbprint")
	}
	// Private key material sealed under one kid does not open under another
	// key's public part.
	other, err := generate(Policy{Algorithm: AlgRS256, KeySize: 2048}, kek)
	if err != nil {
		t.Fatal(err)
	}
	swapped := other
	swapped.PrivateKey = k.PrivateKey
	if _, err := decrypt(swapped, pub, kek); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("swapped row: %v", err)
	}
}
