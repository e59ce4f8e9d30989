package password

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Imported hash formats: what other systems store, accepted so that users moved to
// Keyward keep their passwords. Each is checked in constant time against the password
// as received (the systems that made them do not normalise), and replaced by an
// argon2id hash at the first successful login (Verify returns rehash). Every parameter
// is bounded when the hash is parsed, so a hostile row cannot make a login allocate
// gigabytes or run for minutes, and the cost of each is measured against the Ceiling
// (CheckStored refuses at import what Verify would refuse at login).
//
//   - Werkzeug pbkdf2: pbkdf2:sha256:600000$salt$hex (sha1, sha256, sha512; the
//     iteration count is required: without it its meaning depends on Werkzeug's version)
//   - Werkzeug scrypt: scrypt:32768:8:1$salt$hex (64-byte key)
//   - Django: pbkdf2_sha256$iterations$salt$base64, pbkdf2_sha1$…, argon2$argon2id$… and
//     argon2$argon2i$…, bcrypt_sha256$$2b$…, bcrypt$$2b$…
//   - argon2i PHC strings ($argon2i$v=19$…); argon2id at other parameters goes through
//     the native path.

// Bounds on imported hashes, beyond those of argon2 and bcrypt.
const (
	minPBKDF2Iter = 1000
	maxPBKDF2Iter = 10_000_000
	maxScryptN    = 1 << 20
	maxScryptR    = 32
	maxScryptP    = 16
	maxImpSaltLen = 128
)

// importedKind names an imported format.
type importedKind int

const (
	kindPBKDF2 importedKind = iota + 1 // Werkzeug or Django PBKDF2-HMAC
	kindScrypt                         // Werkzeug scrypt
	kindArgon2                         // argon2i or argon2id from Django or a PHC string
	kindBcrypt                         // Django bcrypt$ or bcrypt_sha256$
)

// imported is a parsed imported hash.
type imported struct {
	kind    importedKind
	name    string // the format, for errors: never the hash itself
	hashID  int    // index into pbkdf2Funcs
	iter    int    // PBKDF2 iterations
	n, r, p int    // scrypt
	argon   phc    // argon2
	argonI  bool   // argon2i rather than argon2id
	bcrypt  string // the bcrypt hash inside Django's
	sha256  bool   // bcrypt_sha256: bcrypt of hex(sha256(password))
	salt    []byte
	key     []byte
}

var pbkdf2Funcs = []struct {
	name string
	new  func() hash.Hash
}{{"sha1", sha1.New}, {"sha256", sha256.New}, {"sha512", sha512.New}}

func pbkdf2Func(name string) (int, bool) {
	for i, f := range pbkdf2Funcs {
		if f.name == name {
			return i, true
		}
	}
	return 0, false
}

// isImported reports whether encoded claims one of the imported formats.
func isImported(encoded string) bool {
	for _, p := range []string{"pbkdf2:", "scrypt:", "pbkdf2_sha256$", "pbkdf2_sha1$",
		"argon2$", "bcrypt_sha256$", "bcrypt$", "$argon2i$"} {
		if strings.HasPrefix(encoded, p) {
			return true
		}
	}
	return false
}

// parseImported parses an imported hash, bounding every parameter. Errors wrap
// ErrMalformedHash and name the format and what is wrong, never the hash.
func parseImported(encoded string) (imported, error) {
	bad := func(format, what string) (imported, error) {
		return imported{}, fmt.Errorf("%w: %s: %s", ErrMalformedHash, format, what)
	}
	if len(encoded) > maxEncodedLen {
		return bad("imported hash", "too long")
	}
	if strings.ContainsAny(encoded, "\r\n\x00") {
		return bad("imported hash", "has a control character")
	}
	switch {
	case strings.HasPrefix(encoded, "pbkdf2:"), strings.HasPrefix(encoded, "scrypt:"):
		return parseWerkzeug(encoded)
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"), strings.HasPrefix(encoded, "pbkdf2_sha1$"):
		const format = "Django pbkdf2"
		f := strings.Split(encoded, "$")
		if len(f) != 4 {
			return bad(format, "want algorithm$iterations$salt$hash")
		}
		id, _ := pbkdf2Func(strings.TrimPrefix(f[0], "pbkdf2_"))
		iter, err := boundedInt(f[1], minPBKDF2Iter, maxPBKDF2Iter)
		if err != nil {
			return bad(format, "iterations "+err.Error())
		}
		if f[2] == "" || len(f[2]) > maxImpSaltLen || strings.Contains(f[2], "$") {
			return bad(format, "salt empty or too long")
		}
		key, err := base64.StdEncoding.Strict().DecodeString(f[3])
		if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
			return bad(format, "hash is not base64 of a valid length")
		}
		return imported{kind: kindPBKDF2, name: format, hashID: id, iter: iter, salt: []byte(f[2]), key: key}, nil
	case strings.HasPrefix(encoded, "argon2$"):
		return parseArgon2Import("Django argon2", strings.TrimPrefix(encoded, "argon2"))
	case strings.HasPrefix(encoded, "$argon2i$"):
		return parseArgon2Import("argon2i", encoded)
	case strings.HasPrefix(encoded, "bcrypt_sha256$"), strings.HasPrefix(encoded, "bcrypt$"):
		format, inner, _ := strings.Cut(encoded, "$")
		if _, err := checkBcrypt(inner); err != nil {
			return bad("Django "+format, "inner bcrypt hash is malformed")
		}
		return imported{kind: kindBcrypt, name: "Django " + format, bcrypt: inner, sha256: format == "bcrypt_sha256"}, nil
	}
	return bad("imported hash", "unknown format")
}

// parseWerkzeug parses Werkzeug's method$salt$hex.
func parseWerkzeug(encoded string) (imported, error) {
	method, rest, _ := strings.Cut(encoded, "$")
	salt, hexKey, ok := strings.Cut(rest, "$")
	args := strings.Split(method, ":")
	format := "Werkzeug " + args[0]
	bad := func(what string) (imported, error) {
		return imported{}, fmt.Errorf("%w: %s: %s", ErrMalformedHash, format, what)
	}
	if !ok || strings.Contains(hexKey, "$") {
		return bad("want method$salt$hash")
	}
	if salt == "" || len(salt) > maxImpSaltLen {
		return bad("salt empty or too long")
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil || hexKey != strings.ToLower(hexKey) {
		return bad("hash is not lower-case hex")
	}
	if args[0] == "pbkdf2" {
		if len(args) != 3 {
			return bad("want pbkdf2:hash:iterations (the iteration count is required)")
		}
		id, ok := pbkdf2Func(args[1])
		if !ok {
			return bad("hash function is not sha1, sha256 or sha512")
		}
		iter, err := boundedInt(args[2], minPBKDF2Iter, maxPBKDF2Iter)
		if err != nil {
			return bad("iterations " + err.Error())
		}
		if len(key) != pbkdf2Funcs[id].new().Size() {
			return bad("hash length does not match the hash function")
		}
		return imported{kind: kindPBKDF2, name: format, hashID: id, iter: iter, salt: []byte(salt), key: key}, nil
	}
	if len(args) != 4 {
		return bad("want scrypt:n:r:p")
	}
	n, errN := boundedInt(args[1], 2, maxScryptN)
	r, errR := boundedInt(args[2], 1, maxScryptR)
	p, errP := boundedInt(args[3], 1, maxScryptP)
	switch {
	case errN != nil || n&(n-1) != 0:
		return bad("n is not a power of two up to 2^20")
	case errR != nil:
		return bad("r " + errR.Error())
	case errP != nil:
		return bad("p " + errP.Error())
	case uint64(n)*uint64(r)/8 > maxMemoryKiB: // 128·n·r bytes
		return bad("needs more than 1 GiB")
	case len(key) != 64:
		return bad("hash is not 64 bytes")
	}
	return imported{kind: kindScrypt, name: format, n: n, r: r, p: p, salt: []byte(salt), key: key}, nil
}

// parseArgon2Import parses an argon2i or argon2id PHC string (Django's without its
// argon2 prefix) under the bounds of parsePHC, without a pepper keyid.
func parseArgon2Import(format, s string) (imported, error) {
	isI := strings.HasPrefix(s, "$argon2i$")
	if isI {
		s = argon2idPrefix + strings.TrimPrefix(s, "$argon2i$")
	}
	parsed, err := parsePHC(s)
	if err != nil {
		return imported{}, fmt.Errorf("%s: %w", format, err)
	}
	if parsed.keyid != nil {
		return imported{}, fmt.Errorf("%w: %s: has a keyid", ErrMalformedHash, format)
	}
	return imported{kind: kindArgon2, name: format, argon: parsed, argonI: isI}, nil
}

// boundedInt parses a canonical decimal in lo..hi.
func boundedInt(s string, lo, hi int) (int, error) {
	v, err := parseDecimal(s)
	if err != nil {
		return 0, err
	}
	if v < uint64(lo) || v > uint64(hi) {
		return 0, fmt.Errorf("%d not in %d..%d", v, lo, hi)
	}
	return int(v), nil
}

// memoryKiB is what a check of h holds, for the limiter.
func (h imported) memoryKiB() uint64 {
	switch h.kind {
	case kindScrypt:
		return max(uint64(h.n)*uint64(h.r)/8, 1)
	case kindArgon2:
		return uint64(h.argon.memory)
	}
	return bcryptWeight
}

// costUnits estimates a check of h in units of one KiB·pass of argon2id, with the
// ratios measured once per process (importRatios).
func (h imported) costUnits(bcryptRatio float64) float64 {
	r := importRatios()
	switch h.kind {
	case kindPBKDF2:
		return float64(h.iter) * r.pbkdf2[h.hashID]
	case kindScrypt:
		return float64(h.n) * float64(h.r) * float64(h.p) * r.scrypt
	case kindArgon2:
		return float64(h.argon.memory) * float64(h.argon.time)
	}
	cost, _ := checkBcrypt(h.bcrypt)
	return bcryptRatio * float64(uint64(1)<<cost)
}

// check computes h's key for pw and compares it in constant time.
func (h imported) check(pw string) (bool, error) {
	switch h.kind {
	case kindPBKDF2:
		got, err := pbkdf2.Key(pbkdf2Funcs[h.hashID].new, pw, h.salt, h.iter, len(h.key))
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got, h.key) == 1, nil
	case kindScrypt:
		got, err := scrypt.Key([]byte(pw), h.salt, h.n, h.r, h.p, len(h.key))
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got, h.key) == 1, nil
	case kindArgon2:
		a := h.argon
		var got []byte
		if h.argonI {
			got = argon2.Key([]byte(pw), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		} else {
			got = argon2.IDKey([]byte(pw), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		}
		return subtle.ConstantTimeCompare(got, a.key) == 1, nil
	}
	in := []byte(pw)
	if h.sha256 {
		sum := sha256.Sum256(in)
		in = []byte(hex.EncodeToString(sum[:]))
	}
	err := bcrypt.CompareHashAndPassword([]byte(h.bcrypt), in) // constant-time compare inside
	if err != nil && err != bcrypt.ErrMismatchedHashAndPassword {
		return false, err
	}
	return err == nil, nil
}

// ratios are the costs of imported algorithms in units of one KiB·pass of argon2id.
type ratios struct {
	pbkdf2 [3]float64 // per iteration, per hash function of pbkdf2Funcs
	scrypt float64    // per n·r·p
}

// importRatios measures, once per process, what one PBKDF2 iteration of each hash
// function and one n·r·p of scrypt cost against argon2id: properties of the processor,
// not of its load, so a ceiling in argon2id terms bounds them (about half a second,
// the first time an imported hash is checked).
var importRatios = sync.OnceValue(func() ratios {
	salt := []byte("keyward calibration salt")
	// Runs of tens of milliseconds at the sizes real checks have: argon2id
	// at the default ceiling's memory (its time per KiB grows with the
	// memory, as caches stop holding it, so a smaller run would make the
	// ceiling look cheaper than it is), scrypt at 16 MiB; interleaved, the
	// fastest of two kept. A busy machine slows runs this long alike,
	// where a short run could slip between other processes' time slices
	// and a long one could not, and the ratios moved with load.
	const m, iter, n, r, rounds = 64 << 10, 50000, 16 << 10, 8, 2
	work := []func(){func() { argon2.IDKey([]byte("x"), salt, 1, m, 1, 32) },
		func() { _, _ = scrypt.Key([]byte("x"), salt, n, r, 1, 64) }}
	for _, f := range pbkdf2Funcs {
		work = append(work, func() { _, _ = pbkdf2.Key(f.new, "x", salt, iter, 32) })
	}
	best := make([]time.Duration, len(work))
	for i := range best {
		best[i] = time.Duration(math.MaxInt64)
	}
	for range rounds {
		for i, f := range work {
			start := time.Now()
			f()
			best[i] = max(min(best[i], time.Since(start)), 1)
		}
	}
	unit := float64(best[0]) / m
	out := ratios{scrypt: float64(best[1]) / (n * r) / unit}
	for i := range pbkdf2Funcs {
		out.pbkdf2[i] = float64(best[2+i]) / iter / unit
	}
	return out
})

// CheckStored reports whether Verify can check encoded, a hash to be stored (an import):
// nil for a well-formed argon2id, bcrypt or imported hash within the bounds, the memory
// budget and the Ceiling; otherwise an error wrapping ErrMalformedHash or
// ErrUnsupportedHash that says why, without the hash. It hashes nothing.
func (h *Hasher) CheckStored(encoded string) error {
	s, err := classify(encoded)
	if err != nil {
		return err
	}
	switch s {
	case schemeBcrypt:
		cost, err := checkBcrypt(encoded)
		if err != nil {
			return err
		}
		if cost > h.ceiling.BcryptCost {
			return fmt.Errorf("%w: bcrypt cost %d is above the ceiling of %d", ErrUnsupportedHash, cost, h.ceiling.BcryptCost)
		}
		return nil
	case schemeImported:
		_, err := h.importedWithin(encoded, 1)
		return err
	}
	parsed, err := parsePHC(encoded)
	if err != nil {
		return err
	}
	if parsed.keyid != nil && !bytes.Equal(parsed.keyid, h.keyid) {
		return fmt.Errorf("%w: argon2id hash has a pepper keyid this server does not hold", ErrWrongPepper)
	}
	return h.within(imported{kind: kindArgon2, name: "argon2id", argon: parsed}, 1)
}

// Scheme names the format of encoded (argon2id, bcrypt, Werkzeug pbkdf2, Django argon2,
// …) for reports, or "unknown"; it never returns any part of the hash.
func Scheme(encoded string) string {
	s, err := classify(encoded)
	switch {
	case err != nil:
		return "unknown"
	case s == schemeArgon2id:
		return "argon2id"
	case s == schemeBcrypt:
		return "bcrypt"
	}
	parsed, err := parseImported(encoded)
	if err != nil {
		return "unknown"
	}
	return parsed.name
}

// loginTolerance is how far above the ceiling Verify still checks an imported PBKDF2
// or scrypt hash. Their cost is an estimate from ratios measured in each process (the
// importing CLI's and the server's), which vary by some tens of per cent with the
// machine's load; a hash CheckStored accepted must not lock its user out because the
// server measured differently. A check at twice the ceiling lasts about 1.3 times the
// floor (the floor has a margin of 1.5).
const loginTolerance = 2

// importedWithin parses encoded and checks it against the budget and tolerance times
// the ceiling.
func (h *Hasher) importedWithin(encoded string, tolerance float64) (imported, error) {
	parsed, err := parseImported(encoded)
	if err != nil {
		return imported{}, err
	}
	return parsed, h.within(parsed, tolerance)
}

// within refuses a hash whose check would need more memory than the budget or take
// longer than a check at the ceiling (for PBKDF2 and scrypt, tolerance times it), and
// so longer than the floor on failures.
func (h *Hasher) within(parsed imported, tolerance float64) error {
	if parsed.kind == kindBcrypt {
		cost, _ := checkBcrypt(parsed.bcrypt)
		if cost > h.ceiling.BcryptCost {
			return fmt.Errorf("%w: %s: bcrypt cost %d is above the ceiling of %d",
				ErrUnsupportedHash, parsed.name, cost, h.ceiling.BcryptCost)
		}
		return nil
	}
	if m := parsed.memoryKiB(); m > h.lim.budget {
		return fmt.Errorf("%w: %s: needs %d KiB, the memory budget is %d KiB", ErrUnsupportedHash, parsed.name, m, h.lim.budget)
	}
	if parsed.kind == kindArgon2 {
		if cost := uint64(parsed.argon.memory) * uint64(parsed.argon.time); float64(cost) > h.pace.argonCost {
			return fmt.Errorf("%w: %s: m·t is %d KiB·passes, above the ceiling of %.0f",
				ErrUnsupportedHash, parsed.name, cost, h.pace.argonCost)
		}
		return nil
	}
	if cost, ceil := parsed.costUnits(0), h.pace.ceilingUnits(); cost > tolerance*ceil {
		return fmt.Errorf("%w: %s: costs about %.1f times a check at the ceiling (%s); raise the ceiling or lower the parameters",
			ErrUnsupportedHash, parsed.name, cost/ceil, h.ceiling)
	}
	return nil
}

// verifyImported checks pw, as received, against an imported hash. spent is the time
// spent hashing, 0 when the hash was refused before any.
func (h *Hasher) verifyImported(ctx context.Context, pw, encoded string) (ok bool, spent time.Duration, err error) {
	parsed, err := h.importedWithin(encoded, loginTolerance)
	if err != nil {
		return false, 0, unusable(err)
	}
	release, err := h.lim.acquire(ctx, parsed.memoryKiB())
	if err != nil {
		return false, 0, err
	}
	defer release()
	start := h.pace.now()
	ok, err = parsed.check(pw)
	spent = max(h.pace.now().Sub(start), 1)
	if err != nil {
		return false, spent, unusable(fmt.Errorf("%w: %s: %v", ErrMalformedHash, parsed.name, err))
	}
	return ok, spent, nil
}
