package password

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var (
	pepperA = bytes.Repeat([]byte{0xa5}, 32)
	pepperB = bytes.Repeat([]byte{0x5a}, 32)
)

var pepperedPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+,keyid=[A-Za-z0-9+/]{8}\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

// TestPepperDumpCannotVerify checks PW-04: a hash made with a pepper verifies with that
// pepper only. The stored PHC string alone (a database dump) does not let a hasher
// without the key, or with another key, confirm the right password: it gets an error,
// never a match, and an unpeppered recomputation of the stored key does not match either.
func TestPepperDumpCannotVerify(t *testing.T) {
	const pw = "correct horse battery staple"
	peppered := newTestHasher(t, fastParams, WithPepper(pepperA))
	enc := mustHash(t, peppered, pw)
	if !pepperedPattern.MatchString(enc) {
		t.Fatalf("peppered hash %q does not carry keyid", enc)
	}

	ok, rehash, err := peppered.Verify(t.Context(), pw, enc)
	if !ok || rehash || err != nil {
		t.Errorf("same pepper: Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, _, err = peppered.Verify(t.Context(), "wrong horse battery staple", enc)
	if ok || err != nil {
		t.Errorf("same pepper, wrong password: Verify = %v, %v; want false, nil", ok, err)
	}

	for _, tt := range []struct {
		name string
		h    *Hasher
	}{
		{"no pepper", newTestHasher(t, fastParams)},
		{"another pepper", newTestHasher(t, fastParams, WithPepper(pepperB))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := tt.h.Verify(t.Context(), pw, enc)
			if ok || rehash || !errors.Is(err, ErrWrongPepper) {
				t.Errorf("Verify = %v, %v, %v; want false, false, ErrWrongPepper", ok, rehash, err)
			}
		})
	}

	// An offline attacker with the dump and a correct guess, but without the key:
	// argon2id of the password under the stored parameters and salt does not give the
	// stored key, so the guess cannot be confirmed.
	parsed, err := parsePHC(enc)
	if err != nil {
		t.Fatal(err)
	}
	plain := newTestHasher(t, fastParams)
	unkeyed := parsed
	unkeyed.keyid = nil
	if ok, _, err := plain.verifyArgon2(t.Context(), Normalize(pw), unkeyed); ok || err != nil {
		t.Errorf("argon2id of the right password without the pepper matched the stored key (ok=%v, err=%v)", ok, err)
	}
	wrongKey := newTestHasher(t, fastParams, WithPepper(pepperB))
	rekeyed := parsed
	rekeyed.keyid = wrongKey.keyid
	if ok, _, err := wrongKey.verifyArgon2(t.Context(), Normalize(pw), rekeyed); ok || err != nil {
		t.Errorf("the right password under another pepper matched the stored key (ok=%v, err=%v)", ok, err)
	}
}

// TestPepperUpgradesOldHashes checks that hashes made before the pepper (argon2id and
// imported bcrypt) still verify with a peppered hasher, ask for a rehash, and that the
// rehash is peppered and verifies without asking again.
func TestPepperUpgradesOldHashes(t *testing.T) {
	const pw = "correct horse battery staple"
	peppered := newTestHasher(t, fastParams, WithPepper(pepperA))
	bc, err := bcrypt.GenerateFromPassword([]byte(pw), minBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, enc string
	}{
		{"unpeppered argon2id", mustHash(t, newTestHasher(t, fastParams), pw)},
		{"bcrypt import", string(bc)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !peppered.NeedsRehash(tt.enc) {
				t.Errorf("NeedsRehash(%q) = false, want true", tt.enc)
			}
			ok, _, err := peppered.Verify(t.Context(), "wrong horse battery staple", tt.enc)
			if ok || err != nil {
				t.Errorf("wrong password: Verify = %v, %v; want false, nil", ok, err)
			}
			ok, rehash, err := peppered.Verify(t.Context(), pw, tt.enc)
			if !ok || !rehash || err != nil {
				t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
			next := mustHash(t, peppered, pw)
			if !pepperedPattern.MatchString(next) {
				t.Errorf("rehash %q is not peppered", next)
			}
			if peppered.NeedsRehash(next) {
				t.Errorf("NeedsRehash(rehash) = true, want false")
			}
			ok, rehash, err = peppered.Verify(t.Context(), pw, next)
			if !ok || rehash || err != nil {
				t.Errorf("rehash: Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			if _, _, err := newTestHasher(t, fastParams).Verify(t.Context(), pw, next); !errors.Is(err, ErrWrongPepper) {
				t.Errorf("rehash without the pepper: err = %v, want ErrWrongPepper", err)
			}
		})
	}
}

// TestPepperOtherKeyNeedsRehash checks NeedsRehash against the keyid: a hash under
// another pepper or none is stale for a peppered hasher, a peppered one for a plain hasher.
func TestPepperOtherKeyNeedsRehash(t *testing.T) {
	a := newTestHasher(t, fastParams, WithPepper(pepperA))
	b := newTestHasher(t, fastParams, WithPepper(pepperB))
	plain := newTestHasher(t, fastParams)
	encA := mustHash(t, a, "correct horse battery staple")
	if a.NeedsRehash(encA) || !b.NeedsRehash(encA) || !plain.NeedsRehash(encA) {
		t.Errorf("NeedsRehash(peppered A) = %v (A), %v (B), %v (none); want false, true, true",
			a.NeedsRehash(encA), b.NeedsRehash(encA), plain.NeedsRehash(encA))
	}
}

func TestWithPepperRefusesShortKeys(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"nil", nil, false},
		{"empty", []byte{}, false},
		{"31 bytes", bytes.Repeat([]byte{1}, 31), false},
		{"32 bytes", bytes.Repeat([]byte{1}, 32), true},
		{"64 bytes", bytes.Repeat([]byte{1}, 64), true},
		{"too long", bytes.Repeat([]byte{1}, maxPepperLen+1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHasher(fastParams, WithPepper(tt.key))
			if (err == nil) != tt.ok {
				t.Fatalf("NewHasher err = %v, want ok %v", err, tt.ok)
			}
			if err == nil && !h.Peppered() {
				t.Errorf("Peppered() = false")
			}
		})
	}
}

// TestWithPepperCopiesKey checks WithPepper keeps its own copy: zeroing the caller's
// slice once WithPepper has returned (before NewHasher, as cmd/keyward does) changes
// nothing; the hashes verify with a hasher given the same key.
func TestWithPepperCopiesKey(t *testing.T) {
	key := bytes.Clone(pepperA)
	opt := WithPepper(key)
	clear(key)
	h := newTestHasher(t, fastParams, opt)
	enc := mustHash(t, h, "correct horse battery staple")
	same := newTestHasher(t, fastParams, WithPepper(pepperA))
	if ok, _, err := same.Verify(t.Context(), "correct horse battery staple", enc); !ok || err != nil {
		t.Errorf("Verify with the key the caller zeroed = %v, %v; want true, nil", ok, err)
	}
}

// TestVerifyDummyPeppered checks the dummy hash of a peppered hasher is peppered, so an
// unknown user's answer takes the HMAC and argon2id path a known user's does (TE-21).
func TestVerifyDummyPeppered(t *testing.T) {
	h := newTestHasher(t, fastParams, WithPepper(pepperA))
	if !bytes.Equal(h.dummy.keyid, h.keyid) || h.dummy.params() != h.params {
		t.Errorf("dummy keyid %x params %+v; want %x %+v", h.dummy.keyid, h.dummy.params(), h.keyid, h.params)
	}
	if err := h.VerifyDummy(t.Context(), "correct horse battery staple"); err != nil {
		t.Errorf("VerifyDummy: %v", err)
	}
}

// TestParsePHCKeyID checks the keyid parameter is parsed strictly.
func TestParsePHCKeyID(t *testing.T) {
	const head, tail = "$argon2id$v=19$m=64,t=1,p=1", "$AAAAAAAAAAAAAAAAAAAAAA$" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name, params string
		ok           bool
	}{
		{"no keyid", "", true},
		{"keyid", ",keyid=AAECAwQF", true},
		{"empty keyid", ",keyid=", false},
		{"keyid too short", ",keyid=AAECAw", false},
		{"keyid too long", ",keyid=AAECAwQFBgc", false},
		{"keyid padded", ",keyid=AAECAwQF==", false},
		{"keyid not base64", ",keyid=AAEC*wQF", false},
		{"another keyid", ",keyid=AAECAwQG", true},
		{"keyid twice", ",keyid=AAECAwQF,keyid=AAECAwQF", false},
		{"keyid first", "", false},
		{"data parameter", ",data=AAECAwQF", false},
		{"keyid and data", ",keyid=AAECAwQF,data=AA", false},
		{"upper case name", ",KEYID=AAECAwQF", false},
		{"spaces", ", keyid=AAECAwQF", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := head + tt.params + tail
			if tt.name == "keyid first" {
				s = "$argon2id$v=19$keyid=AAECAwQF,m=64,t=1,p=1" + tail
			}
			p, err := parsePHC(s)
			if (err == nil) != tt.ok {
				t.Fatalf("parsePHC(%q) err = %v, want ok %v", s, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformedHash) {
					t.Errorf("err %v does not wrap ErrMalformedHash", err)
				}
				return
			}
			if got := p.encode(); got != s {
				t.Errorf("encode(parse(%q)) = %q", s, got)
			}
			if strings.Contains(tt.params, "keyid") != (p.keyid != nil) {
				t.Errorf("keyid parsed as %x", p.keyid)
			}
		})
	}
}
