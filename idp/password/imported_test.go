package password

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// importPassword has a non-ASCII letter and a ligature, which NFKC changes: imported
// hashes are checked against the password as received, as the systems that made them
// did not normalise.
const importPassword = "lètmein ﬁx"

// passlibVectors were made once with Debian's python3-passlib 1.7.4 (its django_*
// handlers produce Django's formats, argon2 and bcrypt PHC strings) for "lètmein".
var passlibVectors = []struct{ name, enc string }{
	{"Django pbkdf2_sha256", "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY="},
	{"Django pbkdf2_sha1", "pbkdf2_sha1$10000$seasalt$oAfF6vgs95ncksAhGXOWf4Okq7o="},
	{"Django argon2id", "argon2$argon2id$v=19$m=1024,t=2,p=2$DQEAwHiPcW4t5Vzr/f+/Nw$/CgnjfJkZg0LynbqG63LrV27UxjXlEjEKeVpYlClOhA"},
	{"Django argon2i", "argon2$argon2i$v=19$m=1024,t=2,p=2$XotRytnbG4OwlrL2XkupdQ$5qc9tn7XnFXoTMmklWwNqQ"},
	{"Django bcrypt_sha256", "bcrypt_sha256$$2b$05$VZR9cyAMgEHZbNnTLeoxxeztj8PjSkE6gB4PS4ih1yfG4zeFYnzGq"},
	{"Django bcrypt", "bcrypt$$2b$05$AHNazK.WNcwIKMnz3NP7jOqypdomYSgP02aCz/upOZAXud5WpgdGW"},
	{"argon2i PHC", "$argon2i$v=19$m=512,t=2,p=2$8p5TqjVG6J0zhlAKoXROKQ$bAM2Sf2P4ehTGBmCADRt+w"},
	{"bcrypt 2y", "$2y$05$/Vle2KhvgfAMNuspT6BNUO9agXChklgGH1qtlNSw4hNxqLejCfVmG"},
}

// werkzeugScript prints, one a line, hashes of the password in argv[1] made by Debian's
// Werkzeug: its default pbkdf2 (sha256, 260,000 iterations in 2.2), pbkdf2 with sha512
// and sha1, and scrypt. Werkzeug 2.2 has no scrypt (2.3 added it, 3.0 made it the
// default): when it cannot, the script computes scrypt exactly as Werkzeug 3 does
// (hashlib.scrypt of the UTF-8 password and salt, 64 bytes, hex), at a smaller n.
const werkzeugScript = `
import sys, hashlib
from werkzeug.security import generate_password_hash as g
pw = sys.argv[1]
print(g(pw))
print(g(pw, method="pbkdf2:sha512:20000"))
print(g(pw, method="pbkdf2:sha1:5000"))
try:
    print(g(pw, method="scrypt:16384:8:1"))
except Exception:
    salt = "Zq3yW0pLx8TfHs2K"
    key = hashlib.scrypt(pw.encode(), salt=salt.encode(), n=16384, r=8, p=1, maxmem=132*16384*8, dklen=64)
    print("scrypt:16384:8:1$" + salt + "$" + key.hex())
`

// pythonFor returns a Python interpreter that imports every module, trying python3 on
// the PATH and then Debian's /usr/bin/python3. It skips the test when there is none,
// and fails it when KEYWARD_PYTHON_REQUIRED=1.
func pythonFor(t *testing.T, modules ...string) string {
	t.Helper()
	check := "import " + strings.Join(modules, ", ")
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", check).Run() == nil {
			return py
		}
	}
	msg := "no python3 with " + strings.Join(modules, ", ") + " (Debian: apt-get install python3-werkzeug)"
	if os.Getenv("KEYWARD_PYTHON_REQUIRED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestImportedWerkzeug checks hashes made by the real Werkzeug: the right password
// matches and asks for a rehash, which gives argon2id; a wrong one does not match.
func TestImportedWerkzeug(t *testing.T) {
	py := pythonFor(t, "werkzeug")
	out, err := exec.Command(py, "-c", werkzeugScript, importPassword).Output()
	if err != nil {
		t.Fatalf("werkzeug: %v", err)
	}
	hashes := strings.Fields(string(out))
	if len(hashes) != 4 {
		t.Fatalf("werkzeug printed %d hashes, want 4", len(hashes))
	}
	// The default ceiling: Werkzeug's default hashes (and Werkzeug 3.1's and Django 5.2's
	// 1,000,000 iterations) fit it.
	h, slept := pacedNoWait(t, DefaultCeiling())
	if err := h.CheckStored("pbkdf2_sha256$1000000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY="); err != nil && !raceEnabled {
		t.Errorf("1,000,000 PBKDF2-SHA256 iterations refused at the default ceiling: %v", err)
	}
	for _, enc := range hashes {
		checkImported(t, h, slept, Scheme(enc), enc, importPassword)
	}
}

// pacedNoWait is a Hasher at ceiling c whose failed checks do not sleep out the floor
// but add the time they would have slept to slept, so tests check the floor without
// waiting for it.
func pacedNoWait(t *testing.T, c Ceiling) (*Hasher, *atomic.Int64) {
	slept := new(atomic.Int64)
	h := newTestHasher(t, fastParams, WithCeiling(c), withClock(time.Now, func(_ context.Context, d time.Duration) {
		slept.Add(int64(d))
	}))
	return h, slept
}

// TestImportedVectors checks the fixed Django, argon2i and bcrypt vectors.
func TestImportedVectors(t *testing.T) {
	h, slept := pacedNoWait(t, Ceiling{Memory: 16384, Time: 2, BcryptCost: 6})
	for _, v := range passlibVectors {
		checkImported(t, h, slept, v.name, v.enc, "lètmein")
	}
}

// checkImported checks that pw matches enc and asks for a rehash, and that a wrong
// password, and pw in NFKC when that differs (the hash is of the password as typed),
// fail after the floor.
func checkImported(t *testing.T, h *Hasher, slept *atomic.Int64, name, enc, pw string) {
	t.Helper()
	if err := h.CheckStored(enc); err != nil {
		t.Errorf("%s: CheckStored: %v", name, err)
		return
	}
	if !h.NeedsRehash(enc) {
		t.Errorf("%s: NeedsRehash = false", name)
	}
	ok, rehash, err := h.Verify(t.Context(), pw, enc)
	if !ok || !rehash || err != nil {
		t.Errorf("%s: Verify(right password) = %v, %v, %v; want true, true, nil", name, ok, rehash, err)
	}
	for _, wrong := range []string{pw + "x", Normalize(pw)} {
		if wrong == pw {
			continue
		}
		floor := h.Floor()
		start := time.Now()
		slept.Store(0)
		ok, rehash, err = h.Verify(t.Context(), wrong, enc)
		if ok || rehash || err != nil {
			t.Errorf("%s: Verify(wrong password) = %v, %v, %v; want false, false, nil", name, ok, rehash, err)
		}
		if d := time.Since(start) + time.Duration(slept.Load()); d < floor {
			t.Errorf("%s: a failure took %v, less than the floor %v", name, d, floor)
		}
	}
	fresh, err := h.Hash(t.Context(), pw)
	if err != nil || h.NeedsRehash(fresh) || Scheme(fresh) != "argon2id" {
		t.Fatalf("%s: the rehash is %s, err %v", name, Scheme(fresh), err)
	}
}

// TestImportedRefused checks that malformed and over-cost hashes are refused by
// CheckStored (at import) with an error that does not contain the hash, and fail at
// login after the floor.
func TestImportedRefused(t *testing.T) {
	h := newTestHasher(t, fastParams, WithCeiling(fastCeiling))
	hex32 := strings.Repeat("ab", 32)
	tests := []struct {
		name, enc string
		want      error
	}{
		{"werkzeug no iterations", "pbkdf2:sha256$saltsalt$" + hex32, ErrMalformedHash},
		{"werkzeug md5", "pbkdf2:md5:1000$saltsalt$" + strings.Repeat("ab", 16), ErrMalformedHash},
		{"werkzeug iterations absurd", "pbkdf2:sha256:99999999$saltsalt$" + hex32, ErrMalformedHash},
		{"werkzeug iterations over ceiling", "pbkdf2:sha256:9000000$saltsalt$" + hex32, ErrUnsupportedHash},
		{"werkzeug short key", "pbkdf2:sha256:1000$saltsalt$abcd", ErrMalformedHash},
		{"werkzeug upper hex", "pbkdf2:sha256:1000$saltsalt$" + strings.ToUpper(hex32), ErrMalformedHash},
		{"werkzeug empty salt", "pbkdf2:sha256:1000$$" + hex32, ErrMalformedHash},
		{"scrypt n not power of two", "scrypt:1000:8:1$saltsalt$" + hex32 + hex32, ErrMalformedHash},
		{"scrypt n absurd", "scrypt:4194304:8:1$saltsalt$" + hex32 + hex32, ErrMalformedHash},
		{"scrypt over budget", "scrypt:1048576:8:1$saltsalt$" + hex32 + hex32, ErrUnsupportedHash},
		{"scrypt p over ceiling", "scrypt:65536:8:16$saltsalt$" + hex32 + hex32, ErrUnsupportedHash},
		{"django iterations absurd", "pbkdf2_sha256$100000000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=", ErrMalformedHash},
		{"django bad base64", "pbkdf2_sha256$10000$seasalt$!!!!", ErrMalformedHash},
		{"django argon2 memory", "argon2$argon2id$v=19$m=1048576,t=2,p=2$DQEAwHiPcW4t5Vzr/f+/Nw$/CgnjfJkZg0LynbqG63LrV27UxjXlEjEKeVpYlClOhA", ErrUnsupportedHash},
		{"django argon2 time", "argon2$argon2id$v=19$m=65536,t=16,p=2$DQEAwHiPcW4t5Vzr/f+/Nw$/CgnjfJkZg0LynbqG63LrV27UxjXlEjEKeVpYlClOhA", ErrUnsupportedHash},
		{"django bcrypt cost", "bcrypt_sha256$$2b$14$VZR9cyAMgEHZbNnTLeoxxeztj8PjSkE6gB4PS4ih1yfG4zeFYnzGq", ErrUnsupportedHash},
		{"django bcrypt broken", "bcrypt_sha256$$2b$05$VZR9", ErrMalformedHash},
		{"unknown", "md5$salt$0123456789abcdef", ErrMalformedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.CheckStored(tt.enc)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckStored = %v, want %v", err, tt.want)
			}
			if secret := tt.enc[len(tt.enc)-8:]; strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains part of the hash", err)
			}
			floor := h.Floor()
			start := time.Now()
			ok, _, err := h.Verify(t.Context(), "lètmein", tt.enc)
			if ok || !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, %v", ok, err)
			}
			if d := time.Since(start); d < floor {
				t.Errorf("a refused hash answered in %v, before the floor %v", d, floor)
			}
		})
	}
}
