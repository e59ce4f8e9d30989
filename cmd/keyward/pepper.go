package main

import (
	"fmt"
	"io"
	"os"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/keys"
)

// maxPepperFile bounds what --password-pepper-file reads.
const maxPepperFile = 4096

// readPepperFile reads the password pepper (PW-04) from path, in the formats
// --key-encryption-key-file takes: the base64 text of the key (standard or URL
// alphabet, padded or not, surrounding whitespace ignored), or else the raw
// bytes. Either way the key must be at least password.MinPepperLen bytes. The
// key is never part of an error message.
func readPepperFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read password pepper file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPepperFile+1))
	if err != nil {
		return nil, fmt.Errorf("read password pepper file: %w", err)
	}
	if len(b) > maxPepperFile {
		return nil, fmt.Errorf("password pepper file %s is longer than %d bytes", path, maxPepperFile)
	}
	key := b
	if d, err := keys.DecodeKey(string(b)); err == nil && len(d) > 0 {
		key = d
	}
	if len(key) < password.MinPepperLen {
		return nil, fmt.Errorf("password pepper file %s: the key must be at least %d bytes (raw, or base64 of them), got %d; make one with: head -c32 /dev/urandom | base64",
			path, password.MinPepperLen, len(key))
	}
	return key, nil
}
