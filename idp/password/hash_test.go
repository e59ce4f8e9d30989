package password

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fastParams keep tests quick where the test is not about the parameters themselves.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// fastCeiling keeps the floor on failed checks near a millisecond; tests about the floor
// pass their own WithCeiling, which comes later and wins.
var fastCeiling = Ceiling{Memory: 64, Time: 4, BcryptCost: minBcryptCost}

func newTestHasher(t testing.TB, p Params, opts ...Option) *Hasher {
	t.Helper()
	h, err := NewHasher(p, append([]Option{WithCeiling(fastCeiling)}, opts...)...)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, pw string) string {
	t.Helper()
	enc, err := h.Hash(t.Context(), pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return enc
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

// TestHashDefaultFormat checks PW-01: the stored value names argon2id v19 with
// m >= 19456, t >= 2, p = 1, a 16-byte salt and a 32-byte key.
func TestHashDefaultFormat(t *testing.T) {
	h := newTestHasher(t, DefaultParams())
	enc := mustHash(t, h, "correct horse battery staple")
	m := phcPattern.FindStringSubmatch(enc)
	if m == nil {
		t.Fatalf("hash %q does not match the PHC pattern", enc)
	}
	mem, _ := strconv.Atoi(m[1])
	tm, _ := strconv.Atoi(m[2])
	if mem < 19456 || tm < 2 || m[3] != "1" {
		t.Errorf("params m=%s t=%s p=%s, want m>=19456 t>=2 p=1", m[1], m[2], m[3])
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not carry the default parameters", enc)
	}
	salt, _ := b64.DecodeString(m[4])
	key, _ := b64.DecodeString(m[5])
	if len(salt) != 16 || len(key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(salt), len(key))
	}
	ok, rehash, err := h.Verify(t.Context(), "correct horse battery staple", enc)
	if !ok || rehash || err != nil {
		t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

// TestHashUniqueSalt checks PW-02: one password hashed twice gives two salts and keys.
func TestHashUniqueSalt(t *testing.T) {
	h := newTestHasher(t, fastParams)
	a, b := mustHash(t, h, "same password here"), mustHash(t, h, "same password here")
	pa, _ := parsePHC(a)
	pb, _ := parsePHC(b)
	if string(pa.salt) == string(pb.salt) || string(pa.key) == string(pb.key) {
		t.Errorf("two hashes share a salt or key: %q %q", a, b)
	}
}

func TestVerify(t *testing.T) {
	h := newTestHasher(t, fastParams)
	const pw = "correct horse battery staple"
	enc := mustHash(t, h, pw)
	long := strings.Repeat("abcdefgh", 8) // 64 characters, PW-06
	encLong := mustHash(t, h, long)
	parts := strings.Split(enc, "$") // "", "argon2id", "v=19", params, salt, key
	tamperedKey := strings.Join(append(parts[:5:5], tamper(parts[5], 3)), "$")
	tamperedSalt := strings.Join(append(parts[:4:4], tamper(parts[4], 3), parts[5]), "$")
	otherTime := strings.Replace(enc, "t=1,", "t=2,", 1)

	tests := []struct {
		name    string
		pw, enc string
		want    bool
	}{
		{"right password", pw, enc, true},
		{"wrong password", "wrong horse battery staple", enc, false},
		{"empty password", "", enc, false},
		{"prefix of password", pw[:len(pw)-1], enc, false},
		{"password plus a character", pw + "!", enc, false},
		{"case differs", strings.ToUpper(pw), enc, false},
		{"64 characters", long, encLong, true},
		{"64 characters less the last", long[:63], encLong, false},
		{"tampered key", pw, tamperedKey, false},
		{"tampered salt", pw, tamperedSalt, false},
		{"tampered time parameter", pw, otherTime, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(t.Context(), tt.pw, tt.enc)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.want {
				t.Errorf("Verify ok = %v, want %v", ok, tt.want)
			}
			if rehash && !ok {
				t.Errorf("rehash true on a failed verification")
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := newTestHasher(t, fastParams)
	good := mustHash(t, h, "correct horse battery staple")
	before := h.Stats().Admitted
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	tests := []struct {
		name    string
		enc     string
		wantErr error
	}{
		{"empty", "", ErrMalformedHash},
		{"plain text", "hunter2", ErrMalformedHash},
		{"dollar only", "$", ErrMalformedHash},
		{"prefix only", "$argon2id$", ErrMalformedHash},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key, ErrMalformedHash},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt, ErrMalformedHash},
		{"extra field", good + "$abc", ErrMalformedHash},
		{"trailing dollar", good + "$", ErrMalformedHash},
		{"params reordered", with("t=1,m=64,p=1"), ErrMalformedHash},
		{"params missing", with("m=64,t=1"), ErrMalformedHash},
		{"extra param", with("m=64,t=1,p=1,keyid=x"), ErrMalformedHash},
		{"negative memory", with("m=-64,t=1,p=1"), ErrMalformedHash},
		{"plus sign", with("m=+64,t=1,p=1"), ErrMalformedHash},
		{"leading zero", with("m=064,t=1,p=1"), ErrMalformedHash},
		{"hex memory", with("m=0x40,t=1,p=1"), ErrMalformedHash},
		{"memory 4 GiB", with("m=4194304,t=1,p=1"), ErrMalformedHash},
		{"memory overflows uint32", with("m=99999999999,t=1,p=1"), ErrMalformedHash},
		{"memory below 8p", with("m=7,t=1,p=1"), ErrMalformedHash},
		{"time zero", with("m=64,t=0,p=1"), ErrMalformedHash},
		{"time absurd", with("m=64,t=1000000,p=1"), ErrMalformedHash},
		{"threads zero", with("m=64,t=1,p=0"), ErrMalformedHash},
		{"threads 255", with("m=4096,t=1,p=255"), ErrMalformedHash},
		{"threads 256", with("m=4096,t=1,p=256"), ErrMalformedHash},
		{"empty param value", with("m=,t=1,p=1"), ErrMalformedHash},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key, ErrMalformedHash},
		{"salt padded", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key, ErrMalformedHash},
		{"salt too short", "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key, ErrMalformedHash},
		{"salt empty", "$argon2id$v=19$m=64,t=1,p=1$$" + key, ErrMalformedHash},
		{"key too short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA", ErrMalformedHash},
		{"key too long", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 100), ErrMalformedHash},
		{"key url alphabet", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.ReplaceAll(strings.ReplaceAll(key, "+", "-"), "/", "_") + "-", ErrMalformedHash},
		{"huge string", "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 100000), ErrMalformedHash},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", ErrUnsupportedHash},
		{"bcrypt 2x", "$2x$10$" + strings.Repeat("a", 53), ErrUnsupportedHash},
		{"bcrypt short", "$2a$10$abc", ErrMalformedHash},
		{"bcrypt cost 31", "$2b$31$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt cost 17", "$2b$17$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt cost 03", "$2b$03$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt cost letters", "$2b$1a$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt bad alphabet", "$2b$10$" + strings.Repeat("!", 53), ErrMalformedHash},
		{"bcrypt no separator", "$2b$10" + strings.Repeat("a", 54), ErrMalformedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(t.Context(), "correct horse battery staple", tt.enc)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify err = %v, want %v", err, tt.wantErr)
			}
			if ok || rehash {
				t.Errorf("Verify = %v, %v with an error", ok, rehash)
			}
			if len(tt.enc) > 20 && strings.Contains(err.Error(), tt.enc[10:20]) {
				t.Errorf("error %q quotes the stored hash", err)
			}
			if !h.NeedsRehash(tt.enc) {
				t.Errorf("NeedsRehash false for a hash Verify rejects")
			}
		})
	}
	// Each costs one dummy check at the current parameters, as an unknown user does
	// (TE-21), and never a hash at the stored, untrusted, parameters.
	if n := h.Stats().Admitted - before; n != uint64(len(tests)) {
		t.Errorf("%d hashes ran for %d malformed inputs, want one dummy check each", n, len(tests))
	}
}

// TestVerifyOverBudget checks that a stored hash asking for more memory than the whole
// budget is refused instead of run.
func TestVerifyOverBudget(t *testing.T) {
	h := newTestHasher(t, fastParams, WithMemoryBudget(1<<20))
	enc := "$argon2id$v=19$m=2048,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("A", 43)
	if _, _, err := h.Verify(t.Context(), "whatever password", enc); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("Verify err = %v, want ErrUnsupportedHash", err)
	}
}

func TestNeedsRehash(t *testing.T) {
	h := newTestHasher(t, fastParams)
	current := mustHash(t, h, "correct horse battery staple")
	other := func(p Params) string { return mustHash(t, newTestHasher(t, p), "correct horse battery staple") }
	bc, err := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Params)) Params { p := fastParams; f(&p); return p }
	tests := []struct {
		name string
		enc  string
		want bool
	}{
		{"current parameters", current, false},
		{"other memory", other(mod(func(p *Params) { p.Memory = 128 })), true},
		{"other time", other(mod(func(p *Params) { p.Time = 2 })), true},
		{"other threads", other(mod(func(p *Params) { p.Threads = 2 })), true},
		{"other salt length", other(mod(func(p *Params) { p.SaltLen = 32 })), true},
		{"other key length", other(mod(func(p *Params) { p.KeyLen = 16 })), true},
		{"bcrypt", string(bc), true},
		{"malformed", "garbage", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.NeedsRehash(tt.enc); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestVerifyRehash checks PW-03: a hash with weaker parameters verifies and asks for a
// rehash, and the rehashed value carries the current parameters.
func TestVerifyRehash(t *testing.T) {
	old := newTestHasher(t, fastParams)
	cur := newTestHasher(t, Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
	enc := mustHash(t, old, "correct horse battery staple")
	ok, rehash, err := cur.Verify(t.Context(), "correct horse battery staple", enc)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, _ = cur.Verify(t.Context(), "wrong horse battery staple", enc)
	if ok || rehash {
		t.Errorf("wrong password: Verify = %v, %v; want false, false", ok, rehash)
	}
	fresh := mustHash(t, cur, "correct horse battery staple")
	if cur.NeedsRehash(fresh) || !strings.HasPrefix(fresh, "$argon2id$v=19$m=128,t=2,p=1$") {
		t.Errorf("rehashed value %q does not carry the current parameters", fresh)
	}
}

func TestVerifyBcrypt(t *testing.T) {
	h := newTestHasher(t, fastParams)
	const pw = "correct horse battery staple"
	gen, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	enc := string(gen)
	// Other systems that hashed without normalising: the hash is of the decomposed form.
	decomposed := "cafe\u0301 horse battery staple"
	genRaw, err := bcrypt.GenerateFromPassword([]byte(decomposed), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pw, enc string
		want    bool
	}{
		{"2a right password", pw, enc, true},
		{"2b right password", pw, "$2b$" + enc[4:], true},
		{"2y right password", pw, "$2y$" + enc[4:], true},
		{"wrong password", "wrong horse battery staple", enc, false},
		{"tampered hash", pw, tamper(enc, 40), false},
		{"unnormalised import, same form", decomposed, string(genRaw), true},
		// Only the form the other system hashed matches; the next login stores NFKC.
		{"unnormalised import, composed form", "caf\u00e9 horse battery staple", string(genRaw), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(t.Context(), tt.pw, tt.enc)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.want || rehash != tt.want {
				t.Errorf("Verify = %v, %v; want %v, %v (bcrypt always rehashes)", ok, rehash, tt.want, tt.want)
			}
		})
	}
}

// TestVerifyNormalised checks PW-09: a password typed in another Unicode form matches.
func TestVerifyNormalised(t *testing.T) {
	h := newTestHasher(t, fastParams)
	tests := []struct {
		name        string
		set, typed  string
		wantMatched bool
	}{
		{"composed then decomposed", "caf\u00e9 au lait please", "cafe\u0301 au lait please", true},
		{"decomposed then composed", "cafe\u0301 au lait please", "caf\u00e9 au lait please", true},
		{"ligature fi", "\ufb01nancial report", "financial report", true},
		{"full-width letters", "ｐａｓｓｐｈｒａｓｅ ｏｎｅ", "passphrase one", true},
		{"different letters", "caf\u00e9 au lait please", "cafe au lait please", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := mustHash(t, h, tt.set)
			ok, _, err := h.Verify(t.Context(), tt.typed, enc)
			if err != nil || ok != tt.wantMatched {
				t.Errorf("Verify = %v, %v; want %v", ok, err, tt.wantMatched)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ascii unchanged", "Tr0ub4dor&3", "Tr0ub4dor&3"},
		{"ligature", "\ufb01", "fi"},
		{"full-width", "ＡＢＣ１２３", "ABC123"},
		{"decomposed e acute", "e\u0301", "\u00e9"},
		{"superscript two", "x\u00b2", "x2"},
		{"emoji unchanged", "🔑🔑", "🔑🔑"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestTooLong checks PW-06 and AV-02: a password over the cap is refused by every entry
// point at once, without any hashing.
func TestTooLong(t *testing.T) {
	h := newTestHasher(t, DefaultParams())
	enc := "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("A", 43)
	tests := []struct {
		name string
		pw   string
	}{
		{"one megabyte", strings.Repeat("a", 1<<20)},
		{"257 bytes", strings.Repeat("a", MaxBytes+1)},
		{"65 four-byte emoji", strings.Repeat("🔑", 65)},
		{"expands past the cap under NFKC", strings.Repeat("\ufdfa", 20)}, // 60 bytes → 660
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if _, err := h.Hash(t.Context(), tt.pw); !errors.Is(err, ErrTooLong) {
				t.Errorf("Hash err = %v, want ErrTooLong", err)
			}
			if _, _, err := h.Verify(t.Context(), tt.pw, enc); !errors.Is(err, ErrTooLong) {
				t.Errorf("Verify err = %v, want ErrTooLong", err)
			}
			if err := h.VerifyDummy(t.Context(), tt.pw); !errors.Is(err, ErrTooLong) {
				t.Errorf("VerifyDummy err = %v, want ErrTooLong", err)
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("refusing took %v", d)
			}
		})
	}
	if s := h.Stats(); s.Admitted != 0 {
		t.Errorf("%d hashes ran for over-long passwords, want 0", s.Admitted)
	}
	if _, err := h.Hash(t.Context(), strings.Repeat("🔑", 64)); err != nil {
		t.Errorf("64 four-byte emoji: Hash err = %v, want nil", err)
	}
}

// TestVerifyDummy checks TE-21's building block: the dummy runs one argon2id at the
// current parameters under the limiter, and never matches.
func TestVerifyDummy(t *testing.T) {
	var seen []Observation
	h := newTestHasher(t, fastParams, WithObserver(func(o Observation) { seen = append(seen, o) }))
	if err := h.VerifyDummy(t.Context(), "any password at all"); err != nil {
		t.Fatalf("VerifyDummy: %v", err)
	}
	if len(seen) != 1 || seen[0].Outcome != OutcomeAdmitted {
		t.Errorf("observations %+v, want one admitted", seen)
	}
	if got := h.dummy.params(); got != fastParams {
		t.Errorf("dummy params %+v, want %+v", got, fastParams)
	}
	ok, _, err := h.Verify(t.Context(), "any password at all", h.dummy.encode())
	if ok || err != nil {
		t.Errorf("the dummy hash matched or failed: %v, %v", ok, err)
	}
}

func TestNewHasher(t *testing.T) {
	mod := func(f func(*Params)) Params { p := DefaultParams(); f(&p); return p }
	tests := []struct {
		name    string
		p       Params
		opts    []Option
		wantErr bool
	}{
		{"defaults", DefaultParams(), nil, false},
		{"zero params", Params{}, nil, true},
		{"salt 8 bytes", mod(func(p *Params) { p.SaltLen = 8 }), nil, true},
		{"key 8 bytes", mod(func(p *Params) { p.KeyLen = 8 }), nil, true},
		{"memory 2 GiB", mod(func(p *Params) { p.Memory = 2 << 20 }), nil, true},
		{"time 0", mod(func(p *Params) { p.Time = 0 }), nil, true},
		{"threads 0", mod(func(p *Params) { p.Threads = 0 }), nil, true},
		{"budget below one hash", DefaultParams(), []Option{WithMemoryBudget(16 << 20)}, true},
		{"max concurrent 0", DefaultParams(), []Option{WithMaxConcurrent(0)}, true},
		{"max queue negative", DefaultParams(), []Option{WithMaxQueue(-1)}, true},
		{"max queue 0", DefaultParams(), []Option{WithMaxQueue(0)}, false},
		{"max wait 0", DefaultParams(), []Option{WithMaxWait(0)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHasher(tt.p, tt.opts...)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewHasher err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// tamper changes the character at i to another of the base64 alphabet.
func tamper(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}
