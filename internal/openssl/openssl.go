package openssl

import (
	"errors"
	"sync"
	"sync/atomic"
)

var (
	// ErrUnavailable is wrapped by the error of Load (and so of NewRSAKey)
	// when libcrypto 3 cannot be used: built without cgo, not Linux, no
	// libcrypto.so.3 on the machine, a symbol missing, or a version before 3.0.
	ErrUnavailable = errors.New("openssl: libcrypto 3 unavailable")

	// ErrClosed is returned by Sign on a key that Close has freed.
	ErrClosed = errors.New("openssl: key closed")
)

var (
	loadOnce sync.Once
	loadErr  error
	loaded   atomic.Pointer[string] // the version string, set once Load succeeds
)

// Load opens the system's libcrypto.so.3 and resolves the functions the
// package calls, once per process; later calls return the first result. It
// returns nil when OpenSSL 3.0 or later is usable, else an error wrapping
// ErrUnavailable that says why.
func Load() error {
	loadOnce.Do(func() {
		v, err := load()
		if err != nil {
			loadErr = err
			return
		}
		loaded.Store(&v)
	})
	return loadErr
}

// Version is the loaded library's version string, such as
// "OpenSSL 3.0.19 27 Jan 2026", or "" when Load has not succeeded (Version
// does not load the library itself).
func Version() string {
	if v := loaded.Load(); v != nil {
		return *v
	}
	return ""
}
