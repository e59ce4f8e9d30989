package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KEKSize is the length of the key-encryption key: AES-256.
const KEKSize = 32

// ErrWrongKEK means the key-encryption key does not open a stored private
// key: the wrong KEK was given, or a row was altered or swapped with another.
var ErrWrongKEK = errors.New("key-encryption key does not decrypt the stored signing keys")

// sealVersion is the first byte of every stored private key: the format
// below (AES-256-GCM, 12-byte random nonce, kid as additional data).
const sealVersion = 1

// NewKEK returns a fresh random key-encryption key.
func NewKEK() []byte {
	k := make([]byte, KEKSize)
	rand.Read(k) // crypto/rand.Read never fails; it crashes the program instead
	return k
}

// EncodeKEK returns kek as the base64 text KEYWARD_KEY_ENCRYPTION_KEY and
// key files take.
func EncodeKEK(kek []byte) string { return base64.StdEncoding.EncodeToString(kek) }

// DecodeKey decodes a secret key written as base64 text, in the standard
// or URL alphabet, padded or not, surrounding whitespace ignored, as the
// key files and environment variables of keyward take them.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var (
		b   []byte
		err error
	)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// ParseKEK decodes a key-encryption key given as base64 (DecodeKey) of 32
// bytes.
func ParseKEK(s string) ([]byte, error) {
	b, err := DecodeKey(s)
	if err != nil {
		return nil, errors.New("key-encryption key is not valid base64")
	}
	if len(b) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes (base64 of %d random bytes), got %d", KEKSize, KEKSize, len(b))
	}
	return b, nil
}

// ReadKEKFile reads a key-encryption key file: exactly 32 raw bytes, or the
// base64 text of 32 bytes (surrounding whitespace ignored).
func ReadKEKFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key file: %w", err)
	}
	if len(b) == KEKSize {
		return b, nil
	}
	kek, err := ParseKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file %s: %w", path, err)
	}
	return kek, nil
}

// LoadKEK returns the key-encryption key from b64 (KEYWARD_KEY_ENCRYPTION_KEY)
// or from the file at file (--key-encryption-key-file); setting both is an
// error. With neither, and generatePath not empty, it reads the key at
// generatePath, creating it there first (mode 0600) if there is none; then
// generated reports that a new key was written, and the caller should warn
// loudly that production must supply its own key. With neither and no
// generatePath it is an error.
//
// A new KEK never replaces one that encrypted existing keys: NewManager
// refuses a KEK that does not decrypt the stored set (ErrWrongKEK).
func LoadKEK(b64, file, generatePath string) (kek []byte, generated bool, err error) {
	switch {
	case b64 != "" && file != "":
		return nil, false, errors.New("set only one of KEYWARD_KEY_ENCRYPTION_KEY and --key-encryption-key-file")
	case b64 != "":
		kek, err := ParseKEK(b64)
		return kek, false, err
	case file != "":
		kek, err := ReadKEKFile(file)
		return kek, false, err
	case generatePath == "":
		return nil, false, errors.New("no key-encryption key: set KEYWARD_KEY_ENCRYPTION_KEY or --key-encryption-key-file")
	}
	kek, err = ReadKEKFile(generatePath)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kek, false, err
	}
	kek = NewKEK()
	if err := writeNew(generatePath, []byte(EncodeKEK(kek)+"\n")); errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		kek, err := ReadKEKFile(generatePath)
		return kek, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("write key-encryption key: %w", err)
	}
	return kek, true, nil
}

// writeNew writes data to path with mode 0600 unless path exists. The file
// appears complete or not at all: it is written aside, then linked into
// place, which fails if another process got there first.
func writeNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// seal encrypts a private key under kek, bound to kid.
func seal(kek []byte, kid string, plaintext []byte) ([]byte, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return aead.Seal(out, out[1:], plaintext, []byte(kid)), nil
}

// open decrypts what seal returned for the same kid.
func open(kek []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("key %s: stored private key has an unknown format", kid)
	}
	nonce, ct := sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w (kid %s)", ErrWrongKEK, kid)
	}
	return pt, nil
}

func newGCM(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
