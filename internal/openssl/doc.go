// Package openssl signs RS256 with the system's OpenSSL 3 libcrypto, which
// signs RSA-2048 about three times as fast as crypto/rsa on the same core
// (docs/signer.md). It is a minimal binding, written here because the module
// proxy offers no binding library of good standing that Keyward may use.
//
// How: cgo, but with no OpenSSL header at build time. Load dlopens
// "libcrypto.so.3" at run time (dlfcn.h is libc's), resolves with dlsym the
// few functions it calls, declared by prototypes of its own, and calls them
// through small C trampolines; it refuses a library older than 3.0. So the
// binary builds on a machine without OpenSSL's development files, and runs
// where libcrypto.so.3 is missing: Load then returns an error wrapping
// ErrUnavailable and the caller signs with crypto/rsa. Built without cgo
// (CGO_ENABLED=0) or on another system, Load always returns that error.
//
// NewRSAKey hands the private key to OpenSSL as a PKCS#1 DER, cleared right
// after parsing, and RSAKey.Sign signs SHA-256 digests with RSASSA-PKCS1-v1_5
// from a small per-key pool of signing contexts. RSAKey.Close frees the key,
// and EVP_PKEY_free cleanses its private numbers. OpenSSL's errors become Go
// errors carrying OpenSSL's message, never key bytes.
//
// openssl imports nothing of Keyward; keys (or the command's wiring) decides
// when to use it.
package openssl
