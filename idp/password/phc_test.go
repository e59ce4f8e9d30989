package password

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParsePHC feeds arbitrary strings to the stored-hash parsers. None may panic; what
// parsePHC accepts must be within bounds and encode back to the same string, so there is
// one spelling of each hash.
func FuzzParsePHC(f *testing.F) {
	for _, s := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAA$AAAA",
		"$argon2id$v=19$m=64,t=1,p=1,keyid=x$AA$AA",
		"$argon2id$v=19$m=64,t=1,p=1,keyid=AAECAwQF$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1,keyid=AAECAwQF,data=AA$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$$$",
		"$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA",
		"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2y$99$" + strings.Repeat(".", 53),
		"", "$", "$$$$$$", "$argon2id$",
	} {
		f.Add(s)
	}
	h := newTestHasher(f, fastParams)
	f.Fuzz(func(t *testing.T, s string) {
		_ = h.NeedsRehash(s)
		scheme, err := classify(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrUnsupportedHash) {
				t.Fatalf("classify error %v wraps neither sentinel", err)
			}
			return
		}
		if scheme == schemeBcrypt {
			if cost, err := checkBcrypt(s); err == nil && (cost < minBcryptCost || cost > maxBcryptCost) {
				t.Fatalf("checkBcrypt accepted cost %d", cost)
			}
			return
		}
		p, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("parsePHC error %v does not wrap ErrMalformedHash", err)
			}
			return
		}
		if p.memory > maxMemoryKiB || p.time > maxTime || p.threads > maxThreads || p.threads == 0 ||
			len(p.salt) > maxSaltLen || len(p.key) > maxKeyLen {
			t.Fatalf("parsePHC accepted out-of-bounds %+v", p.params())
		}
		if got := p.encode(); got != s {
			t.Fatalf("encode(parse(%q)) = %q", s, got)
		}
	})
}
