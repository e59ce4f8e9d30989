package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformedHash reports a stored hash that cannot be parsed or whose parameters are
// out of bounds. Messages that wrap it say what is wrong, never the hash itself.
var ErrMalformedHash = errors.New("malformed password hash")

// ErrUnsupportedHash reports a well-formed hash this package will not verify: another
// scheme (argon2i, scrypt, …) or an argon2id hash needing more memory than the budget.
var ErrUnsupportedHash = errors.New("unsupported password hash")

// Bounds on what a stored hash may ask for, so a hostile or corrupt row cannot make a
// verification allocate gigabytes or run for minutes.
const (
	maxEncodedLen  = 512     // longer strings are rejected before any parsing
	maxMemoryKiB   = 1 << 20 // 1 GiB
	maxTime        = 16
	maxThreads     = 16
	minSaltLen     = 8 // RFC 9106 §3.1; new hashes use at least 16
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
	minBcryptCost  = 4
	maxBcryptCost  = 16 // cost 16 is about 5 s per check; anything above is hostile
	bcryptLen      = 60
	keyIDLen       = 6 // bytes of a pepper keyid; 8 base64 characters
	argon2idPrefix = "$argon2id$"
)

// b64 is the PHC string format's base64: standard alphabet, no padding, and strict so
// a tampered trailing character cannot decode to the same bytes.
var b64 = base64.RawStdEncoding.Strict()

// scheme tells which algorithm a stored hash uses.
type scheme int

const (
	schemeArgon2id scheme = iota + 1
	schemeBcrypt
	schemeImported // a format of another system (imported.go)
)

// phc is a parsed argon2id hash.
type phc struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	keyid   []byte // the pepper's keyid (PW-04); nil for an unpeppered hash
	salt    []byte
	key     []byte
}

// params reports the parameters the hash was made with.
func (h phc) params() Params {
	return Params{Memory: h.memory, Time: h.time, Threads: h.threads,
		SaltLen: uint32(len(h.salt)), KeyLen: uint32(len(h.key))}
}

// encode renders h as `$argon2id$v=19$m=…,t=…,p=…$salt$key`, or with a pepper as
// `$argon2id$v=19$m=…,t=…,p=…,keyid=…$salt$key` (keyid is the PHC string format's
// optional Argon2 parameter naming a secret key, after m, t, p).
func (h phc) encode() string {
	keyid := ""
	if h.keyid != nil {
		keyid = ",keyid=" + b64.EncodeToString(h.keyid)
	}
	return fmt.Sprintf("%sv=19$m=%d,t=%d,p=%d%s$%s$%s", argon2idPrefix,
		h.memory, h.time, h.threads, keyid, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// classify tells which scheme encoded claims to be, without parsing it fully.
func classify(encoded string) (scheme, error) {
	switch {
	case len(encoded) > maxEncodedLen:
		return 0, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHash, maxEncodedLen)
	case strings.HasPrefix(encoded, argon2idPrefix):
		return schemeArgon2id, nil
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"),
		strings.HasPrefix(encoded, "$2y$"):
		return schemeBcrypt, nil
	case isImported(encoded):
		return schemeImported, nil
	case strings.HasPrefix(encoded, "$argon2d$"),
		strings.HasPrefix(encoded, "$scrypt$"), strings.HasPrefix(encoded, "$2$"),
		strings.HasPrefix(encoded, "$2x$"), strings.HasPrefix(encoded, "$pbkdf2"):
		return 0, fmt.Errorf("%w: scheme not supported", ErrUnsupportedHash)
	default:
		return 0, fmt.Errorf("%w: unknown scheme", ErrMalformedHash)
	}
}

// parsePHC parses an argon2id hash in the PHC string format, strictly: version 19 only,
// parameters m, t, p in that order, canonical decimals, and bounds on every value; then
// optionally keyid=, exactly keyIDLen bytes in base64, marking a peppered hash (PW-04).
// No other parameter (data=, a second keyid, an empty one) is accepted.
func parsePHC(encoded string) (phc, error) {
	bad := func(what string) (phc, error) {
		return phc{}, fmt.Errorf("%w: %s", ErrMalformedHash, what)
	}
	if len(encoded) > maxEncodedLen {
		return bad("too long")
	}
	if strings.ContainsAny(encoded, "\r\n") {
		return bad("has a line break") // encoding/base64 skips them, even when strict
	}
	rest, ok := strings.CutPrefix(encoded, argon2idPrefix)
	if !ok {
		return bad("not argon2id")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 4 {
		return bad("want version, parameters, salt and hash")
	}
	if fields[0] != "v=19" {
		return bad("version is not 19")
	}
	kv := strings.Split(fields[1], ",")
	var keyid []byte
	if len(kv) == 4 {
		enc, ok := strings.CutPrefix(kv[3], "keyid=")
		if !ok {
			return bad("fourth parameter is not keyid")
		}
		id, err := b64.DecodeString(enc)
		if err != nil || len(id) != keyIDLen {
			return bad("keyid is not base64 of a valid length")
		}
		keyid = id
		kv = kv[:3]
	}
	if len(kv) != 3 {
		return bad("want parameters m, t and p")
	}
	var vals [3]uint64
	for i, name := range [3]string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return bad("parameters not m, t, p in order")
		}
		v, err := parseDecimal(digits)
		if err != nil {
			return bad("parameter " + name[:1] + " is not a decimal")
		}
		vals[i] = v
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case p < 1 || p > maxThreads:
		return bad("parallelism out of range")
	case t < 1 || t > maxTime:
		return bad("time out of range")
	case m < 8*p || m > maxMemoryKiB:
		return bad("memory out of range")
	}
	salt, err := b64.DecodeString(fields[2])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("salt is not base64 of a valid length")
	}
	key, err := b64.DecodeString(fields[3])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("hash is not base64 of a valid length")
	}
	return phc{memory: uint32(m), time: uint32(t), threads: uint8(p), keyid: keyid, salt: salt, key: key}, nil
}

// parseDecimal accepts 1 to 10 ASCII digits with no sign and no leading zero.
func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a canonical decimal")
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// checkBcrypt validates the shape of a bcrypt hash ($2a$, $2b$, $2y$) and returns its
// cost, so that a hostile cost never reaches the bcrypt package.
func checkBcrypt(encoded string) (int, error) {
	bad := func(what string) (int, error) {
		return 0, fmt.Errorf("%w: bcrypt %s", ErrMalformedHash, what)
	}
	if len(encoded) != bcryptLen {
		return bad("hash is not 60 characters")
	}
	if encoded[6] != '$' {
		return bad("cost is not two digits")
	}
	cost, err := parseDecimal(strings.TrimPrefix(encoded[4:6], "0"))
	if err != nil || encoded[4] < '0' || encoded[4] > '9' {
		return bad("cost is not two digits")
	}
	if cost < minBcryptCost || cost > maxBcryptCost {
		return bad("cost out of range")
	}
	for i := 7; i < len(encoded); i++ {
		c := encoded[i]
		if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return bad("salt or hash has a character outside its alphabet")
		}
	}
	return int(cost), nil
}
