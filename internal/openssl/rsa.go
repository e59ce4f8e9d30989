package openssl

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"sync"
	"unsafe"
)

// minRSABits is the smallest modulus NewRSAKey takes, as crypto/rsa signs
// with nothing smaller by default.
const minRSABits = 1024

// RSAKey is an RSA private key held by OpenSSL. It implements crypto.Signer
// for RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2 and RFC 7518
// §3.3) and io.Closer; it is safe for concurrent use.
//
// Close frees the key; a cleanup registered with the runtime frees a key
// that becomes unreachable unclosed, but only as a safety net: it runs late
// or never, so the holder of a key closes it when the key leaves use.
type RSAKey struct {
	pub  *rsa.PublicKey
	size int // signature length in bytes

	mu      sync.RWMutex // held for reading by each Sign, for writing by Close
	closed  bool
	h       *handle
	cleanup runtime.Cleanup
}

// handle is what OpenSSL holds for one RSAKey. It is apart from RSAKey so
// the runtime cleanup can free it without keeping the RSAKey reachable.
type handle struct {
	pkey unsafe.Pointer // EVP_PKEY

	mu   sync.Mutex
	idle []unsafe.Pointer // EVP_PKEY_CTX ready to sign, each used by one Sign at a time
}

// NewRSAKey copies priv into OpenSSL. It loads libcrypto if Load has not
// run (and returns its error) and refuses keys that fail priv.Validate or
// are shorter than 1024 bits. priv stays the caller's: NewRSAKey passes it
// to OpenSSL as a PKCS#1 DER that it clears right after.
func NewRSAKey(priv *rsa.PrivateKey) (*RSAKey, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	if priv == nil {
		return nil, errors.New("openssl: new RSA key: nil key")
	}
	if err := priv.Validate(); err != nil {
		return nil, fmt.Errorf("openssl: new RSA key: %w", err)
	}
	if bits := priv.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("openssl: new RSA key: %d bits, want at least %d", bits, minRSABits)
	}
	der := x509.MarshalPKCS1PrivateKey(priv)
	pkey, size, err := newPKey(der)
	clear(der)
	if err != nil {
		return nil, err
	}
	h := &handle{pkey: pkey}
	k := &RSAKey{
		pub:  &rsa.PublicKey{N: new(big.Int).Set(priv.N), E: priv.E},
		size: size,
		h:    h,
	}
	k.cleanup = runtime.AddCleanup(k, (*handle).free, h)
	if want := (priv.N.BitLen() + 7) / 8; size != want {
		k.Close()
		return nil, fmt.Errorf("openssl: new RSA key: OpenSSL sees %d-byte signatures, want %d", size, want)
	}
	// One context now, so a key OpenSSL cannot sign with fails here rather
	// than at its first Sign.
	c, err := newSignCtx(pkey)
	if err != nil {
		k.Close()
		return nil, err
	}
	h.idle = append(h.idle, c)
	return k, nil
}

// Public returns the public half of the key, an *rsa.PublicKey.
func (k *RSAKey) Public() crypto.PublicKey { return k.pub }

// Sign signs a SHA-256 digest with RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.1), the
// signature of RS256 (RFC 7518 §3.3). opts must hash with crypto.SHA256 and
// not ask for PSS, and digest must be 32 bytes long; anything else is an
// error. rand is ignored: PKCS#1 v1.5 signatures are deterministic, and
// OpenSSL blinds with its own generator. After Close, Sign returns ErrClosed.
func (k *RSAKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("openssl: RSA sign: no hash given, want SHA-256")
	}
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, errors.New("openssl: RSA sign: PSS is not supported, only PKCS#1 v1.5")
	}
	if h := opts.HashFunc(); h != crypto.SHA256 {
		return nil, fmt.Errorf("openssl: RSA sign: hash %v, want SHA-256", h)
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("openssl: RSA sign: digest of %d bytes, want %d", len(digest), sha256.Size)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, ErrClosed
	}
	c, err := k.h.get()
	if err != nil {
		return nil, err
	}
	sig := make([]byte, k.size)
	signTurns <- struct{}{}
	n, err := signInC(c, sig, digest)
	<-signTurns
	if err != nil {
		freeSignCtx(c) // its state is unknown after a failure
		return nil, err
	}
	k.h.put(c)
	runtime.KeepAlive(k)
	return sig[:n], nil
}

// signTurns lets at most GOMAXPROCS signatures run in OpenSSL at once. A
// signature is a few hundred microseconds of pure CPU in C, where the Go
// scheduler cannot preempt it: with more threads in C than Ps, goroutines
// coming back from C waited for a P behind them, and on a server pinned to
// one core a few token requests in every thousand took 1.5 to 2.3 s
// (bench/run: client_credentials at 8 and 32 connections, max latency);
// queued here instead, in Go, the slowest took 12 and 45 ms at the same
// throughput. (GOMAXPROCS as the process started: the pin or the cores.)
var signTurns = make(chan struct{}, runtime.GOMAXPROCS(0))

// signInC is signDigest; a test wraps it to count the signatures in C.
var signInC = signDigest

// Close frees the key in OpenSSL (EVP_PKEY_free cleanses the private
// numbers) once the signs in flight have finished; later Signs return
// ErrClosed. Close is idempotent and always returns nil.
func (k *RSAKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.cleanup.Stop()
	k.h.free()
	return nil
}

// get takes an idle signing context or makes one.
func (h *handle) get() (unsafe.Pointer, error) {
	h.mu.Lock()
	if n := len(h.idle); n > 0 {
		c := h.idle[n-1]
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		return c, nil
	}
	h.mu.Unlock()
	return newSignCtx(h.pkey)
}

// put keeps c for the next Sign, or frees it when enough are idle: more
// Signs than threads cannot run at once, so the pool stays small.
func (h *handle) put(c unsafe.Pointer) {
	h.mu.Lock()
	if len(h.idle) < maxIdle() {
		h.idle = append(h.idle, c)
		c = nil
	}
	h.mu.Unlock()
	if c != nil {
		freeSignCtx(c)
	}
}

// maxIdle bounds the idle contexts per key.
func maxIdle() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// free releases the contexts and the key. It runs from Close, or from the
// runtime cleanup when an unclosed RSAKey is collected; either way no Sign
// is using h.
func (h *handle) free() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.idle {
		freeSignCtx(c)
	}
	h.idle = nil
	if h.pkey != nil {
		freePKey(h.pkey)
		h.pkey = nil
	}
}
