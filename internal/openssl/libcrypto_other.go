//go:build !cgo || !linux

package openssl

import (
	"fmt"
	"unsafe"
)

// load fails: the binding needs cgo and Linux's dlopen. Keyward then signs
// with crypto/rsa.
func load() (string, error) {
	return "", fmt.Errorf("%w: built without cgo or not on Linux", ErrUnavailable)
}

// The functions below are never reached, since NewRSAKey stops at Load.

func newPKey([]byte) (unsafe.Pointer, int, error)            { return nil, 0, ErrUnavailable }
func freePKey(unsafe.Pointer)                                {}
func newSignCtx(unsafe.Pointer) (unsafe.Pointer, error)      { return nil, ErrUnavailable }
func freeSignCtx(unsafe.Pointer)                             {}
func signDigest(unsafe.Pointer, []byte, []byte) (int, error) { return 0, ErrUnavailable }
